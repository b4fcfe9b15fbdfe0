"""Match a field saved on the training grid (climatology, invalid mask) to the data's grid.

A model carries fields that belong to the grid it was trained on: the
per-point climatology and the invalid mask (land). Applying them by array
position to data on another grid silently puts each value at the wrong place
(a longitude rolled by 180°, a latitude stored north to south). This module
matches them by **coordinates** instead:

* when every coordinate of the data along a dim of the field is one of the
  field's (the same grid, a permutation of it such as a rolled longitude or
  a flipped latitude, or a selection of its points), the field is reordered
  to the data's order ([`align_to`][align_to]);
* when a coordinate of the data is not on the field's grid (another grid, a
  grid shifted by half a cell), [`CompatibilityError`][sparsediff.errors.CompatibilityError]
  names the dim and the first value that has no match.

Numeric coordinates match within a thousandth of the grid spacing (so a
float32 coordinate matches its float64 copy); longitudes (recognised as in
[`sparsediff.data.grid`][sparsediff.data.grid]) match modulo 360°; other coordinates (times,
labels) match exactly. Only when one side has no coordinate along a dim is
there nothing but the position to go by: the sizes must then be equal.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
import xarray as xr

from sparsediff.data.grid import is_longitude
from sparsediff.errors import CompatibilityError

__all__ = ["align_to", "grid_positions"]

#: Numeric coordinates match when they differ by at most this share of the grid spacing.
RELATIVE_TOLERANCE = 1e-3


def _index(obj: xr.DataArray | xr.Dataset, dim: Hashable) -> xr.DataArray | None:
    """The 1-D coordinate of ``dim`` (``None`` when there is none)."""
    if dim in obj.coords and obj[dim].dims == (dim,):
        return obj[dim]
    return None


def _numeric_positions(
    saved: xr.DataArray, data: xr.DataArray, modulo: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest saved position of each data value, and the distance to it."""
    ref = np.asarray(saved.values, dtype=np.float64)
    now = np.asarray(data.values, dtype=np.float64)
    spacing = 1.0 if ref.size == 1 else float(np.median(np.abs(np.diff(np.sort(ref)))))
    if modulo is not None:
        ref = np.mod(ref, modulo)
        now = np.mod(now, modulo)
    order = np.argsort(ref, kind="stable")
    sorted_ref = ref[order]
    right = np.clip(np.searchsorted(sorted_ref, now), 0, ref.size - 1)
    left = np.clip(right - 1, 0, ref.size - 1)
    candidates = [left, right]
    if modulo is not None:  # the circle closes: the first and last sorted values are neighbours
        candidates += [np.zeros_like(right), np.full_like(right, ref.size - 1)]
    best = np.full(now.shape, np.inf)
    pos = np.zeros(now.shape, dtype=np.int64)
    for cand in candidates:
        diff = np.abs(sorted_ref[cand] - now)
        if modulo is not None:
            diff = np.minimum(diff, modulo - diff)
        better = diff < best
        best = np.where(better, diff, best)
        pos = np.where(better, order[cand], pos)
    tolerance = RELATIVE_TOLERANCE * spacing if spacing > 0 else 0.0
    return pos, np.where(best <= tolerance, 0.0, best)


def grid_positions(
    field: xr.DataArray, data: xr.DataArray | xr.Dataset, *, what: str
) -> dict[Hashable, np.ndarray | None]:
    """Where each position of the data lies on the field's grid, per dim of the field.

    Parameters
    ----------
    field
        A field on the training grid (its dims are a subset of the data's).
    data
        The data it is to be applied to.
    what
        The field in words, for messages (``"the climatology of 'sst'"``).

    Returns
    -------
    dict
        Per dim of ``field``: integer positions into ``field`` (one per data
        position), or ``None`` when the data's positions are the field's own
        (the same grid in the same order, or no coordinates to compare and
        the same size).

    Raises
    ------
    CompatibilityError
        A dim of the field the data lack; a data coordinate that is not on the
        field's grid (the message names the dim and the value); different
        sizes with no coordinates to match by.
    """
    out: dict[Hashable, np.ndarray | None] = {}
    for dim in field.dims:
        if dim not in data.dims:
            raise CompatibilityError(
                f"{what} is on dims {list(map(str, field.dims))}; the data have no dim {dim!r}"
            )
        n_field, n_data = field.sizes[dim], data.sizes[dim]
        saved, now = _index(field, dim), _index(data, dim)
        if saved is None or now is None:
            if n_field != n_data:
                raise CompatibilityError(
                    f"{what} has {n_field} points along {dim!r}; the data have {n_data} "
                    "(and no coordinates to match them by)"
                )
            out[dim] = None
            continue
        if n_field == n_data and np.array_equal(np.asarray(saved), np.asarray(now)):
            out[dim] = None  # the same coordinate (repeated values included)
            continue
        numeric = np.issubdtype(saved.dtype, np.number) and np.issubdtype(now.dtype, np.number)
        if numeric:
            modulo = 360.0 if (is_longitude(now) or is_longitude(saved)) else None
            pos, miss = _numeric_positions(saved, now, modulo)
            missing = np.flatnonzero(miss > 0)
            if missing.size:
                i = int(missing[0])
                value = float(np.asarray(now.values, dtype=np.float64)[i])
                nearest = float(np.asarray(saved.values, dtype=np.float64)[pos[i]])
                raise CompatibilityError(
                    f"the data's {dim!r} = {value:g} is not on the grid of {what} "
                    f"(nearest {nearest:g}, off by {miss[i]:g}): the data are on another grid; "
                    "regrid them to the model's grid"
                )
        else:
            pos = pd.Index(saved.values).get_indexer(pd.Index(now.values))
            if (pos < 0).any():
                i = int(np.flatnonzero(pos < 0)[0])
                raise CompatibilityError(
                    f"the data's {dim!r} = {str(now.values[i])!r} is not on the grid of {what}"
                )
        if np.unique(pos).size != pos.size:
            raise CompatibilityError(
                f"the data's {dim!r} coordinate repeats points of the grid of {what}"
            )
        out[dim] = None if (n_field == n_data and (pos == np.arange(n_field)).all()) else pos
    return out


def align_to(
    field: xr.DataArray,
    data: xr.DataArray | xr.Dataset,
    *,
    what: str,
    carry: tuple[Hashable, ...] = (),
) -> xr.DataArray:
    """``field`` reordered (or subset) so that its positions are the data's positions.

    Parameters
    ----------
    field, data, what
        As for [`grid_positions`][grid_positions].
    carry
        Dims of ``field`` the data lack, kept whole (a seasonal climatology's
        harmonic dim): only the other dims are matched.

    Returns
    -------
    xarray.DataArray
        ``field`` itself when the grids are already aligned; otherwise the
        field taken at the data's points, carrying the data's coordinates
        along the reordered dims.

    Raises
    ------
    CompatibilityError
        As [`grid_positions`][grid_positions].
    """
    positions = grid_positions(field.isel({d: 0 for d in carry}), data, what=what)
    moved = {d: p for d, p in positions.items() if p is not None}
    if not moved:
        return field
    out = field.isel(moved)
    return out.assign_coords({d: data[d].values for d in moved if _index(data, d) is not None})
