"""Facts about a grid's coordinates: does a longitude wrap, what is the spacing.

One owner for each rule, so that the model's tiling and the classical
baselines agree on whether a grid is periodic, and training and fill measure
grid spacing the same way.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["LONGITUDE_NAMES", "LONGITUDE_UNITS", "grid_spacing", "is_global_longitude"]

#: Coordinate names taken for longitude (lower case).
LONGITUDE_NAMES = frozenset({"lon", "longitude", "nav_lon"})
#: CF units of longitude (lower case): degrees_east and its allowed spellings.
LONGITUDE_UNITS = frozenset(
    {"degrees_east", "degree_east", "degrees_e", "degree_e", "degreese", "degreee"}
)


def _is_longitude(coord: xr.DataArray) -> bool:
    units = str(coord.attrs.get("units", "")).strip().lower()
    return (
        str(coord.name).lower() in LONGITUDE_NAMES
        or units in LONGITUDE_UNITS
        or coord.attrs.get("standard_name") == "longitude"
    )


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

    A longitude is recognised by its name (``lon``, ``longitude``,
    ``nav_lon``), its CF units (``degrees_east`` and spellings) or
    ``standard_name = "longitude"``. It wraps when it is 1-D, numeric, with at
    least 3 strictly monotonic points, and its span plus one step is 360
    degrees within half a step.

    Parameters
    ----------
    coord
        A coordinate (e.g. ``ds["lon"]``).

    Returns
    -------
    bool
    """
    if not _is_longitude(coord):
        return False
    if coord.ndim != 1 or coord.size < 3 or not np.issubdtype(coord.dtype, np.number):
        return False
    values = np.asarray(coord.values, dtype=np.float64)
    steps = np.diff(values)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        return False
    step = float(np.median(np.abs(steps)))
    span = abs(values[-1] - values[0]) + step
    return bool(abs(span - 360.0) <= 0.5 * step)
