"""Binning point observations onto a grid: per-cell mean, count, spread and error.

Each observation falls in the one cell whose edges hold it (the nearest time
step along a time dim). The result is a Dataset on the grid with

- ``<name>``: the mean of the cell's observations, NaN in a cell without any
  (so it is a gappy gridded field that the grid path of sparsediff fills);
- ``<name>_count``: how many observations fell in the cell;
- ``<name>_spread``: their standard deviation about the cell mean (population,
  ``ddof=0``; 0 for one observation, NaN for none);
- ``<name>_error``: the mean of their error standard deviations (NaN when the
  observations carry no errors).

Binning loses (see docs/guide/points.md): where in the cell each observation
was (a sub-cell offset becomes up to half a cell of position error), which
observation came from which platform, the individual errors (only their
mean is kept), and, along time, when within the step a value was taken. The
cost is O(n_obs + n_cells) time and memory (one ``numpy.bincount`` per output).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import xarray as xr

from sparsediff.data.obs_operator import cell_index
from sparsediff.data.observations import Observations
from sparsediff.data.target_grid import TargetGrid

__all__ = ["bin_to_grid", "target_grid"]


def target_grid(
    like: xr.Dataset | xr.DataArray | TargetGrid | None = None,
    dims: Sequence[Hashable] | None = None,
    bounds: Mapping[str, tuple] | None = None,
    resolution: float | str | np.timedelta64 | Mapping | None = None,
) -> TargetGrid:
    """The grid named by a template (``like``, optionally its ``dims``) or by bounds + resolution.

    Raises
    ------
    InputError
        Neither or both of ``like`` and ``bounds``/``resolution`` given.
    """
    from sparsediff.errors import InputError

    if isinstance(like, TargetGrid):
        return like
    if (like is None) == (bounds is None or resolution is None):
        raise InputError(
            "give the target grid either as a template (like=) or as bounds= plus resolution="
        )
    if like is not None:
        return TargetGrid.from_dataset(like, dims)
    assert bounds is not None
    assert resolution is not None
    return TargetGrid.from_bounds(bounds, resolution)


def bin_to_grid(
    obs: Observations,
    like: xr.Dataset | xr.DataArray | TargetGrid | None = None,
    *,
    dims: Sequence[Hashable] | None = None,
    bounds: Mapping[str, tuple] | None = None,
    resolution: float | str | np.timedelta64 | Mapping | None = None,
    strict: bool = False,
) -> xr.Dataset:
    """Bin observations onto a grid: per-cell mean, count, within-cell spread, mean error.

    Parameters
    ----------
    obs
        The observations.
    like
        A template Dataset/DataArray (its ``dims``, or all of them) or a
        [`TargetGrid`][sparsediff.data.target_grid.TargetGrid].
    dims
        The template's grid dims, in order.
    bounds, resolution
        Instead of ``like``: ``{dim: (low, high)}`` and the cell size
        (see `TargetGrid.from_bounds`).
    strict
        Refuse points outside the grid instead of dropping them (counted, with a warning).

    Returns
    -------
    xarray.Dataset
        The four variables of the module notes on the grid's coordinates; the
        attribute ``dropped_<reason>`` counts dropped points.
    """
    grid = target_grid(like, dims, bounds, resolution)
    aligned = obs.aligned_to(grid, strict=strict)
    cell = cell_index(aligned, grid)
    size = grid.size
    count = np.bincount(cell, minlength=size)
    total = np.bincount(cell, weights=aligned.values, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        sq = np.bincount(cell, weights=(aligned.values - mean[cell]) ** 2, minlength=size)
        spread = np.sqrt(sq / count)
        if aligned.error is not None:
            error = np.bincount(cell, weights=aligned.error, minlength=size) / count
        else:
            error = np.full(size, np.nan)
    name = obs.name
    units = {"units": obs.units} if obs.units else {}

    def var(arr: np.ndarray, **attrs: object) -> xr.DataArray:
        return xr.DataArray(arr.reshape(grid.shape), dims=grid.dims, attrs=attrs)

    ds = xr.Dataset(
        {
            name: var(
                mean,
                **units,
                cell_methods="area: mean (observations)",
                ancillary_variables=f"{name}_count {name}_spread {name}_error",
            ),
            f"{name}_count": var(
                count.astype(np.int64), long_name=f"number of {name} observations in the cell"
            ),
            f"{name}_spread": var(
                spread, **units, long_name=f"standard deviation of {name} observations in the cell"
            ),
            f"{name}_error": var(
                error,
                **units,
                long_name=f"mean error standard deviation of {name} observations in the cell",
            ),
        },
        coords=grid.coordinates(),
    )
    ds.attrs.update({f"dropped_{k.replace(' ', '_')}": int(v) for k, v in aligned.dropped.items()})
    return ds
