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
NaN through H; the count left out is in the notes).

Observation error (``obs_error``). A held-out value is the field plus its
observation error, so a method's spread of the *field* falls short of the
spread of the *observation* by that error. With ``obs_error="add"`` (the
default) and held-out observations that carry ``error``, the scores compare
each observation with the predictive distribution of the observation, as
ensemble verification against noisy observations does (the observation
perturbation method: Saetra et al. 2004, Candille & Talagrand 2008):

- an ensemble: each member gets independent ``N(0, error**2)`` noise at each
  held-out observation, drawn from ``numpy_rng_for(seed, Stream.OBS_ERROR)``
  (same seed, same scores); its CRPS and spread/skill are those of the
  perturbed ensemble (spread/skill against the perturbed ensemble's mean, so
  the finite-ensemble factor of `spread_skill_ratio` still holds);
- a Gaussian ``N(mean, std**2)``: the variance becomes ``std**2 + error**2``;
  when part of ``std**2`` already stands for observation error
  (``PointForecast.nugget``: gstools' kriging variance includes the fitted
  nugget at the targets), only what the error exceeds it by is added,
  ``std**2 + max(error**2 - nugget, 0)``: a nugget is measurement error plus
  variability below the points' spacing, so one at least ``error**2`` already
  holds the error, and a smaller one (zero when the variogram fit puts none)
  holds only part of it;
- a deterministic estimate stays deterministic (CRPS = MAE, no spread/skill):
  it claims no uncertainty, and adding the observation error alone would give
  it one it never stated;
- RMSE and MAE are those of the unperturbed mean, whatever ``obs_error``.

``"add"`` is the default because it is the statistically consistent
comparison: with it, an ensemble that is a perfect sample of the field scores
a spread/skill of 1 against noisy observations, where ``"ignore"`` would call
it under-dispersive by the observation error (spread/skill 0 for an ensemble
equal to the true field). Held-out observations without ``error`` make
``"add"`` the same as ``"ignore"`` (said in the notes).
"""

from __future__ import annotations

import json
import time as clock
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import scoringrules as sr
import xarray as xr

from sparsediff.data.observations import Observations
from sparsediff.errors import ConfigError, InputError
from sparsediff.evaluation.evaluate import DEFAULT_OPTIONS
from sparsediff.evaluation.metrics import crps, mae, rmse, spread_skill_ratio
from sparsediff.evaluation.point_baselines import PointBaseline, PointForecast, get_point_baseline
from sparsediff.filling.arguments import fill_arguments
from sparsediff.filling.points import as_observations, fill_points, in_model_units, points_grid
from sparsediff.method.options import FillOptions
from sparsediff.model import Model, as_model
from sparsediff.rng import Stream, check_seed, numpy_rng_for

__all__ = ["OBS_ERROR_MODES", "POINT_COLUMNS", "evaluate_points", "score_at_points"]

#: Columns of the table [`evaluate_points`][evaluate_points] returns.
POINT_COLUMNS = ["method", "kind", "rmse", "mae", "crps", "spread_skill", "n_points", "seconds"]

#: What ``obs_error`` of [`evaluate_points`][evaluate_points] may be (see the module notes).
OBS_ERROR_MODES = ("add", "ignore")


def score_at_points(
    forecast: xr.DataArray | PointForecast,
    truth: np.ndarray,
    error: np.ndarray | None = None,
    *,
    seed: int = 0,
    draw: np.ndarray | None = None,
) -> dict[str, float]:
    """RMSE, MAE, CRPS and spread/skill of a forecast at points.

    Parameters
    ----------
    forecast
        An ensemble ``(member, obs)``, or a `PointForecast` (a mean and
        optionally a Gaussian standard deviation).
    truth
        The observed values, shape ``(obs,)``.
    error
        The observations' error standard deviations, shape ``(obs,)``, to add
        to the forecast's spread (see the module notes); ``None``: scored as
        it is.
    seed
        Keys the observation noise drawn onto an ensemble's members
        (``numpy_rng_for(seed, Stream.OBS_ERROR)``).
    draw
        Standard normal values ``(at least members, obs)`` to use instead (a
        table scoring several methods draws once per observation, so that the
        noise at an observation does not depend on which others are scored).

    Returns
    -------
    dict
        ``rmse``, ``mae``, ``crps``, ``spread_skill`` (see the module notes).
    """
    y = xr.DataArray(np.asarray(truth, dtype=np.float64), dims="obs")
    err = None if error is None else np.asarray(error, dtype=np.float64)
    if err is not None and err.shape != y.shape:
        raise InputError(f"error has shape {err.shape}, the observations {y.shape}")
    if isinstance(forecast, xr.DataArray):
        mean = forecast.mean("member")
        k = forecast.sizes["member"]
        scored = forecast
        if err is not None:
            if draw is None:
                draw = numpy_rng_for(check_seed(seed), Stream.OBS_ERROR).standard_normal(
                    (k, y.size)
                )
            noise = xr.DataArray(draw[:k] * err, dims=("member", "obs"))
            scored = forecast.transpose("member", "obs") + noise
        ratio = float(spread_skill_ratio(scored, y, None)) if k > 1 else float("nan")
        return {
            "rmse": float(rmse(mean, y, None)),
            "mae": float(mae(mean, y, None)),
            "crps": float(crps(scored, y, None)),
            "spread_skill": ratio,
        }
    est = xr.DataArray(forecast.mean, dims="obs")
    out = {"rmse": float(rmse(est, y, None)), "mae": float(mae(est, y, None))}
    if forecast.std is None:
        return out | {"crps": out["mae"], "spread_skill": float("nan")}
    std = np.asarray(forecast.std, dtype=np.float64)
    var = std**2
    if err is not None:  # (without it the std is used as given: the scores stay bit-identical)
        held = 0.0 if forecast.nugget is None else np.asarray(forecast.nugget, dtype=np.float64)
        var = var + np.maximum(err**2 - held, 0.0)
        std = np.sqrt(var)
    std = np.maximum(std, 1e-12)
    pointwise = sr.crps_normal(y.values, forecast.mean, std, backend="numpy")
    spread = float(np.sqrt(np.mean(var)))
    return out | {"crps": float(np.mean(pointwise)), "spread_skill": spread / out["rmse"]}


def _take(forecast: xr.DataArray | PointForecast, keep: np.ndarray) -> Any:
    if isinstance(forecast, xr.DataArray):
        return forecast.isel(obs=keep)
    std = None if forecast.std is None else forecast.std[keep]
    nugget = None if forecast.nugget is None else forecast.nugget[keep]
    return replace(forecast, mean=forecast.mean[keep], std=std, nugget=nugget)


def _finite(forecast: xr.DataArray | PointForecast) -> np.ndarray:
    if isinstance(forecast, xr.DataArray):
        return np.isfinite(forecast.values).all(axis=0)
    ok = np.isfinite(forecast.mean)
    return ok if forecast.std is None else ok & np.isfinite(forecast.std)


def _errors_to_add(mode: str, held: Observations, seed: int) -> tuple[np.ndarray | None, str]:
    """The held-out errors to add to the spread (or ``None``) and a note saying what was done."""
    if mode == "ignore":
        return None, "obs_error='ignore': the observation error is not added to any spread"
    if held.error is None:
        return None, (
            "obs_error='add': the held-out observations carry no error, so nothing is "
            "added (the same scores as 'ignore')"
        )
    return held.error, (
        f"obs_error='add': N(0, error**2) drawn onto every ensemble member at the held-out "
        f"observations (seed {seed}, mean error {float(np.mean(held.error)):.3g}); error**2 "
        "added to a Gaussian's variance less what it already holds (kriging: its nugget); "
        "deterministic estimates scored as they are"
    )


def _score_table(
    forecasts: Mapping[str, xr.DataArray | PointForecast],
    seconds: Mapping[str, float],
    held: Observations,
    errors: tuple[np.ndarray | None, str],
    seed: int,
) -> pd.DataFrame:
    """Every forecast scored on the held-out observations where all are finite."""
    keep = np.ones(len(held), dtype=bool)
    for f in forecasts.values():
        keep &= _finite(f)
    error, said = errors
    notes = [said]
    if not keep.all():
        notes.append(
            f"{int((~keep).sum())} of {len(held)} held-out observations left out: a method "
            "has no finite value there (an invalid cell in the stencil)"
        )
    rows = []
    idx = np.flatnonzero(keep)
    k = max(
        (f.sizes["member"] for f in forecasts.values() if isinstance(f, xr.DataArray)), default=1
    )
    draw = numpy_rng_for(check_seed(seed), Stream.OBS_ERROR).standard_normal((k, len(held)))
    for name, f in forecasts.items():
        err = None if error is None else error[idx]
        scores = score_at_points(_take(f, idx), held.values[idx], err, draw=draw[:, idx])
        kind = "model" if name == "sparsediff" else "baseline"
        rows.append({"method": name, "kind": kind, **scores, "n_points": int(keep.sum())})
        rows[-1]["seconds"] = seconds[name]
    table = pd.DataFrame(rows, columns=POINT_COLUMNS)
    table.attrs["notes"] = notes
    table.attrs["obs_error"] = "add" if error is not None else "ignore"
    return table


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
    obs_error: Literal["add", "ignore"] = "add",
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
    obs_error
        ``"add"`` (default): score against the predictive distribution of the
        observation, the field's plus the held-out observations' ``error``
        (members perturbed, Gaussian variances widened; nothing to add when the
        observations carry no error); ``"ignore"``: score the field's
        distribution as it is. See the module notes.
    **fill_options
        The option fields when ``options`` is not given (``members``, ``seed``,
        ``steps``, ...), and further keywords of [`fill`][sparsediff.filling.fill.fill]
        (``invalid``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per method (`POINT_COLUMNS`); ``attrs["notes"]`` says what
        was left out or chosen, ``attrs["holdout"]`` the split,
        ``attrs["obs_error"]`` whether the observation error was added
        (``"add"``) or not (``"ignore"``, also when there was none to add).

    Raises
    ------
    InputError
        Bad observations, grid or holdout spec (see the readers and `Observations.holdout`).
    ConfigError
        An unknown baseline, a bad fill option or ``obs_error``.
    """
    if obs_error not in OBS_ERROR_MODES:
        raise ConfigError(f"obs_error must be 'add' or 'ignore', got {obs_error!r}")
    kw = fill_arguments({**fill_options, "options": options}, defaults=DEFAULT_OPTIONS)
    model = as_model(model)
    var = model.variables[0]
    obs = in_model_units(as_observations(observations, value, default=var), model, var)
    grid = points_grid(model, like, dims=dims, bounds=bounds, resolution=resolution)
    obs = obs.aligned_to(grid)
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
    table = _score_table(forecasts, seconds, held, _errors_to_add(obs_error, held, seed), seed)
    table.attrs["notes"] = notes + table.attrs["notes"]
    table.attrs["holdout"] = json.dumps(
        {"spec": holdout, "seed": seed, "shown": len(shown), "held_out": len(held)}
    )
    return table
