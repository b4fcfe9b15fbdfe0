"""What a fill costs next to DINEOF on the same months (issue 17), with a profile.

The case is the demo's: the last ``--months`` (6) months of OSTIA SST with a
``cloud:0.3`` pattern (seed 0) hidden among their observed points
(`sparsediff.evaluation.holdout.make_holdout`), land (NaN at every one of
the 54 steps) as the invalid mask. In one process, after a warm-up:

- ``sparsediff.fill`` of those months with the model (``--model``, default the
  shipped demo model) at each of ``--members`` (1 and 8) with the library's
  default options (steps, batch size) unless ``--steps`` / ``--batch-size``
  are given;
- `DINEOF` (``max_rank=8`` as in the
  demo) on the same months;

each ``--repeats`` times, alternating, the fastest of each shown with the ratio
``fill / DINEOF``, and the held-out RMSE and CRPS (8 members) so a faster fill
can be checked to be as good. ``--profile N`` also runs one fill per member
count under `cProfile` and prints the ``N`` functions with the most
cumulative time. Wall and process CPU seconds are both shown (CPU time is the
steadier figure on a shared machine; run with ``OMP_NUM_THREADS=1`` so that
DINEOF's LAPACK is on one thread too). ``--only fill|dineof`` times one side alone (for external
paired timings: the process then does one warm-up and one timed run).

Usage::

    python benchmarks/bench_cost.py [--model DIR] [--months 6] [--members 1 8]
        [--steps S] [--batch-size B] [--repeats 3] [--threads 1] [--profile 25]
        [--only fill|dineof]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
from pathlib import Path
from typing import Any

from _common import load_line, peak_rss_mib

DEMO_MODEL = Path(__file__).resolve().parents[1] / "sparsediff" / "assets" / "demo_model"
DINEOF_MAX_RANK = 8


def case(months: int) -> tuple[Any, Any, Any, Any]:
    """(gappy months, held-out mask, truth, land) of the demo case."""
    from sparsediff.data.sample_data import open_ostia
    from sparsediff.evaluation.holdout import make_holdout

    ds = open_ostia().load()
    nt = ds.sizes["time"]
    gappy, held = make_holdout(
        ds,
        "cloud:0.3",
        dims=("latitude", "longitude"),
        seed=0,
        invalid_along="time",
        region={"time": slice(nt - 6, nt)},
    )
    sel = {"time": slice(nt - months, None)}
    var = next(iter(held.data_vars))
    land = ds[var].isnull().all("time")
    return gappy.isel(sel), held[var].isel(sel), ds[var].isel(sel), land


def run_fill(model: Any, sub: Any, land: Any, members: int, args: argparse.Namespace) -> Any:
    """One ``sparsediff.fill`` (values computed); options left at defaults unless given."""
    import sparsediff

    kw: dict[str, Any] = {"members": members, "invalid": land, "device": "cpu"}
    if args.steps is not None:
        kw["steps"] = args.steps
    if args.batch_size is not None:
        kw["batch_size"] = args.batch_size
    out = sparsediff.fill(sub, model, **kw)
    _ = out[model.variables[0]].values
    return out


def run_dineof(sub: Any, land: Any) -> Any:
    """DINEOF of the same months (demo settings)."""
    from sparsediff.evaluation.baselines import DINEOF

    return DINEOF(max_rank=DINEOF_MAX_RANK, seed=0).fill(
        sub, dims=("latitude", "longitude"), invalid=land
    )


def scores(filled: Any, var: str, held: Any, truth: Any) -> tuple[float, float]:
    """RMSE of the ensemble mean and CRPS over the held-out points."""
    from sparsediff.evaluation.metrics import crps, rmse

    da = filled[var]
    mean = da.mean("member") if "member" in da.dims else da
    spread = float(crps(da, truth, held)) if "member" in da.dims else float("nan")
    return float(rmse(mean, truth, held)), spread


def profile(fn: Any, top: int) -> str:
    """The ``top`` functions by cumulative time of one call of ``fn``."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def curve(model: Any, sub: Any, held: Any, truth: Any, land: Any, args: Any) -> None:
    """RMSE and CRPS of a fill against the sampler steps (and the seed noise)."""
    import sparsediff

    var = model.variables[0]
    top = max(args.curve)
    runs = [(s, 0) for s in sorted(args.curve)] + [(top, k) for k in range(1, args.curve_seeds + 1)]
    got = {}
    for steps, seed in runs:
        t0 = time.perf_counter()
        out = sparsediff.fill(
            sub,
            model,
            members=args.curve_members,
            steps=steps,
            seed=seed,
            invalid=land,
            device="cpu",
        )
        got[(steps, seed)] = (*scores(out, var, held, truth), time.perf_counter() - t0)
    r0, c0, _ = got[(top, 0)]
    print(
        f"{args.curve_members} member(s), dpmpp_2m; relative to {top} steps seed 0 "
        f"(RMSE {r0:.4f}, CRPS {c0:.4f})"
    )
    print(f"{'steps':>5} {'seed':>4} {'rmse':>8} {'crps':>8} {'d rmse':>8} {'d crps':>8} {'s':>6}")
    for (steps, seed), (r, c, t) in got.items():
        print(
            f"{steps:5d} {seed:4d} {r:8.4f} {c:8.4f} {r / r0 - 1:+8.2%} {c / c0 - 1:+8.2%} {t:6.1f}"
        )


def main() -> None:
    """Time fill and DINEOF on the same months; print the ratios (and a profile)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEMO_MODEL)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=None, help="default: fill's default")
    parser.add_argument("--batch-size", type=int, default=None, help="default: fill's default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, help="print the top N by cumtime")
    parser.add_argument("--only", choices=["fill", "dineof"], default=None)
    parser.add_argument(
        "--curve",
        type=int,
        nargs="+",
        default=None,
        help="instead: RMSE/CRPS of a fill (--curve-members) at each of these steps",
    )
    parser.add_argument(
        "--curve-seeds", type=int, default=2, help="extra seeds at the most steps (noise)"
    )
    parser.add_argument("--curve-members", type=int, default=8, help="members of the curve")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import sparsediff

    model = sparsediff.load(args.model)
    var = model.variables[0]
    sub, held, truth, land = case(args.months)
    if args.curve:
        curve(model, sub, held, truth, land, args)
        return
    if args.only == "fill":
        for m in args.members:
            run_fill(model, sub.isel(time=slice(0, 1)), land, m, args)  # warm-up
            run_fill(model, sub, land, m, args)
        return
    if args.only == "dineof":
        run_dineof(sub, land)
        return
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {args.threads} torch thread(s)")
    print(load_line("at start") + " -- other processes may share these cores")
    run_fill(model, sub.isel(time=slice(0, 1)), land, 1, args)  # warm-up
    run_dineof(sub, land)
    times: dict[str, list[tuple[float, float]]] = {"dineof": []}
    results: dict[str, Any] = {}
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        results["dineof"] = run_dineof(sub, land)
        times["dineof"].append((time.perf_counter() - t0, time.process_time() - c0))
        for m in args.members:
            t0, c0 = time.perf_counter(), time.process_time()
            results[f"fill x{m}"] = run_fill(model, sub, land, m, args)
            took = (time.perf_counter() - t0, time.process_time() - c0)
            times.setdefault(f"fill x{m}", []).append(took)
    base_w = min(w for w, _ in times["dineof"])
    base_c = min(c for _, c in times["dineof"])
    print(f"\n{args.months} OSTIA months, cloud:0.3 hidden; best of {args.repeats}")
    print(
        f"{'method':<10} {'wall s':>7} {'/DINEOF':>8} {'cpu s':>7} {'/DINEOF':>8} "
        f"{'rmse':>7} {'crps':>7}  all walls"
    )
    for name, ts in times.items():
        r, c = scores(results[name], var, held, truth)
        w, cpu = min(t for t, _ in ts), min(t for _, t in ts)
        runs = [round(t, 2) for t, _ in ts]
        print(
            f"{name:<10} {w:7.2f} {w / base_w:8.2f} {cpu:7.2f} {cpu / base_c:8.2f} "
            f"{r:7.4f} {c:7.4f}  {runs}"
        )
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    for m in args.members if args.profile else []:
        print(f"\n--- profile: fill, {m} member(s) ---")
        print(profile(lambda m=m: run_fill(model, sub, land, m, args), args.profile))
    print(load_line("at end"))


if __name__ == "__main__":
    main()
