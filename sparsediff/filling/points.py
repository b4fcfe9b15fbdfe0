"""Filling a grid from point observations: bin, fill with the grid path, flag and count.

[`fill_points`][fill_points] takes observations (stations, floats, tracks; an
[`Observations`][sparsediff.data.observations.Observations] or anything it is read
from) and a target grid (a template ``like=`` or ``bounds=`` plus
``resolution=``), and returns a gridded ensemble:

1. the observations are converted to the model's units and lined up with the
   grid (points outside it dropped and counted, or refused with ``strict``);
2. they are binned ([`bin_to_grid`][sparsediff.data.binning.bin_to_grid]): each cell
   that holds observations gets their mean, the others are gaps;
3. that gappy grid is filled by [`sparsediff.filling.fill.fill`][sparsediff.filling.fill.fill], the
   same code and numbers as a gridded fill of the same binned field.

**Cells with observations keep the binned mean.** The fill treats each such
cell as observed: every member holds exactly the mean of the cell's
observations there, and that holds whether or not observation errors are
given. The analysis therefore does not pass through each observation: several
observations that share a cell are replaced by their mean (so it passes
through none of them when they differ), a point off the cell centre is moved
to the centre, and the observation error is not used to relax the field
towards the observations (no member spread at observed cells, even for noisy
observations). The errors are recorded, and used only by the spread's
calibration below (the noise it takes off).

**The spread is calibrated on the observations** (``calibrate="auto"``, the
default, or ``"input"``). A model's spread factors were fitted on gridded gaps
of dense data; between sparse points they are too narrow (spread/skill 0.46–0.81
in the OSSE of docs/results.md). So before the fill the model's departure scale
and spread factors are refitted on the binned observations themselves
([`calibrate_on_input`][sparsediff.training.input_calibration.calibrate_on_input]):
in windows of the grid, each window hides either a random 5–30 % of its observed
cells (the observations thinned) or every cell of a random 5–30 % of each step's
platforms (`POINTS_CALIBRATION_HIDE`, `platform_keep`: a track, a float, a
station; without ids each observation is its own platform; a window that holds
no hidden platform is thinned); the hidden
cells are filled from the rest and compared, so they lie where the fill must
reach: between the points, and between the tracks; the noise of the cell means (the
observations' ``error``, when given: [`cell_noise_variance`][cell_noise_variance])
is taken off the squared errors, so the spread is that of the field; and distance
bins with few hidden points are pooled outwards rather than extrapolated. It
costs a fit of up to 128 windows before the fill. ``calibrate="validation"``
keeps the model's own; under ``"auto"``, a model that cannot be refitted here
(no eligible window, no training config) keeps its own with a warning.

The result holds, for the model's variable ``v``:

- ``v``: the fill, with a ``member`` dim when ``members > 1``;
- ``v_fill_flag``: uint8, ``0`` a cell with observations, ``1`` filled, ``2`` invalid;
- ``v_count``: the number of observations in each cell (int64);
- the attribute ``sparsediff_points`` (JSON): observations read, used and
  dropped (by reason), observed cells, the grid and the rule above; beside
  the fill's own ``sparsediff_fill``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sparsediff.data.binning import bin_to_grid, target_grid
from sparsediff.data.obs_operator import cell_index
from sparsediff.data.observations import Observations
from sparsediff.data.target_grid import TargetGrid
from sparsediff.errors import InputError, NothingToFitError, SparsediffWarning
from sparsediff.method.base import HideSpec
from sparsediff.model import Model, as_model
from sparsediff.rng import Stream, numpy_rng_for

__all__ = [
    "OBSERVED_CELL_RULE",
    "POINTS_CALIBRATION_HIDE",
    "POINTS_MIN_OBSERVED",
    "as_observations",
    "cell_noise_variance",
    "fill_points",
    "fill_points_command",
    "in_model_units",
    "platform_keep",
    "points_grid",
]

#: How cells with observations are treated (written to the provenance).
OBSERVED_CELL_RULE = (
    "cells with observations keep the mean of their observations in every member "
    "(flag 0); errors, when given, do not relax them (they are recorded, and the spread's "
    "calibration on the observations takes their noise off)"
)

#: What ``calibrate="input"`` hides in a fill from points, one pattern per window:
#: ``mcar``, a random share (drawn in the range) of the observed cells, the
#: observations thinned; ``real``, the cells of whole platforms (`platform_keep`),
#: so that the hidden cells lie where the gaps between points and between tracks
#: are (boxes or clouds cut among sparse points do not; thinning 10-90 % alone
#: over-dispersed random points and left tracks to chance, docs/results.md).
POINTS_CALIBRATION_HIDE = HideSpec((0.05, 0.3), ("mcar", "real"))
#: Share of each step's platforms that ``calibrate="input"`` hides whole (drawn in
#: the range per step), for `platform_keep`: the thinning's range.
POINTS_PLATFORM_SHARE = POINTS_CALIBRATION_HIDE.rate
#: Least observed share of a window that ``calibrate="input"`` fits on, for points.
POINTS_MIN_OBSERVED = 0.002


def as_observations(
    points: Any, value: str | None = None, default: str | None = None
) -> Observations:
    """Observations from what a user passes as ``points``.

    Parameters
    ----------
    points
        `Observations`; a DataFrame; a Dataset along one observation dim
        (a CF discrete-sampling-geometry one when it has a ``featureType``);
        or the path of a CSV, NetCDF or Zarr file holding one of these. A
        table's ``error`` and ``platform`` columns, when present, are the errors
        and platform ids (as `Observations.to_dataframe` writes them).
    value
        The value column or variable; default: ``default`` when ``points`` has
        it, else the only one (see the readers). A Dataset's error and platform
        variables are found by CF attributes (the value's
        ``ancillary_variables``; ``cf_role``), as
        `Observations.to_dataset` writes them.
    default
        The name to take when ``value`` is not given (a model's variable).

    Returns
    -------
    Observations

    Raises
    ------
    InputError
        Something that is none of these, or that its reader refuses.
    """
    if isinstance(points, Observations):
        return points
    if isinstance(points, str | os.PathLike):
        path = Path(points)
        if path.suffix.lower() == ".csv":
            try:
                points = pd.read_csv(path)
            except (OSError, ValueError, pd.errors.ParserError) as exc:
                raise InputError(f"cannot read {path} as CSV: {str(exc).splitlines()[0]}") from None
        elif not path.exists():
            raise InputError(f"no such observation file: {path}")
        else:
            from sparsediff.data.io import open as open_data

            points = open_data(path, chunks=None).load()
    if isinstance(points, pd.DataFrame):
        value = value or (default if default in points.columns else None)
        if value is None:
            raise InputError("name the value column of the observation table (value=)")
        cols = set(points.columns)
        return Observations.from_dataframe(
            points,
            value,
            error="error" if "error" in cols else None,
            platform="platform" if "platform" in cols else None,
        )
    if isinstance(points, xr.DataArray):
        points = points.to_dataset(name=points.name or "value")
    if not isinstance(points, xr.Dataset):
        raise InputError(
            "points must be Observations, a DataFrame, a Dataset or a file path, "
            f"got {type(points).__name__}"
        )
    if "featureType" in points.attrs:
        return Observations.from_cf_dsg(points, value)
    if value is None and default in points.data_vars:
        value = default
    if value is None:
        one_d = [str(k) for k, v in points.data_vars.items() if v.ndim == 1]
        if len(one_d) != 1:
            raise InputError(f"name the observed variable (value=); 1-D variables: {one_d}")
        value = one_d[0]
    if value not in points.data_vars:
        raise InputError(f"the observations have no variable {value!r}")
    linked = str(points[value].attrs.get("ancillary_variables", "")).split()
    error = next((n for n in linked if n in points.data_vars), None)
    platform = next(
        (str(k) for k, v in points.variables.items() if "cf_role" in v.attrs and v.ndim == 1),
        None,
    )
    return Observations.from_dataset(points, value, error=error, platform=platform)


def points_grid(
    model: Model,
    like: Any = None,
    *,
    dims: Sequence[Hashable] | None = None,
    bounds: Mapping[str, tuple] | None = None,
    resolution: Any = None,
) -> TargetGrid:
    """The target grid of a fill from points.

    ``like`` is a Dataset/DataArray (or its path) or a
    [`TargetGrid`][sparsediff.data.target_grid.TargetGrid]; without ``dims``, a
    template that holds the model's variable gives that variable's dims, any
    other template all its dims. Or ``bounds`` plus ``resolution``.

    Raises
    ------
    InputError
        Neither or both ways given; a grid without every spatial dim of the model.
    """
    if isinstance(like, str | os.PathLike):
        from sparsediff.data.io import open as open_data

        like = open_data(like, chunks=None)
    var = model.variables[0]
    if dims is None and isinstance(like, xr.Dataset) and var in like.data_vars:
        dims = list(like[var].dims)
    grid = target_grid(like, dims, bounds, resolution)
    missing = [d for d in model.dims if d not in grid.dims]
    if missing:
        raise InputError(
            f"the target grid has dims {list(grid.dims)}; the model works over "
            f"{list(model.dims)} (missing {missing})"
        )
    return grid


def in_model_units(obs: Observations, model: Model, var: str) -> Observations:
    """``obs`` named ``var`` and in the model's units of it (converted, or assumed with a
    warning when the observations carry none)."""
    units = model.spec.units.get(var) or None
    if obs.name != var:
        obs = Observations(
            var, obs.values, obs.coords, obs.error, obs.platform, obs.units, obs.dropped
        )
    if units is None:
        return obs
    if obs.units is None:
        warnings.warn(
            f"the observations carry no units; taken to be the model's {units!r}",
            SparsediffWarning,
            stacklevel=3,
        )
        return Observations(
            var, obs.values, obs.coords, obs.error, obs.platform, units, obs.dropped
        )
    return obs.in_units(units)


def fill_points(
    model: Model | str | os.PathLike[str],
    points: Any,
    like: Any = None,
    *,
    dims: Sequence[Hashable] | None = None,
    bounds: Mapping[str, tuple] | None = None,
    resolution: Any = None,
    value: str | None = None,
    strict: bool = False,
    invalid_along: Any = "model",
    **fill_options: Any,
) -> xr.Dataset:
    """Fill a grid from point observations with a trained model.

    Parameters
    ----------
    model
        A trained one-variable model, or its directory.
    points
        The observations (see [`as_observations`][as_observations]).
    like, dims, bounds, resolution
        The target grid (see [`points_grid`][points_grid]). It must lie on the grid the
        model's climatology was made on, when the model has one.
    value
        The observed column or variable, when ``points`` is not yet Observations.
    strict
        Refuse points outside the grid instead of dropping and counting them.
    invalid_along
        As for [`fill`][sparsediff.filling.fill.fill], except that ``"model"`` means ``None``
        here: a cell without observations at every step is the normal case of
        sparse points, not land. Land comes from ``invalid=`` or the model's
        training mask on its grid (a warning says when neither applies).
    **fill_options
        Any other keyword of [`fill`][sparsediff.filling.fill.fill]: ``options`` (a
        [`FillOptions`][sparsediff.method.options.FillOptions]) or its fields
        (``members``, ``seed``, ``steps``, ...), ``invalid``, ``calibrate``
        (``"auto"``, the default, and ``"input"``: the spread refitted on the
        observations, see the module notes; ``"validation"``: the model's own), ...

    Returns
    -------
    xarray.Dataset
        The variables and attributes of the module notes.

    Raises
    ------
    InputError
        Unreadable observations, a bad grid, a model of several variables,
        no observation in the grid, or (``strict``) points outside it.
    CompatibilityError, ConfigError
        As for [`sparsediff.fill`][sparsediff.filling.fill.fill].
    """
    from sparsediff.filling.fill import fill

    model = as_model(model)
    if len(model.variables) != 1:
        raise InputError(
            f"filling from points needs a one-variable model; this one fills {model.variables}"
        )
    var = model.variables[0]
    obs = in_model_units(as_observations(points, value, default=var), model, var)
    grid = points_grid(model, like, dims=dims, bounds=bounds, resolution=resolution)
    binned = bin_to_grid(obs, grid, strict=strict)
    count = binned[f"{var}_count"]
    if int(count.sum()) == 0:
        raise InputError(f"none of the {len(obs)} observations lies in the target grid")
    gappy = binned[[var]]
    along = None if isinstance(invalid_along, str) and invalid_along == "model" else invalid_along
    noise = cell_noise_variance(binned, var)
    spatial = list(model.dims)
    model, fill_options = _calibrated_on_points(
        gappy,
        model,
        along,
        dict(fill_options),
        noise=noise,
        keep_of=lambda seed: platform_keep(obs, grid, spatial, seed),
    )
    out = fill(gappy, model, invalid_along=along, **fill_options)
    flag = out[f"{var}_fill_flag"]
    lost = _warn_unused(out, count, flag, user_invalid=fill_options.get("invalid") is not None)
    flag.attrs["comment"] = "0: a cell with observations (their mean), 1: filled, 2: invalid"
    out[f"{var}_count"] = count.where(flag != 2, 0)
    out[var].attrs["ancillary_variables"] = f"{var}_fill_flag {var}_count"
    out.attrs.pop("sparsediff_points", None)
    out.attrs["sparsediff_points"] = _points_record(out, var, obs, grid, binned.attrs, lost)
    return out


def platform_keep(
    obs: Observations,
    grid: TargetGrid,
    spatial: Sequence[str],
    seed: int,
    share: tuple[float, float] = POINTS_PLATFORM_SHARE,
) -> xr.DataArray:
    """The grid's cells left when a random share of each step's platforms is hidden whole.

    Per step (the grid's non-``spatial`` index), a share drawn in ``share`` of
    the platforms with observations there (at least one, when there are two
    or more) is hidden: a cell is ``False`` when every observation in it comes
    from a hidden platform. Observations without platform ids count as one
    platform each. Keyed by ``seed`` and the step.

    Returns
    -------
    xarray.DataArray
        Boolean, on the grid's dims and coordinates (``True`` where nothing is hidden).
    """
    aligned = obs.aligned_to(grid)
    cell = cell_index(aligned, grid)
    ids = np.arange(len(cell)) if aligned.platform is None else np.asarray(aligned.platform)
    index = np.unravel_index(cell, grid.shape)
    batch = [k for k, d in enumerate(grid.dims) if d not in spatial]
    step_shape = tuple(grid.shape[k] for k in batch)
    step = (
        np.ravel_multi_index([index[k] for k in batch], step_shape)
        if batch
        else np.zeros_like(cell)
    )
    hidden = np.zeros(len(cell), dtype=bool)
    order = np.argsort(step, kind="stable")
    steps, starts = np.unique(step[order], return_index=True)
    for s, here in zip(steps, np.split(order, starts[1:]), strict=True):
        platforms = np.unique(ids[here])
        if platforms.size < 2:
            continue
        rng = numpy_rng_for(seed, Stream.PLATFORM_HIDE, int(s))
        k = max(1, round(rng.uniform(*share) * platforms.size))
        hidden[here] = np.isin(ids[here], rng.choice(platforms, k, replace=False))
    kept = np.bincount(cell, weights=~hidden, minlength=int(np.prod(grid.shape)))
    seen = np.bincount(cell, minlength=int(np.prod(grid.shape)))
    keep = (kept > 0) | (seen == 0)
    coords = {d: np.asarray(grid.coords[d]) for d in grid.dims}
    return xr.DataArray(keep.reshape(grid.shape), dims=grid.dims, coords=coords)


def cell_noise_variance(binned: xr.Dataset, var: str) -> float:
    """Mean noise variance of the binned cell means: ``error**2 / count`` over the cells
    with observations (0 when no error was given).

    ``error`` is the mean of a cell's error standard deviations, so a cell whose
    observations carry different errors counts the square of their mean, a little
    less than the mean of their squares.

    ``binned`` is [`bin_to_grid`][sparsediff.data.binning.bin_to_grid]'s output
    (``<var>_error`` the mean error standard deviation of a cell's observations).
    """
    count = binned[f"{var}_count"].values
    error = binned[f"{var}_error"].values
    used = (count > 0) & np.isfinite(error)
    if not used.any():
        return 0.0
    return float(np.mean(error[used] ** 2 / count[used]))


def _calibrated_on_points(
    gappy: xr.Dataset,
    model: Model,
    along: Any,
    fill_options: dict[str, Any],
    *,
    noise: float,
    keep_of: Callable[[int], xr.DataArray],
) -> tuple[Model, dict[str, Any]]:
    """With ``calibrate="input"`` or ``"auto"``: the model refitted on the binned
    observations, and the fill's options without it (otherwise both unchanged).

    The refit thins the observations or hides whole platforms
    (`POINTS_CALIBRATION_HIDE`; ``keep_of(seed)``: `platform_keep` for the fill's seed)
    in windows with at least `POINTS_MIN_OBSERVED` observed cells,
    and fits the spread to the error of the field: the cells' mean noise variance
    ``noise`` ([`cell_noise_variance`][cell_noise_variance]) is taken off the squared
    errors at the hidden cells; distance bins with few hidden points are pooled
    with those beyond them (``thin_bins="pool"``), so that the factors far from the
    data are fitted, not extrapolated. An adaptation asked beside it runs first, as
    in a gridded fill.
    """
    from sparsediff.filling.arguments import fill_arguments
    from sparsediff.filling.fit_input import check_calibrate, check_fit_options, fit_to_input
    from sparsediff.training.input_calibration import InputFit

    calibrate = check_calibrate(fill_options.get("calibrate", "auto"))
    auto = calibrate == "auto"
    if calibrate == "validation" or (auto and model.method.uncalibrated() is not None):
        return model, fill_options  # (a model without a calibration keeps none)
    opts = fill_arguments(fill_options)["options"]
    adapt = fill_options.pop("adapt", None)
    check_fit_options(adapt, calibrate, opts.seed)
    fill_options["calibrate"] = "validation"
    try:
        fitted = fit_to_input(
            gappy,
            model,
            adapt=adapt,
            calibrate="input",
            seed=opts.seed,
            steps=opts.steps,
            progress=fill_options.get("progress"),
            device=fill_options.get("device", "auto"),
            invalid=fill_options.get("invalid"),
            invalid_below=fill_options.get("invalid_below", "model"),
            invalid_along=along,
            input_fit=InputFit(
                POINTS_CALIBRATION_HIDE,
                POINTS_MIN_OBSERVED,
                noise,
                "pool",
                keep_of(opts.seed),
            ),
        )
    except NothingToFitError as exc:
        if not auto or adapt is not None:
            raise
        warnings.warn(
            f"the spread keeps the model's own calibration (fitted on gridded gaps, "
            f"likely too narrow between sparse points): no refit on the observations ({exc})",
            SparsediffWarning,
            stacklevel=3,
        )
        return model, fill_options
    return fitted, fill_options


def _warn_unused(
    out: xr.Dataset, count: xr.DataArray, flag: xr.DataArray, *, user_invalid: bool
) -> int:
    """Warn of observations in invalid cells, and of a fill that no invalid mask applied to.

    Returns the number of observations in invalid cells.
    """
    lost = int(count.where(flag == 2, 0).sum())
    if lost:
        warnings.warn(
            f"{lost} observations fall in invalid cells: not used", SparsediffWarning, stacklevel=3
        )
    invalid_rule = json.loads(out.attrs["sparsediff_fill"]).get("invalid", "")
    if invalid_rule.startswith("none") and not user_invalid:
        warnings.warn(
            "no invalid mask applies to this grid (the model's training mask does not fit it): "
            "every cell without observations is filled; pass invalid= to leave land unfilled",
            SparsediffWarning,
            stacklevel=3,
        )
    return lost


def _points_record(
    out: xr.Dataset,
    var: str,
    obs: Observations,
    grid: TargetGrid,
    binned_attrs: Mapping[Hashable, Any],
    lost: int,
) -> str:
    """The ``sparsediff_points`` attribute (JSON): observations read, used and dropped."""
    # bin_to_grid counts every drop so far (reading and lining up) in dropped_<reason>
    dropped = {
        str(k)[len("dropped_") :].replace("_", " "): int(v)
        for k, v in binned_attrs.items()
        if str(k).startswith("dropped_")
    }
    if lost:
        dropped["in invalid cells"] = lost
    return json.dumps(
        {
            "observations": len(obs) + sum(obs.dropped.values()),  # read, before drops
            "used": int(out[f"{var}_count"].sum()),
            "dropped": dropped,
            "observed_cells": int((out[f"{var}_fill_flag"] == 0).sum()),
            "grid": {d: int(n) for d, n in zip(grid.dims, grid.shape)},
            "errors_given": obs.error is not None,
            "binning": "each observation to the cell that holds it (nearest time step)",
            "observed_cells_rule": OBSERVED_CELL_RULE,
        },
        sort_keys=True,
    )


def fill_points_command(
    model_path: Path,
    input_path: Path | None,
    output: Path | None,
    points: Path | None,
    like: Path | None,
    value: str | None,
    strict: bool,
    overwrite: bool,
    **options: Any,
) -> Path:
    """``sparsediff fill MODEL --points OBS --like GRID OUT``: fill, then write ``OUT``.

    Every check runs, and the fill is done, before anything is written.

    Returns
    -------
    pathlib.Path
        The output written.

    Raises
    ------
    InputError
        ``--points`` without ``--like`` (or the reverse), an INPUT beside
        ``--points``, no OUTPUT, an existing OUTPUT without ``overwrite``, an
        OUTPUT another run is writing (its lock, [`hold`][sparsediff.lock.hold],
        taken before anything is read), or what [`fill_points`][fill_points] refuses.
    """
    from sparsediff.atomic import check_writable
    from sparsediff.data.io import write
    from sparsediff.lock import hold

    if points is None or like is None:
        raise InputError("--points and --like go together (the observations and the grid)")
    if output is None and input_path is not None:
        input_path, output = None, input_path
    if input_path is not None or output is None:
        raise InputError("with --points give MODEL and OUTPUT only (the points replace INPUT)")
    check_writable(output.parent)
    with hold(output):  # one writer per output, from before anything is read
        if (output.exists() or output.is_symlink()) and not overwrite:
            raise InputError(f"{output} already exists; pass --overwrite to replace it")
        filled = fill_points(
            model_path, points, like, value=value, strict=strict, progress=True, **options
        )
        write(
            filled,
            output,
            mode="w" if overwrite else "w-",
            history=f"fill {output.name} from points {points.name} on {like.name} with "
            f"{model_path}",
        )
    return output
