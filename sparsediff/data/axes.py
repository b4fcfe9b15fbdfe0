"""Which coordinate is the latitude, the longitude, the time or the vertical.

One owner for the rule, so that the scores' area weights, the tiling's
periodic longitude, the accessor's time dim and the grid of point
observations recognise the same coordinates. A coordinate's role comes from

1. its CF attributes, read by [cf_xarray](https://cf-xarray.readthedocs.io)
   (``standard_name``, ``long_name``, ``units`` such as ``degrees_north``,
   ``axis``, ``positive``, ``_CoordinateAxisType``, ``cartesian_axis``, ...:
   the criteria of `cf_xarray.criteria.coordinate_criteria`);
2. the spellings of CF units in any case (``Degrees_North``, ``degree_E``),
   ``axis`` in any case and any ``positive`` attribute, which cf_xarray
   matches exactly;
3. its name, where the attributes say nothing: `LATITUDE_NAMES`,
   `LONGITUDE_NAMES`, ``time`` for the time dim of a grid (`time_dim`), and
   `ROLE_NAMES` for the columns of point observations (`role_of_name`).

cf_xarray is imported on first use, not by ``import sparsediff``, and its
answer for each set of attributes is remembered. Only string attributes are
read. Names are never guessed from patterns (no ``guess_coord_axis``): a dim
named ``y_c`` is a latitude only when its attributes say so.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from functools import lru_cache
from typing import Literal

import numpy as np
import xarray as xr

from sparsediff.errors import InputError

__all__ = [
    "LATITUDE_NAMES",
    "LATITUDE_UNITS",
    "LONGITUDE_NAMES",
    "LONGITUDE_UNITS",
    "ROLE_NAMES",
    "Role",
    "cf_keys",
    "find_coord",
    "is_latitude",
    "is_longitude",
    "is_time",
    "is_vertical",
    "role_of",
    "role_of_name",
    "time_dim",
]

#: A coordinate's role.
Role = Literal["latitude", "longitude", "time", "vertical"]

#: Coordinate names taken for latitude (lower case).
LATITUDE_NAMES = frozenset({"lat", "latitude", "nav_lat"})
#: Coordinate names taken for longitude (lower case).
LONGITUDE_NAMES = frozenset({"lon", "longitude", "nav_lon"})
#: CF units of latitude (lower case): degrees_north and its allowed spellings.
LATITUDE_UNITS = frozenset(
    {"degrees_north", "degree_north", "degrees_n", "degree_n", "degreesn", "degreen"}
)
#: CF units of longitude (lower case): degrees_east and its allowed spellings.
LONGITUDE_UNITS = frozenset(
    {"degrees_east", "degree_east", "degrees_e", "degree_e", "degreese", "degreee"}
)
#: Names taken for each role (lower case) by [`role_of_name`][sparsediff.data.axes.role_of_name]:
#: the columns of point observations and the dims of a grid given by bounds.
ROLE_NAMES: dict[str, frozenset[str]] = {
    "latitude": LATITUDE_NAMES,
    "longitude": LONGITUDE_NAMES,
    "time": frozenset({"time", "t", "date", "datetime"}),
    "vertical": frozenset({"z", "depth", "level", "lev", "height", "altitude", "plev"}),
}
#: The name a time dim has without CF attributes ([`time_dim`][sparsediff.data.axes.time_dim]).
_TIME_DIM_NAME = "time"


@lru_cache(maxsize=1024)
def _cf_keys_of(attrs: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """cf_xarray's coordinate and axis keys of a coordinate with these attributes."""
    import cf_xarray  # noqa: F401  (registers the ``.cf`` accessor)

    probe = xr.Dataset(coords={"c": xr.Variable((), 0, dict(attrs))})
    return frozenset([*probe.cf.coordinates, *probe.cf.axes])


def cf_keys(coord: xr.DataArray) -> frozenset[str]:
    """The keys cf_xarray gives a coordinate from its attributes.

    Parameters
    ----------
    coord
        A coordinate (or any variable); only its string attributes are read.

    Returns
    -------
    frozenset of str
        A subset of ``latitude``, ``longitude``, ``vertical``, ``time`` (its
        coordinates) and ``X``, ``Y``, ``Z``, ``T`` (its axes); empty when its
        attributes name none.
    """
    attrs = tuple(sorted((str(k), v) for k, v in coord.attrs.items() if isinstance(v, str)))
    return _cf_keys_of(attrs) if attrs else frozenset()


def _units(coord: xr.DataArray) -> str:
    return str(coord.attrs.get("units", "")).strip().lower()


def is_latitude(coord: xr.DataArray) -> bool:
    """Whether ``coord`` is a latitude: by CF attributes (cf_xarray), units, or name.

    Parameters
    ----------
    coord
        A coordinate; its name is one of `LATITUDE_NAMES` (any case), its units
        one of `LATITUDE_UNITS` (any case), or cf_xarray finds it a latitude
        (``standard_name``/``long_name: latitude``, ``_CoordinateAxisType: Lat``).

    Returns
    -------
    bool
    """
    return str(coord.name).lower() in LATITUDE_NAMES or _latitude_by_attributes(coord)


def _latitude_by_attributes(coord: xr.DataArray) -> bool:
    return _units(coord) in LATITUDE_UNITS or "latitude" in cf_keys(coord)


def is_longitude(coord: xr.DataArray) -> bool:
    """Whether ``coord`` is a longitude: by CF attributes (cf_xarray), units, or name.

    Parameters
    ----------
    coord
        A coordinate; its name is one of `LONGITUDE_NAMES` (any case), its units
        one of `LONGITUDE_UNITS` (any case), or cf_xarray finds it a longitude
        (``standard_name``/``long_name: longitude``, ``_CoordinateAxisType: Lon``).

    Returns
    -------
    bool
    """
    return (
        str(coord.name).lower() in LONGITUDE_NAMES
        or _units(coord) in LONGITUDE_UNITS
        or "longitude" in cf_keys(coord)
    )


def is_time(coord: xr.DataArray) -> bool:
    """Whether the CF attributes of ``coord`` say it is a time.

    ``axis: T`` (any case), or what cf_xarray takes for a time
    (``standard_name``/``long_name: time``, ``_CoordinateAxisType: Time``,
    ``cartesian_axis: T``). Neither the name nor the dtype is read here.

    Parameters
    ----------
    coord
        A coordinate.

    Returns
    -------
    bool
    """
    if str(coord.attrs.get("axis", "")).upper() == "T":
        return True
    return not {"time", "T"}.isdisjoint(cf_keys(coord))


def is_vertical(coord: xr.DataArray) -> bool:
    """Whether the CF attributes of ``coord`` say it is a vertical coordinate.

    ``axis: Z`` (any case), any ``positive`` attribute, or what cf_xarray takes
    for a vertical or Z coordinate (``standard_name`` such as ``depth``,
    ``height``, ``air_pressure`` or a parametric one, ``_CoordinateAxisType``
    ``GeoZ``/``Height``/``Pressure``). The name is not read here.

    Parameters
    ----------
    coord
        A coordinate.

    Returns
    -------
    bool
    """
    if str(coord.attrs.get("axis", "")).upper() == "Z" or "positive" in coord.attrs:
        return True
    return not {"vertical", "Z"}.isdisjoint(cf_keys(coord))


def role_of_name(name: Hashable) -> str | None:
    """The role a coordinate name implies, by `ROLE_NAMES`.

    Parameters
    ----------
    name
        A coordinate or column name (any case).

    Returns
    -------
    str or None
        ``"latitude"``, ``"longitude"``, ``"time"``, ``"vertical"``, or ``None``.
    """
    low = str(name).lower()
    for role, names in ROLE_NAMES.items():
        if low in names:
            return role
    return None


def role_of(coord: xr.DataArray) -> str | None:
    """The role of a coordinate on a grid of point observations.

    In order: a ``datetime64`` coordinate is a time; then a longitude
    ([`is_longitude`][sparsediff.data.axes.is_longitude]), a latitude by its
    attributes (as [`is_latitude`][sparsediff.data.axes.is_latitude], less the
    name), a vertical ([`is_vertical`][sparsediff.data.axes.is_vertical]);
    then its name
    ([`role_of_name`][sparsediff.data.axes.role_of_name]). A time must be
    ``datetime64``: numeric values named or marked as a time are a plain dim.

    Parameters
    ----------
    coord
        A coordinate or a column of observations.

    Returns
    -------
    str or None
        ``"latitude"``, ``"longitude"``, ``"time"``, ``"vertical"``, or ``None``.
    """
    if np.issubdtype(coord.dtype, np.datetime64):
        return "time"
    if is_longitude(coord):
        return "longitude"
    if _latitude_by_attributes(coord):
        return "latitude"
    if is_vertical(coord):
        return "vertical"
    role = role_of_name(coord.name)
    return None if role == "time" else role  # a time is datetime64 (above); else a plain dim


_TESTS = {
    "latitude": is_latitude,
    "longitude": is_longitude,
    "time": is_time,
    "vertical": is_vertical,
}


def find_coord(obj: xr.Dataset | xr.DataArray, role: Role) -> Hashable | None:
    """The first coordinate of ``obj`` (in its coordinates' order) with a role.

    Parameters
    ----------
    obj
        A Dataset or DataArray.
    role
        ``"latitude"``, ``"longitude"`` (by attributes, units or name),
        ``"time"`` or ``"vertical"`` (by CF attributes only).

    Returns
    -------
    Hashable or None
        The coordinate's name; ``None`` when no coordinate has the role.

    Raises
    ------
    InputError
        An unknown role.
    """
    if role not in _TESTS:
        raise InputError(f"unknown coordinate role {role!r} (one of {sorted(_TESTS)})")
    test = _TESTS[role]
    coords: Mapping[Hashable, xr.DataArray] = obj.coords
    for name, coord in coords.items():
        if test(coord):
            return name
    return None


def time_dim(ds: xr.Dataset | xr.DataArray) -> Hashable | None:
    """The time dim of ``ds``: one named ``time``, or whose coordinate says so in CF terms.

    CF terms: [`is_time`][sparsediff.data.axes.is_time] (``axis: T``,
    ``standard_name: time``, and what else cf_xarray reads). The first such
    dim in ``ds.dims`` order; ``None`` when there is none.

    Parameters
    ----------
    ds
        A Dataset or DataArray.

    Returns
    -------
    Hashable or None
    """
    if _TIME_DIM_NAME in ds.dims:
        return _TIME_DIM_NAME
    for d in ds.dims:
        if d in ds.coords and is_time(ds[d]):
            return d
    return None
