"""Area weighting of the scores: ``cos(latitude)`` when the data have a latitude."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from sparsediff.data.axes import find_coord
from sparsediff.errors import InputError

__all__ = ["area_weights"]


def area_weights(da: xr.DataArray) -> xr.DataArray | None:
    """Grid-cell area weights ``cos(latitude)`` of a lat/lon field.

    Parameters
    ----------
    da
        Any DataArray. Its latitude coordinate is the first coordinate that
        [`is_latitude`][sparsediff.data.axes.is_latitude]: CF attributes read
        by cf_xarray (``standard_name``/``long_name: latitude``,
        ``_CoordinateAxisType: Lat``), ``units = "degrees_north"`` (or a
        spelling of it), or named ``lat``, ``latitude`` or ``nav_lat`` (any
        case); it may be 1-D (a dim coordinate) or 2-D (a curvilinear grid).

    Returns
    -------
    xarray.DataArray or None
        ``cos(latitude)`` clipped at 0, on the dims of the latitude coordinate
        (it broadcasts against ``da``); ``None`` when ``da`` has no latitude
        coordinate (then every point weighs the same).

    Raises
    ------
    InputError
        The latitude coordinate is not numeric.
    """
    name = find_coord(da, "latitude")
    if name is None:
        return None
    coord = da.coords[name]
    if not np.issubdtype(coord.dtype, np.number):
        raise InputError(f"latitude coordinate {name!r} is not numeric ({coord.dtype})")
    w = np.cos(np.deg2rad(coord.astype(np.float64))).clip(min=0.0)
    w = w.reset_coords(drop=True)
    w.name = "area_weight"
    w.attrs = {"long_name": "area weight cos(latitude)"}
    return w


def _weights(truth: xr.DataArray, area_weighted: bool) -> xr.DataArray | None:
    return area_weights(truth) if area_weighted else None


def _masked_mean(
    values: xr.DataArray,
    mask: xr.DataArray,
    dims: list[Hashable],
    weights: xr.DataArray | None,
) -> xr.DataArray:
    """Weighted mean of ``values`` over ``dims`` at the ``True`` points of ``mask``."""
    w = mask.astype(np.float64)
    if weights is not None:
        w = w * weights
    values, w = xr.broadcast(values, w)
    v = values.where(mask, 0.0)
    num = (v * w).sum(dims, skipna=False)
    den = w.sum(dims)
    return num / den.where(den > 0)
