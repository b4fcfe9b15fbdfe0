"""The torch first guesses against the exact Laplace solve: accuracy and time on real fields.

The v2 method learns the departure from a first guess computed from the shown
points (:mod:`sparsediff.method.first_guess`). This script measures, on real
data with hidden points:

- ``laplace+cg``: :func:`~sparsediff.method.first_guess.harmonic_fill` as the
  method runs it (coarse-to-fine Jacobi cascade, then conjugate-gradient
  refinement, float32 in / float64 CG);
- ``laplace``: the same cascade without the CG refinement (``cg_iters=0``);
- ``normconv``: :func:`~sparsediff.method.first_guess.normalized_convolution`;
- ``exact``: the sparse Laplace solve of the Laplace baseline
  (:func:`sparsediff.laplace.sparse.harmonic_solve`, float64, SuperLU up
  to 60,000 unknowns, else CG to 1e-8), the reference.

Cases:

- 2D: OSTIA SST anomalies (iris-sample-data): the last ``--fields`` months,
  anomalies from the per-point mean of the other months (so the hidden
  truth is not in the climatology); land is inactive (a zero-flux wall),
  longitude wraps (global grid);
- 3D: a centred ``--crop``³ crop of the MNI152 T1 template (nilearn), the air
  around the head inactive, ``--seeds-3d`` gap draws.

Gaps (``--gaps``, default ``boxes:0.3 cloud:0.3 mcar:0.5``) are drawn with
:func:`sparsediff.data.gaps.gap_mask` over the grid and hidden among the
observed points. For each case, gap pattern and method: the RMSE against the
truth at the hidden points (in the field's units), the largest and the RMS
difference from the exact solve over every unknown point (hidden or never
observed) where the exact solve is defined, and the time per field (batch 1,
as ``fill`` computes it; after one warm-up call; ``--threads`` torch threads).
Points the exact solve cannot reach (gap regions walled in by invalid points
with no shown point) are left out of every score.

Usage::

    python benchmarks/bench_first_guess.py [--fields 6] [--crop 64] [--seeds-3d 2]
        [--gaps boxes:0.3 cloud:0.3 mcar:0.5] [--only 2d 3d] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from _common import load_line


@dataclass
class Case:
    """Fields of one case: truth, where it is observed, the domain and its wrap."""

    name: str
    units: str
    values: np.ndarray  # (N, *spatial) float64, NaN where not observed
    observed: np.ndarray  # (N, *spatial) bool
    active: np.ndarray  # (*spatial) bool
    periodic: tuple[bool, ...]


def ostia_case(n_fields: int) -> Case:
    """The last ``n_fields`` OSTIA months as anomalies from the other months' mean."""
    from sparsediff.data.grid import is_global_longitude
    from sparsediff.data.sample_data import open_ostia

    ds = open_ostia()
    sst = ds["surface_temperature"].transpose("time", "latitude", "longitude")
    data = np.asarray(sst.values, dtype=np.float64)
    observed = np.isfinite(data)
    active = observed.any(axis=0)  # land: NaN at every step
    train = data[:-n_fields]
    seen = np.isfinite(train)
    count = seen.sum(axis=0)
    total = np.where(seen, train, 0.0).sum(axis=0)
    clim = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    fields = data[-n_fields:] - clim
    obs = observed[-n_fields:] & np.isfinite(clim)
    periodic = (False, bool(is_global_longitude(ds["longitude"])))
    return Case(
        f"OSTIA {data.shape[1]}x{data.shape[2]}",
        "K",
        fields,
        obs,
        active & np.isfinite(clim),
        periodic,
    )


def mni_case(crop: int) -> Case:
    """A centred ``crop``³ crop of MNI152, air inactive."""
    from sparsediff.data.sample_data import mni152, mni152_invalid

    ds = mni152(crop)
    active = ~np.asarray(mni152_invalid(ds).values)
    image = np.asarray(ds["image"].transpose("z", "y", "x").values, dtype=np.float64)
    shape = "x".join(map(str, image.shape))
    return Case(
        f"MNI152 {shape}", "intensity", image[None], active[None], active, (False, False, False)
    )


def torch_methods() -> dict[str, Callable[..., Any]]:
    """The torch guesses by name."""
    from sparsediff.method.first_guess import harmonic_fill, normalized_convolution

    return {
        "laplace+cg": harmonic_fill,
        "laplace": lambda v, k, a, periodic: harmonic_fill(v, k, a, periodic=periodic, cg_iters=0),
        "normconv": normalized_convolution,
    }


def run_case(case: Case, gaps: Sequence[str], seeds: int, seed: int) -> list[dict[str, Any]]:
    """Every gap pattern x method of one case; one row each."""
    import torch

    from sparsediff.data.gaps import gap_mask, parse_pattern
    from sparsediff.laplace.sparse import harmonic_solve

    spatial = case.values.shape[1:]
    methods = torch_methods()
    act_t = torch.from_numpy(case.active)[None, None]
    rows = []
    for spec in gaps:
        pattern, missing = parse_pattern(spec)
        items = []
        for i in range(case.values.shape[0]):
            for s in range(seeds):
                keep = gap_mask(spatial, pattern, missing, seed=seed + 1000 * i + s)
                known = case.observed[i] & keep
                items.append((case.values[i], known, case.observed[i] & ~keep))
        # the reference: exact sparse solve (float64)
        exact, exact_ms = [], []
        for values, known, _ in items:
            t0 = time.perf_counter()
            u = harmonic_solve(
                values,
                known,
                case.active,
                case.periodic,
                tol=1e-8,
                iters=5000,
                direct_max=60_000,
            )
            exact_ms.append(1e3 * (time.perf_counter() - t0))
            exact.append(u)
        estimates: dict[str, tuple[list[np.ndarray], list[float]]] = {"exact": (exact, exact_ms)}
        for name, fn in methods.items():
            v0, k0, _ = items[0]
            fn(  # warm-up
                torch.from_numpy(np.nan_to_num(v0)).float()[None, None],
                torch.from_numpy(k0)[None, None],
                act_t,
                periodic=case.periodic,
            )
            outs, ms = [], []
            for values, known, _ in items:
                v = torch.from_numpy(np.where(known, values, 0.0)).float()[None, None]
                k = torch.from_numpy(known)[None, None]
                t0 = time.perf_counter()
                out = fn(v, k, act_t, periodic=case.periodic)
                ms.append(1e3 * (time.perf_counter() - t0))
                outs.append(out[0, 0].double().numpy())
            estimates[name] = (outs, ms)
        n_hidden = sum(int(h.sum()) for _, _, h in items)
        for name, (outs, ms) in estimates.items():
            sq = n = 0.0
            diff_max = diff_sq = diff_n = 0.0
            for (values, known, hidden), est, ref in zip(items, outs, exact, strict=True):
                ok = np.isfinite(ref)  # reachable points (where the reference is defined)
                h = hidden & ok
                sq += float(np.sum((est[h] - values[h]) ** 2))
                n += int(h.sum())
                unknown = case.active & ~known & ok
                d = np.abs(est[unknown] - ref[unknown])
                if d.size:
                    diff_max = max(diff_max, float(d.max()))
                    diff_sq += float(np.sum(d**2))
                    diff_n += d.size
            rows.append(
                {
                    "case": case.name,
                    "units": case.units,
                    "gaps": spec,
                    "fields": len(items),
                    "hidden": n_hidden,
                    "scored": n,
                    "method": name,
                    "rmse": math.sqrt(sq / n) if n else float("nan"),
                    "max_diff": diff_max,
                    "rms_diff": math.sqrt(diff_sq / diff_n) if diff_n else float("nan"),
                    "ms": float(np.mean(ms)),
                }
            )
        print(f"  {case.name} {spec}: {len(items)} field(s) done ({load_line('now')})", flush=True)
    return rows


def main() -> None:
    """Parse options, run the cases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fields", type=int, default=6, help="last OSTIA months scored")
    parser.add_argument("--crop", type=int, default=64, help="MNI152 centred crop size")
    parser.add_argument("--seeds-3d", type=int, default=2, help="gap draws on the 3D volume")
    parser.add_argument("--gaps", nargs="+", default=["boxes:0.3", "cloud:0.3", "mcar:0.5"])
    parser.add_argument("--only", nargs="*", default=["2d", "3d"], choices=["2d", "3d"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="gap seed")
    args = parser.parse_args()
    if not 1 <= args.fields < 54 or args.crop < 8 or args.seeds_3d < 1:
        parser.error("need 1 <= --fields < 54, --crop >= 8 and --seeds-3d >= 1")

    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {os.cpu_count()} cores, {args.threads} torch thread(s)")
    print(load_line("at start") + " -- other processes may share these cores")
    t_all = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if "2d" in args.only:
        rows += run_case(ostia_case(args.fields), args.gaps, 1, args.seed)
    if "3d" in args.only:
        rows += run_case(mni_case(args.crop), args.gaps, args.seeds_3d, args.seed)

    header = (
        f"{'case':<20} {'gaps':<10} {'fields':>6} {'hidden':>8} {'method':<11} "
        f"{'RMSE':>9} {'max|d exact|':>12} {'rms|d exact|':>12} {'ms/field':>9}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        exact = r["method"] == "exact"
        print(
            f"{r['case']:<20} {r['gaps']:<10} {r['fields']:>6} {r['hidden']:>8} "
            f"{r['method']:<11} {r['rmse']:>9.4g} "
            f"{'ref' if exact else format(r['max_diff'], '.3g'):>12} "
            f"{'ref' if exact else format(r['rms_diff'], '.3g'):>12} {r['ms']:>9.1f}"
        )
    print(
        "RMSE = against the truth at the hidden points (OSTIA: K, MNI152: template intensity); "
        "d exact = torch guess - exact sparse solve over all unknown points; ms/field = batch 1"
    )
    print(f"\ntotal benchmark wall time {time.perf_counter() - t_all:.0f} s")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
