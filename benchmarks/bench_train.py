"""Training speed on CPU: samples/s per stage for the shipped configs, and the demo's wall time.

For each config (``configs/<name>.yaml``) a fresh subprocess trains both stages
(autoencoder, then latent prior) for ``--steps`` optimizer steps each, with the
config's data, window, widths and batch size unchanged and only these run
settings overridden: ``steps``, ``run.log_every``, no held-out evaluation, no
intermediate checkpoints, no progress bar, ``run.threads``. The trainer logs
``samples_per_s`` every ``--log-every`` steps to ``metrics.jsonl``; the first
logged window of each stage (warm-up: first oneDNN calls, allocator growth) is
dropped and the steady rate is the samples of the other windows over their time.
The subprocess also reports its total wall time (data preparation, latent-scale
estimate, checkpoints and model saving included) and its peak RSS (``VmHWM``).

Then ``sparsediff train configs/demo.yaml`` runs as shipped (500 + 500 steps,
``run.threads: 1``) in a subprocess and its wall time is reported.

Usage::

    python benchmarks/bench_train.py [--configs demo climate2d geo3d medical3d]
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
CONFIGS = ("demo", "climate2d", "geo3d", "medical3d")


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
    from sparsediff.training.trainer import train

    cfg = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    cfg["autoencoder"]["steps"] = steps
    cfg["prior"]["steps"] = steps
    cfg["run"].update(
        {
            "log_every": log_every,
            "eval_every": 0,
            "checkpoint_every": 10**9,
            "progress": False,
            "threads": threads,
            "device": "cpu",
        }
    )
    out = Path(tempfile.mkdtemp(prefix=f"sparsediff-bench-train-{name}-"))
    try:
        start = time.perf_counter()
        model = train(None, cfg, out=out / "run")
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
        "config": name,
        "window": cfg["window"]["size"],
        "batch": batch,
        "stages": stages,
        "params": params,
        "wall_s": wall,
        "peak_rss_mib": peak_rss_mib(),
        "threads": torch.get_num_threads(),
    }


def full_demo() -> dict[str, Any]:
    """``sparsediff train configs/demo.yaml`` as shipped, timed from outside."""
    out = Path(tempfile.mkdtemp(prefix="sparsediff-bench-demo-"))
    try:
        cmd = [
            sys.executable,
            "-m",
            "sparsediff",
            "train",
            "configs/demo.yaml",
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
    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    batch = int(cfg["optim"]["batch_size"])
    stages = {}
    for stage in ("autoencoder", "prior"):
        stage_rows = [r for r in rows if r["stage"] == stage]
        if stage_rows:
            stages[stage] = steady_rate(stage_rows, batch)
    holdout = [r.get("holdout_rmse") for r in rows if r.get("holdout_rmse") is not None]
    return {
        "wall_s": wall,
        "stages": stages,
        "steps": (cfg["autoencoder"]["steps"], cfg["prior"]["steps"]),
        "threads": cfg["run"].get("threads"),
        "last_holdout_rmse": holdout[-1] if holdout else None,
    }


def main() -> None:
    """Parse options, run the configs and the demo in subprocesses, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per stage")
    parser.add_argument("--log-every", type=int, default=10, help="steps per timed window")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-full-demo", action="store_true", help="skip the full demo run")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps % args.log_every or args.steps < 2 * args.log_every:
        parser.error("--steps must be a multiple of --log-every and at least twice it")
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.log_every, args.threads)))
        return

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
        f"{'samples/s':>9} {'s/step':>7} {'run wall s':>10} {'peak RSS MiB':>12}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        window = "x".join(map(str, r["window"]))
        for i, (stage, s) in enumerate(r["stages"].items()):
            tail = (
                f"{r['wall_s']:>10.1f} {r['peak_rss_mib']:>12.0f}"
                if i == 0
                else f"{'':>10} {'':>12}"
            )
            print(
                f"{r['config'] if i == 0 else '':<10} {window if i == 0 else '':<10} "
                f"{r['batch'] if i == 0 else '':>5} {stage:<12} {r['params'][stage]:>9,} "
                f"{s['samples_per_s']:>9.1f} {s['s_per_step']:>7.3f} {tail}"
            )
    if not args.no_full_demo:
        print("\nfull run: sparsediff train configs/demo.yaml (as shipped) ...", flush=True)
        d = full_demo()
        rates = ", ".join(
            f"{st} {s['samples_per_s']:.1f} samples/s" for st, s in d["stages"].items()
        )
        print(
            f"demo.yaml as shipped: {d['steps'][0]} + {d['steps'][1]} steps, "
            f"threads {d['threads']}: wall {d['wall_s']:.1f} s ({rates}; "
            f"final held-out RMSE {d['last_holdout_rmse']:.3f} K)"
        )
    print(f"\ntotal benchmark wall time {time.perf_counter() - t_all:.0f} s")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
