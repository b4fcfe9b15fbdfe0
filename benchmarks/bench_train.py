"""Training speed on CPU: samples/s per stage for the shipped configs, and the demo's wall time.

For each config (``configs/<name>.yaml``, every one there by default, or a
path to a YAML file) a fresh subprocess trains its stages (v2 latent: the
completion autoencoder, then the latent prior; pixel: the prior) for
``--steps`` optimizer steps each, with the config's data, window, halo,
context, widths and batch size unchanged and only these run settings
overridden: ``steps``, ``run.log_every``, no in-training evaluation, no
intermediate checkpoints, no progress bar, ``run.threads``. The trainer logs
``samples_per_s`` every ``--log-every`` steps to ``metrics.jsonl``; the first
logged window of each stage (warm-up: first oneDNN calls, allocator growth) is
dropped and the steady rate is the samples of the other windows over their
time. The rate includes building each batch's inputs (hiding points, the
first guess over the crop with its halo, context frames), which v2 does per
step. The subprocess also reports its total wall time (data preparation,
latent-scale estimate, spread calibration on the validation part, checkpoints
and model saving included), the time of the spread calibration alone, and its
peak RSS (``VmHWM``).

Then ``sparsediff train configs/demo.yaml`` runs as shipped (its own step
counts and ``run.threads``) in a subprocess and its wall time is reported.

Usage::

    python benchmarks/bench_train.py [--configs demo climate2d medical3d | PATH.yaml ...]
        [--steps 30] [--log-every 10] [--threads 1] [--no-full-demo]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import load_line, peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = tuple(sorted(p.stem for p in (ROOT / "configs").glob("*.yaml")))


def config_path(name: str) -> Path:
    """A shipped config by name (``demo``) or a YAML file by path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path.resolve()
    return ROOT / "configs" / f"{name}.yaml"


def steady_rate(rows: list[dict[str, Any]], batch: int) -> dict[str, float]:
    """Samples/s over the logged windows after the first one (warm-up dropped)."""
    rows = sorted(rows, key=lambda r: r["step"])
    steps = [r["step"] for r in rows]
    widths = [s - p for s, p in zip(steps, [0, *steps[:-1]], strict=True)]
    kept = list(zip(rows, widths, strict=True))[1:] or list(zip(rows, widths, strict=True))
    samples = sum(w * batch for _, w in kept)
    seconds = sum(w * batch / r["samples_per_s"] for r, w in kept)
    first = rows[0]["samples_per_s"]
    return {
        "samples_per_s": samples / seconds,
        "s_per_step": seconds / sum(w for _, w in kept),
        "first_window_samples_per_s": first,
        "timed_steps": sum(w for _, w in kept),
    }


def child(name: str, steps: int, log_every: int, threads: int) -> dict[str, Any]:
    """Train one config for ``steps`` steps per stage; return its figures."""
    import torch

    torch.set_num_threads(threads)
    from sparsediff.training import trainer

    calib_s = [0.0]
    calibrate = trainer._Trainer.calibrate

    def timed_calibrate(self: Any) -> None:
        t0 = time.perf_counter()
        try:
            calibrate(self)
        finally:
            calib_s[0] += time.perf_counter() - t0

    trainer._Trainer.calibrate = timed_calibrate  # type: ignore[method-assign]

    cfg = yaml.safe_load(config_path(name).read_text())
    cfg.setdefault("autoencoder", {})["steps"] = steps
    cfg.setdefault("prior", {})["steps"] = steps
    cfg.setdefault("run", {}).update(
        {
            "log_every": log_every,
            "eval_every": 0,
            "checkpoint_every": 10**9,
            "progress": False,
            "threads": threads,
            "device": "cpu",
        }
    )
    out = Path(tempfile.mkdtemp(prefix=f"sparsediff-bench-train-{Path(name).stem}-"))
    try:
        start = time.perf_counter()
        model = trainer.train(None, cfg, out=out / "run")
        wall = time.perf_counter() - start
        rows = [
            json.loads(line)
            for line in (out / "run" / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    batch = int(cfg["optim"]["batch_size"])
    stages = {}
    for stage in ("autoencoder", "prior"):
        stage_rows = [r for r in rows if r["stage"] == stage]
        if stage_rows:
            stages[stage] = steady_rate(stage_rows, batch)
    params = {
        "autoencoder": sum(p.numel() for p in model.autoencoder.parameters())
        if model.autoencoder is not None
        else 0,
        "prior": sum(p.numel() for p in model.prior.parameters()) if model.prior else 0,
    }
    return {
        "config": Path(name).stem,
        "mode": cfg.get("mode", "latent"),
        "calibration_s": calib_s[0],
        "window": cfg["window"]["size"],
        "batch": batch,
        "stages": stages,
        "params": params,
        "wall_s": wall,
        "peak_rss_mib": peak_rss_mib(),
        "threads": torch.get_num_threads(),
    }


def full_demo(config: Path) -> dict[str, Any]:
    """``sparsediff train <config>`` as shipped (``configs/demo.yaml``), timed from outside."""
    out = Path(tempfile.mkdtemp(prefix="sparsediff-bench-demo-"))
    try:
        cmd = [
            sys.executable,
            "-m",
            "sparsediff",
            "train",
            str(config),
            "--out",
            str(out / "run"),
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"demo training failed:\n{proc.stderr[-3000:]}")
        rows = [
            json.loads(line)
            for line in (out / "run" / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    cfg = yaml.safe_load(config.read_text())
    batch = int(cfg["optim"]["batch_size"])
    stages = {}
    for stage in ("autoencoder", "prior"):
        stage_rows = [r for r in rows if r["stage"] == stage]
        if stage_rows:
            stages[stage] = steady_rate(stage_rows, batch)
    holdout = [r.get("val_rmse") for r in rows if r.get("val_rmse") is not None]
    return {
        "wall_s": wall,
        "stages": stages,
        "steps": (cfg["autoencoder"]["steps"], cfg["prior"]["steps"]),
        "threads": cfg["run"].get("threads"),
        "last_val_rmse": holdout[-1] if holdout else None,
    }


def main() -> None:
    """Parse options, run the configs and the demo in subprocesses, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs",
        nargs="*",
        default=list(CONFIGS),
        help=f"shipped config names ({', '.join(CONFIGS)}) or YAML paths",
    )
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per stage")
    parser.add_argument("--log-every", type=int, default=10, help="steps per timed window")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-full-demo", action="store_true", help="skip the full demo run")
    parser.add_argument(
        "--full-config", default="demo", help="config of the full run (name or YAML path)"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps % args.log_every or args.steps < 2 * args.log_every:
        parser.error("--steps must be a multiple of --log-every and at least twice it")
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.log_every, args.threads)))
        return
    for name in args.configs:
        if not config_path(name).is_file():
            parser.error(f"no config {name!r} (shipped: {', '.join(CONFIGS)}; or a YAML path)")

    import torch

    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, CPU, {os.cpu_count()} cores, {args.threads} torch thread(s); "
        f"{args.steps} steps per stage, rate over steps {args.log_every + 1}..{args.steps} "
        "(first logged window dropped as warm-up)"
    )
    print(load_line("at start") + " -- other processes may share these cores")
    t_all = time.perf_counter()
    results = []
    for name in args.configs:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            name,
            "--steps",
            str(args.steps),
            "--log-every",
            str(args.log_every),
            "--threads",
            str(args.threads),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"  {name}: FAILED\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"  {name}: done in {r['wall_s']:.1f} s ({load_line('now')})", flush=True)

    header = (
        f"{'config':<10} {'window':<10} {'batch':>5} {'stage':<12} {'params':>9} "
        f"{'samples/s':>9} {'s/step':>7} {'run wall s':>10} {'calib s':>7} {'peak RSS MiB':>12}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        window = "x".join(map(str, r["window"]))
        for i, (stage, s) in enumerate(r["stages"].items()):
            tail = (
                f"{r['wall_s']:>10.1f} {r['calibration_s']:>7.1f} {r['peak_rss_mib']:>12.0f}"
                if i == 0
                else f"{'':>10} {'':>7} {'':>12}"
            )
            print(
                f"{r['config'] if i == 0 else '':<10} {window if i == 0 else '':<10} "
                f"{r['batch'] if i == 0 else '':>5} {stage:<12} {r['params'][stage]:>9,} "
                f"{s['samples_per_s']:>9.1f} {s['s_per_step']:>7.3f} {tail}"
            )
    if not args.no_full_demo:
        full = config_path(args.full_config)
        print(f"\nfull run: sparsediff train {full} (as shipped) ...", flush=True)
        d = full_demo(full)
        rates = ", ".join(
            f"{st} {s['samples_per_s']:.1f} samples/s" for st, s in d["stages"].items()
        )
        val = d["last_val_rmse"]
        val_s = "n/a (no in-training evaluation)" if val is None else f"{val:.3f} physical units"
        print(
            f"{full.name} as shipped: {d['steps'][0]} + {d['steps'][1]} steps, "
            f"threads {d['threads']}: wall {d['wall_s']:.1f} s ({rates}; last validation "
            f"RMSE {val_s})"
        )
    print(f"\ntotal benchmark wall time {time.perf_counter() - t_all:.0f} s")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
