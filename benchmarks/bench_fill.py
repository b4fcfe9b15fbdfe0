"""Fill speed, pipeline overhead and out-of-core memory on CPU.

(a) Throughput: ``sparsediff.fill`` of the last ``--months`` months of OSTIA
    (18 x 432 grid, with ``cloud:0.3`` hidden as in the demo: these months
    have no gaps of their own, and a fill skips windows without a gap) with
    a trained OSTIA model (``--model``, default the shipped demo model) at
    ``members=1`` and ``members=8`` (DPM-Solver++(2M),
    ``--steps``, ``--batch-size`` windows per model call). Grid points/s counts
    every point of the filled field: ``members x months x 18 x 432`` (land and
    observed points included).

(b) Overhead: the model's own work, run alone. A first fill (1 step) records
    what ``fill`` hands the model: the frames of every time step given to
    `sparsediff.method.Method.inputs` (the first guess over the whole
    field, with the context frames) and every batch of windows given to
    `sparsediff.method.Method.complete_parts` (the completion split
    into its centre and its perturbation, which tiles blend separately;
    same order, same batch size, same members, same keys). "bare" replays exactly those calls:
    building the inputs, then the window batches at ``--steps``. ``fill / bare``
    is the wall time of the whole ``sparsediff.fill`` call (masks,
    climatology, normalisation, context, tiling, blending, copying observed
    points back, building the Dataset) over that bare model compute. Fill and
    bare runs alternate ``--repeats`` times; the best of each is reported
    (process CPU time too: steadier on a shared machine). Because separate
    runs differ by several % on a shared machine, the fill run is also split
    with timing wrappers: the time inside ``Method.inputs`` ("guess s") and
    inside ``complete_parts`` ("model s") during that very run, and the rest,
    the pipeline overhead, relative to their sum.

(c) Out-of-core: a float32 (time, lat, lon) Zarr store with gaps (a land disc NaN
    at every step + random cloud boxes) on a global ``--ooc-grid`` grid is
    generated chunk by chunk at two sizes (``--ooc-sizes-mib``, the second 4x the
    first by default) and each is filled with ``fill_to_zarr`` in a fresh
    subprocess (threaded dask scheduler, ``--threads`` workers, ``region_size``
    time steps per region = the store's time chunk). The subprocess reports its
    peak RSS (``VmHWM``) next to the store size. The model here is a small
    *randomly initialised* v2 latent model with the demo's window (16 x 32),
    Laplace first guess and the previous/next step as context (as the demo
    config), sampled with 1 Euler step: memory is the object, and a trained
    OSTIA model cannot be used on another grid (its climatology ties it to
    OSTIA's 18 x 432) nor is it fast enough to fill hundreds of MiB in a few
    minutes on 2 cores.

Usage::

    python benchmarks/bench_fill.py [--model DIR] [--months 6] [--steps 16]
        [--batch-size 16] [--repeats 3] [--threads 1] [--ooc-grid 64 512]
        [--ooc-sizes-mib 64 256] [--region-size 8] [--skip-ooc] [--skip-throughput]
        [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _common import load_line, peak_rss_mib

DEMO_MODEL = Path(__file__).resolve().parents[1] / "sparsediff" / "assets" / "demo_model"


def du(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- (a) + (b)


#: The method entry point ``fill_block`` calls per batch of windows, and the one per field.
WINDOW_CALL = "complete_parts"
FIELD_CALL = "inputs"


@contextlib.contextmanager
def patched(cls: type, name: str, wrap: Callable[[Any], Any]) -> Iterator[None]:
    """Replace method ``name`` of ``cls`` by ``wrap(original)`` for the ``with`` block."""
    own = cls.__dict__.get(name)
    setattr(cls, name, wrap(getattr(cls, name)))
    try:
        yield
    finally:
        if own is None:
            delattr(cls, name)
        else:
            setattr(cls, name, own)


def record_calls(model: Any, sub: Any, members: int, batch_size: int) -> dict[str, list[Any]]:
    """What ``fill`` hands the model, recorded from a 1-step fill.

    Returns the ``(frames, periodic)`` of every ``Method.inputs`` call (the
    first guess over a whole field) and the ``(inputs, keys)`` of every call
    on a batch of windows (``Method.complete_parts``, with its keyword
    arguments such as ``repeats``), in order.
    """
    import sparsediff

    cls = type(model.method)
    rec: dict[str, list[Any]] = {"inputs": [], "windows": []}

    def rec_inputs(orig: Any) -> Any:
        def run(self: Any, frames: Any, periodic: Any = None) -> Any:
            rec["inputs"].append((frames, periodic))
            return orig(self, frames, periodic)

        return run

    def rec_windows(orig: Any) -> Any:
        def run(self: Any, inputs: Any, keys: Any, opts: Any, **kw: Any) -> Any:
            rec["windows"].append((inputs.clone(), list(keys), dict(kw)))
            return orig(self, inputs, keys, opts, **kw)

        return run

    with patched(cls, FIELD_CALL, rec_inputs), patched(cls, WINDOW_CALL, rec_windows):
        sparsediff.fill(sub, model, members=members, steps=1, batch_size=batch_size)
    if not rec["inputs"] or not rec["windows"]:
        raise RuntimeError(
            f"fill made no Method.{FIELD_CALL} / Method.{WINDOW_CALL} call: the fill's entry "
            "points changed, update FIELD_CALL / WINDOW_CALL in this script"
        )
    return rec


def bare_run(model: Any, rec: dict[str, list[Any]], opts: Any) -> tuple[float, float]:
    """Replay the recorded model calls; return (wall, cpu) seconds."""
    method = model.method
    field_call = getattr(method, FIELD_CALL)
    window_call = getattr(method, WINDOW_CALL)
    t0, c0 = time.perf_counter(), time.process_time()
    for frames, periodic in rec["inputs"]:
        field_call(frames, periodic).cpu().numpy()
    for inputs, keys, kw in rec["windows"]:
        for part in window_call(inputs, keys, opts, **kw):
            part.cpu().numpy()
    return time.perf_counter() - t0, time.process_time() - c0


def timed(total: list[float]) -> Callable[[Any], Any]:
    """A wrapper factory that adds the wrapped call's wall time to ``total[0]``."""

    def wrap(fn: Any) -> Any:
        def run(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                total[0] += time.perf_counter() - t0

        return run

    return wrap


def bench_throughput(args: argparse.Namespace) -> list[dict[str, Any]]:
    """(a) and (b): fill vs bare model compute on the last months of OSTIA."""
    import sparsediff
    from sparsediff.data.sample_data import open_ostia
    from sparsediff.filling.windows import FillOptions

    model = sparsediff.load(args.model)
    var = model.variables[0]
    cls = type(model.method)
    from sparsediff.evaluation.holdout import make_holdout

    ds = open_ostia().load()
    nt = ds.sizes["time"]
    # the demo's case: the last months have no gaps but land, so cloud:0.3 is hidden
    # (a fill skips windows without a gap point)
    gappy, _ = make_holdout(
        ds,
        "cloud:0.3",
        dims=("latitude", "longitude"),
        seed=0,
        invalid_along="time",
        region={"time": slice(nt - 6, nt)},
    )
    sub = gappy.isel(time=slice(nt - args.months, None))
    # warm-up (first oneDNN primitives, imports inside fill)
    sparsediff.fill(sub.isel(time=slice(0, 1)), model, steps=2, batch_size=args.batch_size)

    rows = []
    for members in args.members:
        rec = record_calls(model, sub, members, args.batch_size)
        opts = FillOptions(members=members, steps=args.steps, batch_size=args.batch_size)
        fill_t: list[tuple[float, float]] = []
        bare_t: list[tuple[float, float]] = []
        inner_t: list[tuple[float, float]] = []
        for _ in range(args.repeats):
            in_model, in_guess = [0.0], [0.0]
            with (
                patched(cls, FIELD_CALL, timed(in_guess)),
                patched(cls, WINDOW_CALL, timed(in_model)),
            ):
                t0, c0 = time.perf_counter(), time.process_time()
                out = sparsediff.fill(
                    sub, model, members=members, steps=args.steps, batch_size=args.batch_size
                )
                _ = out[var].values
                fill_t.append((time.perf_counter() - t0, time.process_time() - c0))
            inner_t.append((in_guess[0], in_model[0]))
            bare_t.append(bare_run(model, rec, opts))
        fw, fc = min(w for w, _ in fill_t), min(c for _, c in fill_t)
        best = min(range(len(fill_t)), key=lambda i: fill_t[i][0])
        guess_s, model_s = inner_t[best]
        overhead = (fill_t[best][0] - guess_s - model_s) / (guess_s + model_s)
        bw, bc = min(w for w, _ in bare_t), min(c for _, c in bare_t)
        points = members * math.prod(sub[var].shape)
        windows = sum(len(k) for _, k, _ in rec["windows"])
        rows.append(
            {
                "members": members,
                "points": points,
                "windows": windows,
                "model_calls": len(rec["windows"]),
                "fill_s": fw,
                "fill_cpu_s": fc,
                "bare_s": bw,
                "bare_cpu_s": bc,
                "guess_s": guess_s,
                "inner_s": model_s,
                "overhead": overhead,
                "all_fill_s": [round(w, 2) for w, _ in fill_t],
                "all_bare_s": [round(w, 2) for w, _ in bare_t],
            }
        )
        print(
            f"  members={members}: fill {[round(w, 2) for w, _ in fill_t]} s, "
            f"bare {[round(w, 2) for w, _ in bare_t]} s",
            flush=True,
        )
    return rows


# ----------------------------------------------------------------------------- (c)


def _block(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
    """Deterministic data of one chunk: smooth field + noise, a land disc, cloud boxes."""
    if block_info is None:
        return block
    (t0, t1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
    ny, nx = block_info[None]["shape"][1:]
    rng = np.random.default_rng(t0)
    y = np.arange(y0, y1, dtype=np.float32)[:, None]
    x = np.arange(x0, x1, dtype=np.float32)[None, :]
    base = 290.0 + 8.0 * np.cos(np.pi * (y / ny - 0.5)) + 2.0 * np.sin(2 * np.pi * x / nx)
    t = np.arange(t0, t1, dtype=np.float32)[:, None, None]
    out = base[None] + np.sin(t / 6.0) + 0.3 * rng.standard_normal(block.shape, np.float32)
    land = ((y - 0.4 * ny) / (0.2 * ny)) ** 2 + ((x - 0.3 * nx) / (0.1 * nx)) ** 2 < 1.0
    out[:, land] = np.nan
    for i in range(out.shape[0]):  # ~8 cloud boxes per step
        for _ in range(8):
            h, w = rng.integers(4, max(5, ny // 3)), rng.integers(8, max(9, nx // 6))
            cy, cx = rng.integers(0, ny), rng.integers(0, nx)
            out[i, cy : cy + h, cx : cx + w] = np.nan
    return out.astype(np.float32, copy=False)


def generate(store: Path, size_mib: float, grid: tuple[int, int], chunk_t: int) -> tuple[int, ...]:
    """Write the store chunk by chunk (never the whole array in memory)."""
    import dask
    import dask.array as da
    import xarray as xr

    ny, nx = grid
    step = ny * nx * 4
    nt = max(chunk_t, round(size_mib * 2**20 / step / chunk_t) * chunk_t)
    empty = da.empty((nt, ny, nx), chunks=(chunk_t, ny, nx), dtype=np.float32)
    data = da.map_blocks(_block, empty, dtype=np.float32)
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), data, {"units": "K"})},
        coords={
            "time": np.arange(nt),
            "lat": ("lat", np.linspace(-80, 80, ny), {"units": "degrees_north"}),
            "lon": ("lon", np.arange(nx) * 360.0 / nx, {"units": "degrees_east"}),
        },
    )
    with dask.config.set(scheduler="threads", num_workers=1):
        ds.to_zarr(
            store,
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding={"sst": {"compressors": None, "chunks": (chunk_t, ny, nx)}},
        )
    return (nt, ny, nx)


def random_model(seed: int = 0) -> Any:
    """A small randomly initialised v2 latent model with the demo's 16 x 32 window.

    Laplace first guess and the previous/next time step as context, as the
    demo config; the decoder's zero-initialised output layer gets random
    weights so that fills depend on the latent.
    """
    import torch

    from sparsediff.data.stats import Stats, VariableStats
    from sparsediff.method import METHODS
    from sparsediff.method.spec import ModelSpec
    from sparsediff.model import Model

    torch.manual_seed(seed)
    spec = ModelSpec(
        kind="latent",
        variables=["sst"],
        dims=["lat", "lon"],
        window=[16, 32],
        first_guess="laplace",
        context_dim="time",
        context_offsets=[-1, 1],
        invalid_along="time",
        units={"sst": "K"},
    )
    arch = {
        "autoencoder": {
            "encoder_widths": [8, 8, 8],
            "decoder_widths": [8, 8],
            "latent_channels": 4,
            "blocks_per_level": 1,
            "attention": False,
            "checkpointing": False,
        },
        "prior": {"widths": [8, 8], "blocks_per_level": 1, "attention_levels": [], "dropout": 0.0},
    }
    cls = METHODS["latent"]
    nets = {stage: cls.new_net(stage, spec, arch) for stage in cls.stages}
    with torch.no_grad():
        nets["autoencoder"].decoder.conv_out.weight.normal_(0.0, 0.05)  # type: ignore[union-attr]
    stats = Stats({"sst": VariableStats(292.0, 6.0, count=1)})
    return Model(spec, nets, stats).eval()


def child_ooc(store: str, out: str, region_size: int, threads: int, batch_size: int) -> None:
    """Fill ``store`` into ``out`` with ``fill_to_zarr``; print one JSON line."""
    import dask
    import torch

    torch.set_num_threads(threads)
    import sparsediff
    from sparsediff.filling.store import fill_to_zarr

    model = random_model()
    rss_base = peak_rss_mib()
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=threads):
        ds = sparsediff.open(store, chunks={})
        fill_to_zarr(
            ds,
            model,
            out,
            region_size=region_size,
            progress=False,
            members=1,
            steps=1,
            sampler="euler",
            batch_size=batch_size,
            device="cpu",
        )
    seconds = time.perf_counter() - start
    import xarray as xr

    res = xr.open_zarr(out, consolidated=False)
    last = res.isel(time=-1)
    flags = last["sst_fill_flag"].values
    vals = last["sst"].values
    ok = bool(np.isfinite(vals[flags < 2]).all() and np.isnan(vals[flags == 2]).all())
    print(
        json.dumps(
            {
                "peak_rss_mib": peak_rss_mib(),
                "rss_after_imports_mib": rss_base,
                "seconds": seconds,
                "threads": threads,
                "last_step_ok": ok,
            }
        )
    )


def bench_ooc(args: argparse.Namespace) -> list[dict[str, Any]]:
    """(c): generate stores of two sizes, fill each in a fresh subprocess."""
    base = Path(tempfile.mkdtemp(prefix="sparsediff-bench-fill-", dir=args.dir))
    rows = []
    try:
        for size in args.ooc_sizes_mib:
            store = base / f"in_{size:g}.zarr"
            out = base / f"out_{size:g}.zarr"
            t0 = time.perf_counter()
            shape = generate(store, size, tuple(args.ooc_grid), args.region_size)
            gen_s = time.perf_counter() - t0
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "--child-ooc",
                str(store),
                str(out),
                "--region-size",
                str(args.region_size),
                "--threads",
                str(args.threads),
                "--batch-size",
                str(args.ooc_batch_size),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"out-of-core fill failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            ny, nx = args.ooc_grid
            region_in = args.region_size * ny * nx * 4
            r.update(
                {
                    "shape": shape,
                    "store_bytes": du(store),
                    "out_bytes": du(out),
                    "gen_s": gen_s,
                    # one region in flight per worker: input chunk (float32) + states
                    # (uint8) + filled output (float32) + flag (uint8)
                    "region_budget_bytes": args.threads * region_in * (1 + 0.25 + 1 + 0.25),
                }
            )
            rows.append(r)
            print(
                f"  store {shape} {r['store_bytes'] / 2**20:.0f} MiB: filled in "
                f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
            shutil.rmtree(store, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return rows


# ----------------------------------------------------------------------------- main


def main() -> None:
    """Parse options, run (a)+(b) in this process and (c) in subprocesses; print tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=DEMO_MODEL,
        help="a trained OSTIA model directory (default: the shipped demo model)",
    )
    parser.add_argument("--months", type=int, default=6, help="last OSTIA months to fill")
    parser.add_argument("--members", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16, help="windows per model call")
    parser.add_argument("--repeats", type=int, default=3, help="alternating fill/bare rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (and dask workers)")
    parser.add_argument("--ooc-grid", type=int, nargs=2, default=[64, 512], metavar=("NY", "NX"))
    parser.add_argument("--ooc-sizes-mib", type=float, nargs="*", default=[64.0, 256.0])
    parser.add_argument("--region-size", type=int, default=8, help="time steps per region")
    parser.add_argument("--ooc-batch-size", type=int, default=256)
    parser.add_argument("--skip-ooc", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the Zarr stores")
    parser.add_argument("--child-ooc", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_ooc:
        child_ooc(*args.child_ooc, args.region_size, args.threads, args.batch_size)
        return

    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {os.cpu_count()} cores, {args.threads} torch thread(s)")
    print(load_line("at start") + " -- other processes may share these cores")
    t_all = time.perf_counter()

    if not args.skip_throughput:
        print(
            f"\n(a)+(b) OSTIA last {args.months} months (18 x 432), model {args.model}, "
            f"dpmpp_2m {args.steps} steps, batch {args.batch_size} windows; "
            f"best of {args.repeats} alternating rounds"
        )
        rows = bench_throughput(args)
        header = (
            f"{'members':>7} {'points':>9} {'windows':>7} {'calls':>6} {'fill s':>7} "
            f"{'points/s':>9} {'windows/s':>9} {'guess s':>7} {'model s':>7} {'overhead':>8} "
            f"{'bare s':>7} {'fill/bare':>9} {'cpu fill/bare':>13}"
        )
        print()
        print(header)
        print("-" * len(header))
        for r in rows:
            print(
                f"{r['members']:>7} {r['points']:>9,} {r['windows']:>7} {r['model_calls']:>6} "
                f"{r['fill_s']:>7.2f} {r['points'] / r['fill_s']:>9,.0f} "
                f"{r['windows'] / r['fill_s']:>9.1f} {r['guess_s']:>7.2f} {r['inner_s']:>7.2f} "
                f"{r['overhead']:>8.1%} {r['bare_s']:>7.2f} "
                f"{r['fill_s'] / r['bare_s']:>9.3f} {r['fill_cpu_s'] / r['bare_cpu_s']:>13.3f}"
            )
        print(
            "guess s / model s = time inside Method.inputs (first guess over whole fields) / "
            "Method.complete_parts during the (best) fill run; overhead = (fill - both) / both; "
            "bare = the same calls replayed alone"
        )

    if not args.skip_ooc:
        ny, nx = args.ooc_grid
        print(
            f"\n(c) out-of-core: fill_to_zarr of a global {ny} x {nx} float32 store, "
            f"region_size {args.region_size} (= store time chunk), dask threads x "
            f"{args.threads}, random-init small v2 model (window 16 x 32, laplace guess, "
            "context t-1/t+1), 1 Euler step, "
            f"batch {args.ooc_batch_size}"
        )
        rows_c = bench_ooc(args)
        header = (
            f"{'store shape':<18} {'store MiB':>9} {'output MiB':>10} {'region MiB':>10} "
            f"{'fill s':>7} {'MiB/s':>6} {'RSS base MiB':>12} {'peak RSS MiB':>12} "
            f"{'peak/store':>10} {'ok':>3}"
        )
        print()
        print(header)
        print("-" * len(header))
        for r in rows_c:
            store_mib = r["store_bytes"] / 2**20
            print(
                f"{'x'.join(map(str, r['shape'])):<18} {store_mib:>9.0f} "
                f"{r['out_bytes'] / 2**20:>10.0f} {r['region_budget_bytes'] / 2**20:>10.2f} "
                f"{r['seconds']:>7.1f} {store_mib / r['seconds']:>6.2f} "
                f"{r['rss_after_imports_mib']:>12.0f} {r['peak_rss_mib']:>12.0f} "
                f"{r['peak_rss_mib'] / store_mib:>10.2f} {'yes' if r['last_step_ok'] else 'NO':>3}"
            )
        print(
            "region MiB = what one in-flight region holds (input float32 + states uint8 + "
            "filled float32 + flag uint8) x dask workers; RSS base = after imports and model."
        )

    print(f"\ntotal benchmark wall time {time.perf_counter() - t_all:.0f} s")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
