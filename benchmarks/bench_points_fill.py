"""Time and peak memory of mapping N point observations onto a grid: sparsediff vs kriging.

The task both methods do: N noisy point observations of sea surface
temperature, drawn uniformly over the sea cells and months of the 6 held-out
OSTIA months (``open_ostia().isel(time=slice(48, 54))``, 6 x 18 x 432 cells,
which the shipped demo model never saw), are mapped onto that grid. Each
point lies at a uniform random place inside its (month, sea cell); its value
is the month's field there, bilinear through H (the cell's own value where
H's stencil touches land), plus Gaussian noise of 0.1 K. Same seed, same
points for both methods.

- ``fill``: ``sparsediff.fill(DEMO_MODEL, points=obs, like=grid, members=M)``
  (the fill's defaults otherwise: 6 steps, seed 0), torch at 1 thread.
- ``kriging``: the package's point baseline
  [`Kriging`][sparsediff.evaluation.point_baselines.Kriging] (ordinary kriging
  with gstools, a variogram fitted per month) **uncapped**
  (``max_points=N``: every point of a month conditions that month), predicting
  every sea cell centre of each month. A size runs only when the largest
  month's kriging system fits the memory guard (``--max-gib``): ``6 x (n+1)^2
  x 8`` bytes for a month of ``n`` points (gstools inverts the matrix with
  numpy's ``pinv``, whose peak measured 5.5-7.9 matrix sizes at n = 1000-2000
  on the development machine). Sizes run in order until one fails, passes
  ``--timeout`` or is skipped; the larger ones are then listed as not run.

Each (method, N) runs in a fresh subprocess with every BLAS/OpenMP pool at 1
thread. Timed: the method's call alone, after loading the data and drawing the
points (``load s``, apart: loading the model, or importing gstools). Columns:

- ``cells %``: the share of the sea cells (of all 6 months) that hold at least
  one point; where it nears 100 % the grid is saturated and the fill has
  (almost) no gap left to fill: it bins;
- ``wall s`` and ``CPU s``: wall time and the process's CPU time
  (``resource.getrusage``) of the call;
- ``peak MiB``: peak RSS of the process during the call (``VmHWM``, reset
  just before the call through ``/proc/self/clear_refs``; without it, the
  peak since the start, or ``ru_maxrss`` without /proc): the interpreter, the
  libraries, the data and the points plus what the call adds; ``call MiB``:
  that peak less the RSS just before the call;
- ``RMSE K``: of the map against the true field over the sea cells (a check
  that both did the job; for an ensemble, of its mean).

Usage::

    python benchmarks/bench_points_fill.py   # = --fill-sizes 1000 10000 100000 1000000
        --kriging-sizes 1000 3000 10000 30000 100000 300000 1000000 --timeout 300
        --max-gib 8 --ensemble 8 --ensemble-at 10000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
from _common import load_line, peak_rss_mib, reset_peak_rss

if TYPE_CHECKING:
    import xarray as xr

    from sparsediff.data.observations import Observations

MONTHS = slice(48, 54)
NOISE = 0.1
VAR = "surface_temperature"
PINV_COPIES = 6  # the guard's factor: peak of the kriging solve over one matrix (see notes)


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def draw_points(n: int, seed: int = 0) -> tuple[Observations, xr.DataArray, float]:
    """``n`` noisy points uniform over the (month, sea cell) pairs; the truth; the share
    of the sea cells that hold at least one point."""
    from sparsediff.data.observations import Observations
    from sparsediff.data.sample_data import open_ostia

    truth = open_ostia().isel(time=MONTHS)[VAR].load()
    rng = np.random.default_rng([1608, seed, n])
    sea = np.argwhere(np.isfinite(truth.values))  # (time, lat, lon) index of each sea cell
    pick = sea[rng.integers(0, len(sea), n)]
    lat_c, lon_c = truth["latitude"].values, truth["longitude"].values
    dlat, dlon = np.abs(np.diff(lat_c)).mean(), np.abs(np.diff(lon_c)).mean()
    lat = lat_c[pick[:, 1]] + dlat * rng.uniform(-0.5, 0.5, n)
    lat = np.clip(lat, lat_c.min(), lat_c.max())
    lon = (lon_c[pick[:, 2]] + dlon * rng.uniform(-0.5, 0.5, n)) % 360.0
    times = truth["time"].values[pick[:, 0]]
    probe = Observations.from_arrays("probe", np.zeros(n), {"time": times, "lat": lat, "lon": lon})
    value = np.asarray(probe.at(truth, time="nearest").values, dtype=np.float64)
    own = truth.values[pick[:, 0], pick[:, 1], pick[:, 2]]
    value = np.where(np.isfinite(value), value, own) + rng.normal(0.0, NOISE, n)
    obs = Observations.from_arrays(VAR, value, {"time": times, "lat": lat, "lon": lon}, units="K")
    share = np.unique(pick, axis=0).shape[0] / len(sea)
    return obs, truth, share


def _rmse(field: np.ndarray, truth: np.ndarray) -> float:
    sea = np.isfinite(truth)
    return float(np.sqrt(np.nanmean((field[sea] - truth[sea]) ** 2)))


def child_fill(n: int, members: int) -> dict:
    """Fill the grid from ``n`` points with sparsediff; return the figures."""
    import torch

    import sparsediff
    from sparsediff.demo import DEMO_MODEL

    torch.set_num_threads(1)
    obs, truth, share = draw_points(n)
    t0 = time.perf_counter()
    model = sparsediff.load(DEMO_MODEL)
    load_s = time.perf_counter() - t0
    base = reset_peak_rss()
    cpu0, t0 = _cpu(), time.perf_counter()
    out = sparsediff.fill(model, points=obs, like=truth.to_dataset(), members=members)
    field = out[VAR]
    field = field.mean("member") if "member" in field.dims else field
    values = np.asarray(field.values)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    figures = {"n": len(obs), "method": "fill", "members": members, "wall_s": wall}
    figures.update(cpu_s=cpu, load_s=load_s, base_mib=base, peak_mib=peak_rss_mib())
    figures.update(rmse=_rmse(values, truth.values), share=share)
    return figures


def child_kriging(n: int, max_gib: float) -> dict:
    """Map ``n`` points by uncapped ordinary kriging per month; return the figures."""
    from sparsediff.data.observations import Observations
    from sparsediff.data.target_grid import TargetGrid
    from sparsediff.evaluation.point_baselines import Kriging, time_steps

    obs, truth, share = draw_points(n)
    grid = TargetGrid.from_dataset(truth)
    cells = np.argwhere(np.isfinite(truth.values))  # targets: every sea cell centre
    coords = {
        "time": truth["time"].values[cells[:, 0]],
        "lat": truth["latitude"].values[cells[:, 1]],
        "lon": truth["longitude"].values[cells[:, 2]],
    }
    targets = Observations.from_arrays(VAR, np.zeros(len(cells)), coords)
    largest = int(np.bincount(time_steps(obs.aligned_to(grid), grid)).max())
    need = PINV_COPIES * (largest + 1) ** 2 * 8 / 2**30
    figures: dict = {"n": len(obs), "method": "kriging", "members": 1, "step_max": largest}
    figures.update(need_gib=need, share=share)
    if need > max_gib:
        figures["skipped"] = f"skipped: would need {need:.3g} GiB"
        return figures
    t0 = time.perf_counter()
    import gstools  # noqa: F401 (imported here so that the call is timed without it)

    load_s = time.perf_counter() - t0
    base = reset_peak_rss()
    cpu0, t0 = _cpu(), time.perf_counter()
    shown, targets = obs.aligned_to(grid), targets.aligned_to(grid)
    forecast = Kriging(max_points=max(len(obs), 3)).predict(shown, targets, grid)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    field = np.full(truth.shape, np.nan)
    field[cells[:, 0], cells[:, 1], cells[:, 2]] = forecast.mean
    figures.update(wall_s=wall, cpu_s=cpu, load_s=load_s, base_mib=base, peak_mib=peak_rss_mib())
    figures["rmse"] = _rmse(field, truth.values)
    figures["notes"] = list(forecast.notes)
    return figures


def _run_child(args: list[str], timeout: float | None) -> dict:
    """One child run; its figures, or ``{"failed": why}``."""
    env = {**os.environ}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    cmd = [sys.executable, __file__, "--child", *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {time.perf_counter() - t0:.0f} s (limit)"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"failed": f"exit {proc.returncode}: {last[:120]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row(n: int, method: str, members: int, r: dict) -> str:
    head = f"{n:>9} {method:>8} {members:>7}"
    if "wall_s" not in r:
        return f"{head}  {r.get('failed') or r.get('skipped')}"
    return (
        f"{head} {100 * r['share']:>7.1f} {r['load_s']:>7.1f} {r['wall_s']:>9.1f} "
        f"{r['cpu_s']:>9.1f} {r['peak_mib']:>9.0f} {r['peak_mib'] - r['base_mib']:>9.0f} "
        f"{r['rmse']:>7.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fill-sizes", type=int, nargs="+", default=[1000, 10**4, 10**5, 10**6])
    parser.add_argument(
        "--kriging-sizes", type=int, nargs="*",
        default=[1000, 3000, 10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6],
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=300.0, help="kriging wall limit, s")
    parser.add_argument("--max-gib", type=float, default=8.0, help="kriging memory guard")
    parser.add_argument("--ensemble", type=int, default=8, help="members of the extra fill row")
    parser.add_argument("--ensemble-at", type=int, default=10**4, help="its N (0: no such row)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        warnings.simplefilter("ignore")
        method, n, extra = args.child[0], int(args.child[1]), args.child[2]
        if method == "fill":
            print(json.dumps(child_fill(n, int(extra))))
        else:
            print(json.dumps(child_kriging(n, float(extra))))
        return
    print(load_line("at start"))
    print(
        f"{'N':>9} {'method':>8} {'members':>7} {'cells %':>7} {'load s':>7} {'wall s':>9} "
        f"{'CPU s':>9} {'peak MiB':>9} {'call MiB':>9} {'RMSE K':>7}",
        flush=True,
    )
    runs = [(n, 1) for n in args.fill_sizes]
    if args.ensemble_at:
        runs.append((args.ensemble_at, args.ensemble))
    for n, members in runs:
        r = _run_child(["fill", str(n), str(members)], None)
        print(_row(n, "fill", members, r), flush=True)
    stopped = ""
    for n in args.kriging_sizes:
        if stopped:
            need = PINV_COPIES * (n / 6 + 1) ** 2 * 8 / 2**30  # about n / 6 points a month
            print(f"{n:>9} {'kriging':>8} {1:>7}  not run: {stopped} (~{need:.1f} GiB)")
            continue
        r = _run_child(["kriging", str(n), str(args.max_gib)], args.timeout)
        print(_row(n, "kriging", 1, r), flush=True)
        for note in r.get("notes", []):
            print(f"{'':>9} note: {note}")
        if "wall_s" not in r:
            stopped = f"kriging stopped at N={n}"
    print(load_line("at end"))


if __name__ == "__main__":
    main()
