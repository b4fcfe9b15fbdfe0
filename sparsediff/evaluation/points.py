"""Scoring a fill at held-out point observations: ``evaluate_points``.

The observations are split by ``"points:F"`` (random observations) or
``"platforms:F"`` (whole stations, floats or tracks;
[`holdout`][sparsediff.data.observations.Observations.holdout]). The shown part
is filled onto the grid by [`fill_points`][sparsediff.filling.points.fill_points]
and by the point baselines ([`point_baselines`][sparsediff.evaluation.point_baselines]);
each is then read at the held-out observations' exact locations, through H
([`at`][sparsediff.data.observations.Observations.at], nearest time step by
default, the step binning puts an observation on), and scored against their
values:

- ``rmse``, ``mae``: of the ensemble mean (the estimate of a deterministic
  baseline);
- ``crps``: of the ensemble ([`crps`][sparsediff.evaluation.metrics.crps]); of
  the Gaussian ``N(mean, std**2)`` for a baseline that gives a standard
  deviation (kriging, `scoringrules.crps_normal`); the MAE otherwise;
- ``spread_skill``: ensemble spread over the RMSE of the ensemble mean
  ([`spread_skill_ratio`][sparsediff.evaluation.metrics.spread_skill_ratio]); for kriging
  the root mean kriging variance over its RMSE; NaN for a deterministic one.

Every method is scored on the same observations: those where every method
has a finite value (an observation whose stencil touches an invalid cell gives
NaN through H; the count left out is in the notes). The held-out values carry
their observation noise; no method adds it to its spread.
"""

from __future__ import annotations

import json
import time as clock
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scoringrules as sr
import xarray as xr

from sparsediff.evaluation.evaluate import DEFAULT_OPTIONS
from sparsediff.evaluation.metrics import crps, mae, rmse, spread_skill_ratio
from sparsediff.evaluation.point_baselines import PointBaseline, PointForecast, get_point_baseline
from sparsediff.filling.arguments import fill_arguments
from sparsediff.filling.points import as_observations, fill_points, in_model_units, points_grid
from sparsediff.method.options import FillOptions
from sparsediff.model import Model, as_model

__all__ = ["POINT_COLUMNS", "evaluate_points", "score_at_points"]

#: Columns of the table [`evaluate_points`][evaluate_points] returns.
POINT_COLUMNS = ["method", "kind", "rmse", "mae", "crps", "spread_skill", "n_points", "seconds"]


def score_at_points(forecast: xr.DataArray | PointForecast, truth: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, CRPS and spread/skill of a forecast at points.

    Parameters
    ----------
    forecast
        An ensemble ``(member, obs)``, or a `PointForecast` (a mean and
        optionally a Gaussian standard deviation).
    truth
        The observed values, shape ``(obs,)``.

    Returns
    -------
    dict
        ``rmse``, ``mae``, ``crps``, ``spread_skill`` (see the module notes).
    """
    y = xr.DataArray(np.asarray(truth, dtype=np.float64), dims="obs")
    if isinstance(forecast, xr.DataArray):
        mean = forecast.mean("member")
        k = forecast.sizes["member"]
        ratio = float(spread_skill_ratio(forecast, y, None)) if k > 1 else float("nan")
        return {
            "rmse": float(rmse(mean, y, None)),
            "mae": float(mae(mean, y, None)),
            "crps": float(crps(forecast, y, None)),
            "spread_skill": ratio,
        }
    est = xr.DataArray(forecast.mean, dims="obs")
    out = {"rmse": float(rmse(est, y, None)), "mae": float(mae(est, y, None))}
    if forecast.std is None:
        return out | {"crps": out["mae"], "spread_skill": float("nan")}
    std = np.maximum(forecast.std, 1e-12)
    pointwise = sr.crps_normal(y.values, forecast.mean, std, backend="numpy")
    spread = float(np.sqrt(np.mean(forecast.std**2)))
    return out | {"crps": float(np.mean(pointwise)), "spread_skill": spread / out["rmse"]}


def _take(forecast: xr.DataArray | PointForecast, keep: np.ndarray) -> Any:
    if isinstance(forecast, xr.DataArray):
        return forecast.isel(obs=keep)
    std = None if forecast.std is None else forecast.std[keep]
    return PointForecast(forecast.mean[keep], std, forecast.notes)


def _finite(forecast: xr.DataArray | PointForecast) -> np.ndarray:
    if isinstance(forecast, xr.DataArray):
        return np.isfinite(forecast.values).all(axis=0)
    ok = np.isfinite(forecast.mean)
    return ok if forecast.std is None else ok & np.isfinite(forecast.std)


def evaluate_points(
    observations: Any,
    model: Model | str,
    like: Any = None,
    *,
    holdout: str = "points:0.1",
    options: FillOptions | None = None,
    baselines: Iterable[str | PointBaseline] = ("kriging", "griddata", "binned_laplace"),
    time: Literal["linear", "nearest"] = "nearest",
    dims: Sequence[Hashable] | None = None,
    bounds: Mapping[str, tuple] | None = None,
    resolution: Any = None,
    value: str | None = None,
    **fill_options: Any,
) -> pd.DataFrame:
    """Hide observations, fill from the rest, score at the hidden ones' exact locations.

    Parameters
    ----------
    observations
        The observations (anything
        [`as_observations`][sparsediff.filling.points.as_observations] reads).
    model
        A trained one-variable model or its directory.
    like, dims, bounds, resolution
        The target grid (see [`points_grid`][sparsediff.filling.points.points_grid]).
    holdout
        ``"points:F"`` or ``"platforms:F"``.
    options
        How the model samples ([`FillOptions`][sparsediff.method.options.FillOptions]);
        ``None``: from the fields among ``fill_options``, 8 members by default
        ([`DEFAULT_OPTIONS`][sparsediff.evaluation.evaluate.DEFAULT_OPTIONS]). Its
        ``seed`` also draws the holdout.
    baselines
        Point baselines, by name (`POINT_BASELINES` of
        [`point_baselines`][sparsediff.evaluation.point_baselines]) or as instances.
    time
        How the grids are read at the observations along time (``"nearest"``:
        the step binning uses).
    value
        The observed column or variable, when ``observations`` are not yet Observations.
    **fill_options
        The option fields when ``options`` is not given (``members``, ``seed``,
        ``steps``, ...), and further keywords of [`fill`][sparsediff.filling.fill.fill]
        (``invalid``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per method (`POINT_COLUMNS`); ``attrs["notes"]`` says what
        was left out or chosen, ``attrs["holdout"]`` the split.

    Raises
    ------
    InputError
        Bad observations, grid or holdout spec (see the readers and `Observations.holdout`).
    ConfigError
        An unknown baseline or a bad fill option.
    """
    model = as_model(model)
    var = model.variables[0]
    obs = in_model_units(as_observations(observations, value, default=var), model, var)
    grid = points_grid(model, like, dims=dims, bounds=bounds, resolution=resolution)
    obs = obs.aligned_to(grid)
    kw = fill_arguments({**fill_options, "options": options}, defaults=DEFAULT_OPTIONS)
    seed = kw["options"].seed
    shown, held = obs.holdout(holdout, seed=seed)
    notes: list[str] = []
    t0 = clock.perf_counter()
    filled = fill_points(model, shown, grid, **kw)
    seconds = {"sparsediff": clock.perf_counter() - t0}
    ens = filled[var] if "member" in filled[var].dims else filled[var].expand_dims("member")
    forecasts: dict[str, xr.DataArray | PointForecast] = {"sparsediff": held.at(ens, time=time)}
    invalid = filled[f"{var}_fill_flag"] == 2
    for spec in baselines:
        base = get_point_baseline(spec)
        t0 = clock.perf_counter()
        forecasts[base.name] = base.predict(shown, held, grid, invalid)
        seconds[base.name] = clock.perf_counter() - t0
        notes.extend(forecasts[base.name].notes)  # type: ignore[union-attr]
    keep = np.ones(len(held), dtype=bool)
    for f in forecasts.values():
        keep &= _finite(f)
    if not keep.all():
        notes.append(
            f"{int((~keep).sum())} of {len(held)} held-out observations left out: a method "
            "has no finite value there (an invalid cell in the stencil)"
        )
    rows = []
    for name, f in forecasts.items():
        scores = score_at_points(_take(f, np.flatnonzero(keep)), held.values[keep])
        kind = "model" if name == "sparsediff" else "baseline"
        rows.append({"method": name, "kind": kind, **scores, "n_points": int(keep.sum())})
        rows[-1]["seconds"] = seconds[name]
    table = pd.DataFrame(rows, columns=POINT_COLUMNS)
    table.attrs["notes"] = notes
    table.attrs["holdout"] = json.dumps(
        {"spec": holdout, "seed": seed, "shown": len(shown), "held_out": len(held)}
    )
    return table
