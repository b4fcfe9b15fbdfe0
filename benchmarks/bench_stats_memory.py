"""Peak memory of ``compute_stats`` on a Zarr store larger than memory budgets.

Writes a chunked float32 (time, y, x) Zarr v3 store of ``--size-gib`` GiB
(default 4.5, uncompressed so the size on disk is the data size) chunk by
chunk, with NaN gaps (a fixed "land" disc at every step plus ~10 % random
pixels), then runs ``sparsediff.open`` + ``compute_stats(..., invalid_along=
"time")`` in a fresh subprocess with the threaded dask scheduler and reports
that process's peak RSS (``VmHWM``, or ``ru_maxrss`` off Linux) next to the
store size.

Usage::

    python benchmarks/bench_stats_memory.py [--dir DIR] [--size-gib 4.5]
        [--chunk-mib 64] [--threads N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import peak_rss_mib

NY = NX = 1024  # one time step = 4 MiB of float32


def _block(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
    """Deterministic data for one chunk: smooth field + noise, land and random gaps."""
    if block_info is None:  # dtype/meta inference
        return block
    loc = block_info[None]["array-location"]
    (t0, t1), (y0, y1), (x0, x1) = loc
    rng = np.random.default_rng(t0)
    y = np.arange(y0, y1, dtype=np.float32)[:, None]
    x = np.arange(x0, x1, dtype=np.float32)[None, :]
    base = 290.0 + 5.0 * np.sin(y / 97.0) * np.cos(x / 131.0)
    t = np.arange(t0, t1, dtype=np.float32)[:, None, None]
    out = base[None] + 0.5 * np.sin(t / 12.0) + rng.standard_normal(block.shape, np.float32)
    land = (y - 300.0) ** 2 + (x - 400.0) ** 2 < 150.0**2
    out[:, land] = np.nan
    out[rng.random(block.shape, np.float32) < 0.1] = np.nan
    return out.astype(np.float32, copy=False)


def generate(store: Path, size_gib: float, chunk_mib: float) -> tuple[int, ...]:
    """Write the store chunk by chunk (never the whole array in memory)."""
    import dask.array as da
    import xarray as xr

    step_bytes = NY * NX * 4
    per_chunk = max(1, int(chunk_mib * 2**20 // step_bytes))
    nt = math.ceil(size_gib * 2**30 / step_bytes / per_chunk) * per_chunk
    empty = da.empty((nt, NY, NX), chunks=(per_chunk, NY, NX), dtype=np.float32)
    data = da.map_blocks(_block, empty, dtype=np.float32)
    ds = xr.Dataset(
        {"sst": (("time", "y", "x"), data, {"units": "K"})},
        coords={"time": np.arange(nt), "y": np.arange(NY), "x": np.arange(NX)},
    )
    ds.to_zarr(
        store,
        mode="w",
        zarr_format=3,
        consolidated=False,
        encoding={"sst": {"compressors": None, "chunks": (per_chunk, NY, NX)}},
    )
    return (nt, NY, NX)


def child(store: str, threads: int | None) -> None:
    """Open + compute stats; print one JSON line with the figures."""
    import dask

    from sparsediff.data.io import open as open_data
    from sparsediff.data.stats import compute_stats

    rss_imports = peak_rss_mib()
    config = {"scheduler": "threads"}
    if threads:
        config["num_workers"] = threads
    with dask.config.set(config):
        ds = open_data(store, chunks={})  # the store's own chunks
        chunk_mib = math.prod(c[0] for c in ds["sst"].chunks) * 4 / 2**20
        start = time.perf_counter()
        stats = compute_stats(ds, invalid_along="time")
        elapsed = time.perf_counter() - start
    peak = peak_rss_mib()
    vs = stats["sst"]
    print(
        json.dumps(
            {
                "peak_rss_mib": round(peak, 1),
                "rss_after_imports_mib": round(rss_imports, 1),
                "seconds": round(elapsed, 1),
                "chunk_mib": chunk_mib,
                "threads": threads or dask.system.CPU_COUNT,
                "mean": vs.mean,
                "std": vs.std,
                "count": vs.count,
            }
        )
    )


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to put the store")
    parser.add_argument("--size-gib", type=float, default=4.5)
    parser.add_argument("--chunk-mib", type=float, default=64.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the store afterwards")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.threads)
        return

    base = Path(tempfile.mkdtemp(prefix="sparsediff-bench-", dir=args.dir))
    store = base / "big.zarr"
    try:
        start = time.perf_counter()
        shape = generate(store, args.size_gib, args.chunk_mib)
        gen_s = time.perf_counter() - start
        size = du(store)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(store)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        logical = math.prod(shape) * 4
        print(f"store          : {store}  shape {shape} float32, zarr v3 uncompressed")
        print(f"store size     : {size / 2**30:.2f} GiB on disk ({logical / 2**30:.2f} GiB data)")
        print(f"generation     : {gen_s:.1f} s")
        print(
            f"compute_stats  : {figures['seconds']} s, chunk {figures['chunk_mib']:.0f} MiB, "
            f"{figures['threads']} threads"
        )
        print(
            f"peak RSS       : {figures['peak_rss_mib']:.0f} MiB "
            f"(after imports {figures['rss_after_imports_mib']:.0f} MiB) = "
            f"{figures['peak_rss_mib'] * 2**20 / size * 100:.1f} % of the store"
        )
        print(
            f"stats          : mean {figures['mean']:.6f} std {figures['std']:.6f} "
            f"count {figures['count']}"
        )
    finally:
        if args.keep:
            print(f"kept {store}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
