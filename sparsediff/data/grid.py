"""Facts about a grid's coordinates: does a longitude wrap, what is the spacing.

One owner for each rule, so that the model's tiling and the classical
baselines agree on whether a grid is periodic, and training and fill measure
grid spacing the same way. Which coordinate is a longitude is
[`sparsediff.data.axes`][sparsediff.data.axes]'s rule (`is_longitude`,
`LONGITUDE_NAMES` and `LONGITUDE_UNITS` are re-exported from there).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from sparsediff.data.axes import LONGITUDE_NAMES, LONGITUDE_UNITS, is_longitude

__all__ = [
    "LONGITUDE_NAMES",
    "LONGITUDE_UNITS",
    "grid_spacing",
    "is_global_longitude",
    "is_longitude",
]


def grid_spacing(coord: xr.DataArray) -> float | None:
    """Median absolute step of a numeric 1-D coordinate.

    Parameters
    ----------
    coord
        A coordinate (e.g. ``ds["latitude"]``).

    Returns
    -------
    float or None
        ``None`` for a coordinate that is not numeric, not 1-D, or has fewer
        than two points.
    """
    if coord.ndim != 1 or coord.size < 2 or not np.issubdtype(coord.dtype, np.number):
        return None
    return float(np.median(np.abs(np.diff(np.asarray(coord.values, dtype=float)))))


def is_global_longitude(coord: xr.DataArray) -> bool:
    """Whether ``coord`` is a longitude that closes the circle (a periodic dim).

    A longitude is recognised by
    [`is_longitude`][sparsediff.data.axes.is_longitude]: its CF attributes
    through cf_xarray (``standard_name``, ``long_name``,
    ``_CoordinateAxisType``), its CF units (``degrees_east`` and spellings)
    or its name (``lon``, ``longitude``, ``nav_lon``). It wraps when it is 1-D, numeric, with at
    least 3 points that advance the same way round the circle (strictly
    monotonic modulo 360, so a grid rolled to start at 180° still wraps), its
    span plus one step is 360 degrees within half a step, and no step is more
    than 1.5 times the median step (no hole in the circle).

    Parameters
    ----------
    coord
        A coordinate (e.g. ``ds["lon"]``).

    Returns
    -------
    bool
    """
    if not is_longitude(coord):
        return False
    if coord.ndim != 1 or coord.size < 3 or not np.issubdtype(coord.dtype, np.number):
        return False
    values = np.asarray(coord.values, dtype=np.float64)
    steps = np.mod(np.diff(values) + 180.0, 360.0) - 180.0  # each step taken round the circle
    if not (np.all(steps > 0) or np.all(steps < 0)):
        return False
    step = float(np.median(np.abs(steps)))
    if np.abs(steps).max() > 1.5 * step:  # a hole in the circle (a rolled sector)
        return False
    span = abs(float(steps.sum())) + step
    return bool(abs(span - 360.0) <= 0.5 * step)
