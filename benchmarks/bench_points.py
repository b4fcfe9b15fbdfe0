"""Time and peak memory of gridding N random point observations (N = 1e4, 1e5, 1e6).

For each N, a fresh subprocess draws N random (time, lat, lon) points with
values and errors on a global grid (``--res`` degrees, ``--days`` daily steps),
and times each step of the point path:

- ``build``: :meth:`Observations.from_arrays` (NaN and duplicate checks);
- ``align``: :meth:`Observations.aligned_to` (longitudes from -180..180 onto
  the grid's 0..360, points outside dropped);
- ``bin``: :func:`bin_to_grid` (per-cell mean, count, spread, error);
- ``H``: the sparse observation operator (trilinear in time, lat, lon) and one
  ``H @ field``.

It reports each process's peak RSS (``VmHWM``) beside the size of the data and
the grid, and the bytes per point above a process that gridded 1e3 points:
flat bytes per point means memory O(N); a dense operator would need
``N * n_cells * 8`` bytes (printed as ``dense H``).

Usage::

    python benchmarks/bench_points.py [--sizes 10000 100000 1000000] [--res 0.25] [--days 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings

import numpy as np
from _common import load_line, peak_rss_mib


def child(n: int, res: float, days: int) -> dict:
    """Grid ``n`` random points; return the figures."""
    from sparsediff.data.binning import bin_to_grid
    from sparsediff.data.observations import Observations
    from sparsediff.data.target_grid import TargetGrid

    warnings.simplefilter("ignore")  # the longitude move is reported, as it should be
    end = np.datetime64("2020-01-01") + np.timedelta64(days, "D")
    bounds = {"time": ("2020-01-01", str(end)), "lat": (-90.0, 90.0), "lon": (0.0, 360.0)}
    grid = TargetGrid.from_bounds(bounds, {"time": "1D", "lat": res, "lon": res})
    rng = np.random.default_rng(n)
    seconds = rng.integers(0, days * 86400, n)
    coords = {
        "time": np.datetime64("2020-01-01", "ns") + seconds.astype("timedelta64[s]"),
        "lat": rng.uniform(-90.0, 90.0, n),
        "lon": rng.uniform(-180.0, 180.0, n),
    }
    values, error = rng.normal(290.0, 3.0, n), rng.uniform(0.05, 0.5, n)
    base = peak_rss_mib()
    figures: dict[str, float] = {"n": n, "cells": grid.size, "base_mib": base}
    t0 = time.perf_counter()
    obs = Observations.from_arrays("sst", values, coords, error=error, units="K")
    figures["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    aligned = obs.aligned_to(grid)
    figures["align_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = bin_to_grid(aligned, grid)
    figures["bin_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    H = aligned.operator(grid)
    at_points = H @ np.nan_to_num(ds["sst"].values).ravel()
    figures["H_s"] = time.perf_counter() - t0
    figures["nnz"] = int(H.nnz)
    figures["kept"] = len(aligned)
    figures["checksum"] = float(at_points.sum())
    figures["peak_mib"] = peak_rss_mib()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--res", type=float, default=0.25, help="grid step in degrees")
    parser.add_argument("--days", type=int, default=4, help="daily time steps")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.res, args.days)))
        return
    print(load_line("at start"))
    rows = []
    for n in [1000, *args.sizes]:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(n),
            "--res",
            str(args.res),
            "--days",
            str(args.days),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"N={n} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    ref = rows[0]
    shape = f"{args.days} days x {180 / args.res:.0f} x {360 / args.res:.0f}"
    print(f"grid: {shape} = {ref['cells']:.0f} cells")
    print(
        f"{'N':>9} {'build s':>8} {'align s':>8} {'bin s':>7} {'H s':>7} {'H nnz':>9} "
        f"{'peak MiB':>9} {'B/point':>8} {'dense H GiB':>12}"
    )  # fmt: skip
    for row in rows[1:]:
        per_point = (row["peak_mib"] - ref["peak_mib"]) * 2**20 / (row["n"] - ref["n"])
        dense = row["n"] * row["cells"] * 8 / 2**30
        print(
            f"{row['n']:>9.0f} {row['build_s']:>8.3f} {row['align_s']:>8.3f} {row['bin_s']:>7.3f} "
            f"{row['H_s']:>7.3f} {row['nnz']:>9.0f} {row['peak_mib']:>9.1f} {per_point:>8.0f} "
            f"{dense:>12.1f}"
        )  # fmt: skip
    print(load_line("at end"))


if __name__ == "__main__":
    main()
