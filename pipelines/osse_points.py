"""OSSE: points sampled from held-out OSTIA months, filled, scored at held-out points.

An observing-system simulation experiment, as the ocean mapping data
challenges run them: the truth is a real field the model never saw (the last
``test_months`` months of the OSTIA sample; the shipped demo model was trained
on the months before them), observations are sampled from it, and every
method maps the shown observations and is scored at the held-out ones'
exact locations (`sparsediff.evaluation.points.evaluate_points`).

Samplings (each month on its own, at the month's time step):

- ``random``: float-like points, ``fraction`` of the month's sea cells, each at
  a uniform random place inside its cell; held out by ``points:F``;
- ``tracks``: synthetic satellite ground tracks crossing the latitude band at a
  small angle to the meridians (``slope`` degrees of longitude per degree of
  latitude, ascending or descending), a point every ``spacing`` degrees of
  latitude; one platform id per track, held out whole by ``platforms:F``.

The truth at a point is the month's field interpolated bilinearly through H
(points whose stencil touches land are left out), plus Gaussian noise of
``noise`` (K), recorded as the observations' ``error``; ``obs_error`` (config
key or ``--obs-error``; ``add`` by default, as ``evaluate_points``) says
whether the scores add it to each method's spread. Besides sparsediff and
the package's point baselines (kriging, griddata, binned-then-Laplace) two
references use the model's climatology
(the 48 training months' per-cell mean, which sparsediff itself starts from):
``climatology`` alone, and ``kriging_anomaly`` (kriging of the observations'
departures from it, added back), the classical mapping with the same prior.

Usage::

    python pipelines/osse_points.py pipelines/configs/osse_points_ostia.yaml --out runs/osse
    python pipelines/osse_points.py CONFIG --out DIR --only random_5pct --obs-error ignore
    python pipelines/osse_points.py CONFIG --out DIR --seeds 0 1 2 3 4 5

``--seeds``: one draw per seed (points, holdout and fill; ``OUT/seedN``),
then ``OUT/pooled.csv``: per sampling and method the scores over every draw's
held-out points (`pooled`). A draw holds out tens to hundreds of points, and
along tracks whole tracks whose errors move together, so the spread/skill of
one draw scatters widely (0.59 to 1.65 over six draws of the tracks); the
pooled figure is the one to judge.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import xarray as xr
import yaml

import sparsediff
from sparsediff.data.climatology import aligned_climatology
from sparsediff.data.observations import Observations
from sparsediff.data.target_grid import TargetGrid
from sparsediff.errors import ConfigError, SparsediffError
from sparsediff.evaluation.point_baselines import Kriging, PointBaseline, PointForecast
from sparsediff.evaluation.points import OBS_ERROR_MODES, evaluate_points

__all__ = ["main", "pooled", "random_points", "run", "run_seeds", "track_points"]

_KEYS = {
    "model", "test_months", "seed", "members", "steps", "noise", "kriging_max_points",
    "samplings", "obs_error", "calibrate",
}  # fmt: skip
_SAMPLING_KEYS = {"name", "kind", "fraction", "tracks_per_month", "spacing", "slope", "holdout"}


def _steps(cfg: dict[str, Any]) -> int | None:
    """The sampler steps of the config (``None``: the model's calibrated steps)."""
    steps = cfg.get("steps")
    return None if steps is None else int(steps)


def load_config(path: Path) -> dict[str, Any]:
    """The YAML config, checked: known keys only, every sampling named and of a known kind."""
    try:
        cfg = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(cfg, dict) or set(cfg) - _KEYS:
        raise ConfigError(f"config {path}: unknown keys {sorted(set(cfg or {}) - _KEYS)}")
    if cfg.get("obs_error", "add") not in OBS_ERROR_MODES:
        raise ConfigError(f"config {path}: obs_error must be 'add' or 'ignore'")
    for s in cfg.get("samplings", []):
        if set(s) - _SAMPLING_KEYS or s.get("kind") not in ("random", "tracks") or "name" not in s:
            raise ConfigError(f"config {path}: bad sampling {s}")
    return cfg


def _at(truth: xr.DataArray, t: int, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The month ``t`` of ``truth`` at the points, bilinear through H (NaN near land)."""
    month = truth.isel(time=t)
    probe = Observations.from_arrays("probe", np.zeros(lat.size), {"lat": lat, "lon": lon})
    return np.asarray(probe.at(month).values, dtype=np.float64)


def _observations(
    parts: list[dict[str, np.ndarray]], name: str, units: str, noise: float
) -> Observations:
    """The sampled points (those off land), with the noise's std as their ``error``."""
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    keep = np.isfinite(cat["value"])
    plat = cat["platform"][keep] if "platform" in cat else None
    coords = {k: cat[k][keep] for k in ("time", "lat", "lon")}
    error = np.full(int(keep.sum()), noise) if noise > 0 else None
    return Observations.from_arrays(
        name, cat["value"][keep], coords, error=error, platform=plat, units=units
    )


def random_points(
    truth: xr.DataArray, fraction: float, noise: float, rng: np.random.Generator
) -> Observations:
    """``fraction`` of each month's sea cells, one point at a random place in each."""
    lat_c, lon_c = truth["latitude"].values.astype(float), truth["longitude"].values.astype(float)
    dlat, dlon = np.abs(np.diff(lat_c)).mean(), np.abs(np.diff(lon_c)).mean()
    parts = []
    for t in range(truth.sizes["time"]):
        sea = np.argwhere(np.isfinite(truth.isel(time=t).values))
        pick = sea[rng.permutation(len(sea))[: round(fraction * len(sea))]]
        lat = lat_c[pick[:, 0]] + dlat * rng.uniform(-0.5, 0.5, len(pick))
        lon = (lon_c[pick[:, 1]] + dlon * rng.uniform(-0.5, 0.5, len(pick))) % 360.0
        lat = np.clip(lat, lat_c.min(), lat_c.max())  # inside the outermost centres
        value = _at(truth, t, lat, lon) + rng.normal(0.0, noise, len(pick))
        time_ = np.full(len(pick), truth["time"].values[t])
        parts.append({"time": time_, "lat": lat, "lon": lon, "value": value})
    return _observations(parts, str(truth.name), truth.attrs.get("units", "K"), noise)


def track_points(
    truth: xr.DataArray,
    tracks_per_month: int,
    spacing: float,
    slope: float,
    noise: float,
    rng: np.random.Generator,
) -> Observations:
    """Straight ground tracks across the band; one platform id per track."""
    lat_c = truth["latitude"].values.astype(float)
    lat = np.arange(lat_c.min(), lat_c.max() + 1e-9, spacing)
    parts, pid = [], 0
    for t in range(truth.sizes["time"]):
        for _ in range(tracks_per_month):
            sign = rng.choice([-1.0, 1.0])  # ascending or descending
            lon = (rng.uniform(0.0, 360.0) + sign * slope * (lat - lat.min())) % 360.0
            value = _at(truth, t, lat, lon) + rng.normal(0.0, noise, lat.size)
            time_ = np.full(lat.size, truth["time"].values[t])
            parts.append(
                {
                    "time": time_,
                    "lat": lat,
                    "lon": lon,
                    "value": value,
                    "platform": np.full(lat.size, pid),
                }
            )
            pid += 1
    return _observations(parts, str(truth.name), truth.attrs.get("units", "K"), noise)


class _Background(PointBaseline):
    """A point baseline on departures from a background field (added back); or the background."""

    name: ClassVar[str] = "background"

    def __init__(self, label: str, background: xr.DataArray, inner: PointBaseline | None) -> None:
        self.label, self.background, self.inner = label, background, inner

    def predict(
        self,
        shown: Observations,
        targets: Observations,
        grid: TargetGrid,
        invalid: xr.DataArray | None = None,
    ) -> PointForecast:
        def at(obs: Observations) -> np.ndarray:
            if "time" in self.background.dims:  # a seasonal cycle at the test months
                return np.asarray(obs.at(self.background).values)
            space = Observations(
                obs.name, obs.values, {k: v for k, v in obs.coords.items() if k != "time"}
            )
            return np.asarray(space.at(self.background).values)

        bg_targets = at(targets)
        if self.inner is None:
            return PointForecast(bg_targets)
        departures = Observations(shown.name, shown.values - at(shown), shown.coords)
        inner = self.inner.predict(departures, targets, grid, invalid)
        return PointForecast(inner.mean + bg_targets, inner.std, inner.notes, inner.nugget)


def _named(base: _Background) -> _Background:
    base.name = base.label  # type: ignore[misc]  # the row's name in the table
    return base


def run(cfg: dict[str, Any], out: Path, only: list[str] | None = None) -> pd.DataFrame:
    """Run every sampling of ``cfg`` (those named in ``only``, when given); write
    ``out/scores.csv``; return the table.

    A sampling draws its points from its index in the config, so running some
    of them alone gives the same points as running them all.
    """
    model_path = cfg.get("model", "demo")
    model = sparsediff.load(
        Path(str(sparsediff.__file__)).parent / "assets" / "demo_model"
        if model_path == "demo"
        else model_path
    )
    from sparsediff.data.sample_data import open_ostia

    ds = open_ostia().load()
    n = ds.sizes["time"]
    test = ds.isel(time=slice(n - int(cfg.get("test_months", 6)), n))
    var = model.variables[0]
    truth = test[var]
    seed = int(cfg.get("seed", 0))
    noise = float(cfg.get("noise", 0.1))
    # the model's climatology; a seasonal one evaluated at the test months
    clim = aligned_climatology(test, {var: model.climatology[var]})[var]
    kmax = int(cfg.get("kriging_max_points", 1000))
    baselines: list[Any] = [
        Kriging(max_points=kmax, seed=seed), "griddata", "binned_laplace",
        _named(_Background("climatology", clim, None)),
        _named(_Background("kriging_anomaly", clim, Kriging(max_points=kmax, seed=seed))),
    ]  # fmt: skip
    rows = []
    for i, s in enumerate(cfg["samplings"]):
        if only and s["name"] not in only:
            continue
        rng = np.random.default_rng([seed, i])
        if s["kind"] == "random":
            obs = random_points(truth, float(s["fraction"]), noise, rng)
        else:
            obs = track_points(
                truth, int(s.get("tracks_per_month", 20)), float(s.get("spacing", 0.25)),
                float(s.get("slope", 0.2)), noise, rng,
            )  # fmt: skip
        t0 = time.perf_counter()
        table = evaluate_points(
            obs, model, test, holdout=s["holdout"], seed=seed, members=int(cfg.get("members", 8)),
            steps=_steps(cfg), baselines=baselines,
            obs_error=cfg.get("obs_error", "add"), calibrate=cfg.get("calibrate", "auto"),
        )  # fmt: skip
        cells = int(np.isfinite(truth.values).sum())
        table.insert(0, "sampling", s["name"])
        table.insert(1, "observations", len(obs))
        table.insert(2, "per_sea_cell", len(obs) / cells)
        table.insert(3, "obs_error", table.attrs["obs_error"])
        table.insert(4, "calibrate", cfg.get("calibrate", "auto"))
        rows.append(table)
        print(f"{s['name']}: {len(obs)} observations, {time.perf_counter() - t0:.0f} s", flush=True)
        for note in table.attrs.get("notes", []):
            print(f"  note: {note}", flush=True)
    result = pd.concat(rows, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    result.to_csv(out / "scores.csv", index=False, float_format="%.4f")
    return result


def pooled(table: pd.DataFrame) -> pd.DataFrame:
    """Scores over the held-out points of every draw (``seed``) per sampling and method.

    RMSE: the root of the point-weighted mean square; MAE and CRPS:
    point-weighted means; spread/skill: the root of the point-weighted mean
    of ``(spread/skill * rmse)**2`` (the squared spread) over the pooled RMSE,
    with the draws' smallest and largest beside it.
    """
    rows = []
    for (sampling, method), g in table.groupby(["sampling", "method"], sort=False):
        n = g["n_points"].to_numpy(float)
        rmse = np.sqrt(np.sum(n * g["rmse"].to_numpy() ** 2) / n.sum())
        ss = g["spread_skill"].to_numpy(float)
        spread = np.sqrt(np.sum(n * (ss * g["rmse"].to_numpy()) ** 2) / n.sum())
        rows.append(
            {
                "sampling": sampling, "method": method, "draws": len(g), "n_points": int(n.sum()),
                "rmse": rmse, "mae": np.sum(n * g["mae"]) / n.sum(),
                "crps": np.sum(n * g["crps"]) / n.sum(),
                "spread_skill": spread / rmse if np.isfinite(ss).all() else np.nan,
                "spread_skill_min": np.nanmin(ss) if np.isfinite(ss).any() else np.nan,
                "spread_skill_max": np.nanmax(ss) if np.isfinite(ss).any() else np.nan,
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def run_seeds(
    cfg: dict[str, Any], out: Path, seeds: list[int], only: list[str] | None = None
) -> pd.DataFrame:
    """`run` once per seed (``OUT/seedN``); write ``OUT/scores.csv`` (every draw, with
    its ``seed``) and ``OUT/pooled.csv`` (`pooled`); return the pooled table."""
    tables = []
    for seed in seeds:
        table = run({**cfg, "seed": seed}, out / f"seed{seed}", only)
        table.insert(0, "seed", seed)
        tables.append(table)
    every = pd.concat(tables, ignore_index=True)
    every.to_csv(out / "scores.csv", index=False, float_format="%.4f")
    result = pooled(every)
    result.to_csv(out / "pooled.csv", index=False, float_format="%.4f")
    return result


def plot_map(cfg: dict[str, Any], sampling: str, month: int, path: Path) -> Path:
    """Points, ensemble mean, spread and truth of one month of one sampling (a PNG).

    The fill is the one the evaluation scores (same sampling, holdout, seed and options).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sparsediff.data.sample_data import open_ostia
    from sparsediff.filling.points import fill_points

    model = sparsediff.load(Path(str(sparsediff.__file__)).parent / "assets" / "demo_model")
    ds = open_ostia().load()
    n = ds.sizes["time"]
    test = ds.isel(time=slice(n - int(cfg.get("test_months", 6)), n))
    truth = test[model.variables[0]]
    i, s = next((i, s) for i, s in enumerate(cfg["samplings"]) if s["name"] == sampling)
    seed = int(cfg.get("seed", 0))
    rng = np.random.default_rng([seed, i])
    noise = float(cfg.get("noise", 0.1))
    if s["kind"] == "random":
        obs = random_points(truth, float(s["fraction"]), noise, rng)
    else:
        obs = track_points(
            truth, int(s.get("tracks_per_month", 20)), float(s.get("spacing", 0.25)),
            float(s.get("slope", 0.2)), noise, rng,
        )  # fmt: skip
    shown, held = obs.holdout(s["holdout"], seed=seed)
    filled = fill_points(
        model, shown, test, members=int(cfg.get("members", 8)),
        steps=_steps(cfg), seed=seed, calibrate=cfg.get("calibrate", "auto"),
    )[truth.name]  # fmt: skip
    t = truth["time"].values[month]
    panels = [
        ("truth", truth.isel(time=month)),
        ("ensemble mean", filled.isel(time=month).mean("member")),
        ("ensemble spread (std)", filled.isel(time=month).std("member")),
    ]
    lo, hi = np.nanpercentile(truth.isel(time=month), [1, 99])
    fig, axes = plt.subplots(4, 1, figsize=(14, 7.5), sharex=True, constrained_layout=True)
    for o, marker, label in ((shown, "o", "shown"), (held, "x", "held out")):
        m = o.coords["time"] == t
        axes[0].scatter(
            o.coords["lon"][m],
            o.coords["lat"][m],
            c=o.values[m],
            s=12,
            marker=marker,
            vmin=lo,
            vmax=hi,
            cmap="RdYlBu_r",
            label=label,
        )
    axes[0].set_title(f"{sampling}: observations of {str(t)[:7]} (o shown, x held out)")
    axes[0].set_ylim(float(truth.latitude.min()) - 0.3, float(truth.latitude.max()) + 0.3)
    for ax, (title, da) in zip(axes[1:], panels, strict=True):
        spread = title.startswith("ensemble spread")
        im = da.plot(ax=ax, cmap="viridis" if spread else "RdYlBu_r", vmin=0 if spread else lo,
                     vmax=None if spread else hi, add_colorbar=True)  # fmt: skip
        ax.set_title(title)
        del im
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: ``osse_points.py CONFIG --out DIR [--threads N] [--map SAMPLING MONTH]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/osse_points"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--map",
        nargs=2,
        metavar=("SAMPLING", "MONTH"),
        default=None,
        help="only draw OUT/map_SAMPLING.png of that month (0 = first test month)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="SAMPLING",
        default=None,
        help="run only these samplings of the config (the same points as in a full run)",
    )
    parser.add_argument(
        "--obs-error",
        choices=OBS_ERROR_MODES,
        default=None,
        help="add the observation error to every method's spread, or not (default: the "
        "config's obs_error, else 'add', as evaluate_points)",
    )
    parser.add_argument(
        "--calibrate",
        choices=("auto", "validation", "input"),
        default=None,
        help="sparsediff's spread calibration: the model's own, or refitted on the shown "
        "observations, or auto: the package default (default: the config's calibrate, else auto)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="one draw per seed (instead of the config's seed), scored pooled: OUT/pooled.csv",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        cfg = load_config(args.config)
        if args.calibrate:
            cfg["calibrate"] = args.calibrate
        if args.map:
            name, month = args.map[0], int(args.map[1])
            print(plot_map(cfg, name, month, args.out / f"map_{name}.png"))
            return 0
        if args.obs_error:
            cfg["obs_error"] = args.obs_error
        unknown = set(args.only or ()) - {s["name"] for s in cfg.get("samplings", [])}
        if unknown:
            raise ConfigError(f"--only: no sampling named {', '.join(sorted(unknown))}")
        if args.seeds:
            table = run_seeds(cfg, args.out, args.seeds, args.only)
            cols = ["sampling", "method", "draws", "rmse", "crps", "spread_skill"]
            cols += ["spread_skill_min", "spread_skill_max", "n_points"]
            print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            return 0
        table = run(cfg, args.out, args.only)
    except SparsediffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cols = [
        "sampling",
        "obs_error",
        "method",
        "rmse",
        "mae",
        "crps",
        "spread_skill",
        "n_points",
        "seconds",
    ]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
