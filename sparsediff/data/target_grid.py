"""The regular grid that point observations are interpolated from and binned onto.

A [`TargetGrid`][TargetGrid] is a tuple of 1-D dimension coordinates (cell centres)
with, for each dim, its cell edges, its role (latitude, longitude, time,
vertical or none) and whether it wraps (a global longitude). It comes from a
template dataset (`TargetGrid.from_dataset`) or from bounds plus a
resolution (`TargetGrid.from_bounds`). A dim's role is
[`role_of`][sparsediff.data.axes.role_of] of its coordinate (CF attributes
through cf_xarray, then its name; `ROLE_NAMES`, `role_of` and `role_of_name`
are re-exported from [`sparsediff.data.axes`][sparsediff.data.axes]).

Numbers along each dim are float64 positions: degrees, metres, index units,
and for a time dim seconds since the grid's first time step (``datetime64``
converted through integer nanoseconds, so a time equal to a grid time maps to
exactly the same number). Longitudes are unwrapped (a grid rolled to start at
180° runs 180 ... 539), so every dim is monotonic.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from sparsediff.data.axes import ROLE_NAMES, role_of, role_of_name
from sparsediff.data.grid import is_global_longitude
from sparsediff.errors import InputError

__all__ = ["ROLE_NAMES", "TargetGrid", "role_of", "role_of_name", "wrap_longitude"]

_NS_PER_S = 1_000_000_000


def wrap_longitude(x: np.ndarray, low: float) -> np.ndarray:
    """Longitudes moved by whole turns into ``[low, low + 360)``.

    A value already in range is returned unchanged (bit for bit), and a value
    out of range is shifted by an exact multiple of 360, the same operation that
    unwraps a grid's coordinate, so a point on a centre of a rolled grid lands
    exactly on that centre.
    """
    turns = np.floor((np.asarray(x, dtype=np.float64) - low) / 360.0)
    return np.where(turns == 0.0, x, x - 360.0 * turns)


def _unwrap(values: np.ndarray) -> np.ndarray:
    """A longitude made monotonic by adding whole turns (360.0 times an integer) after each jump."""
    if values.size < 2:
        return values
    jumps = -np.round(np.diff(values) / 360.0)
    return values + 360.0 * np.concatenate([[0.0], np.cumsum(jumps)])


def _edges(centres: np.ndarray, bounds: np.ndarray | None) -> np.ndarray:
    """Cell edges: from CF bounds when given, else half-way between centres."""
    if bounds is not None:
        return np.append(bounds[:, 0], bounds[-1, 1])
    if centres.size == 1:
        return np.array([centres[0], centres[0]])
    mid = 0.5 * (centres[1:] + centres[:-1])
    first = centres[0] - (mid[0] - centres[0])
    last = centres[-1] + (centres[-1] - mid[-1])
    return np.concatenate([[first], mid, [last]])


@dataclass(frozen=True, eq=False)
class TargetGrid:
    """A regular (rectilinear) grid: per dim, its centres, edges, role and periodicity.

    Attributes
    ----------
    dims
        Dim names, in the order of the grid's arrays.
    coords
        The coordinate values as given (``datetime64[ns]`` for time), per dim.
    positions
        Monotonic float64 positions of the centres (see the module notes), per dim.
    edges
        Cell edges in the same units as ``positions`` (``size + 1`` values).
    roles
        ``"latitude"``, ``"longitude"``, ``"time"``, ``"vertical"`` or ``None`` per dim.
    periodic
        Whether each dim wraps (a global longitude, period 360).
    time_origin
        The first time step (``datetime64[ns]``) that time positions count from.
    attrs
        The coordinates' attributes, per dim, to write on outputs.
    """

    dims: tuple[str, ...]
    coords: Mapping[str, np.ndarray]
    positions: Mapping[str, np.ndarray]
    edges: Mapping[str, np.ndarray]
    roles: Mapping[str, str | None]
    periodic: Mapping[str, bool]
    time_origin: np.datetime64 | None
    attrs: Mapping[str, dict]

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of cells along each dim."""
        return tuple(self.coords[d].size for d in self.dims)

    def longitude_range(self, dim: str) -> tuple[float, float]:
        """``[low, low + 360)``: the longitudes of the grid's own convention along ``dim``:
        0..360 or -180..180 when its coordinate values lie in one of them, else from
        its smallest value less half a cell."""
        raw = np.asarray(self.coords[dim], dtype=np.float64)
        for low in (0.0, -180.0):
            if raw.min() >= low and raw.max() < low + 360.0:
                return low, low + 360.0
        low = float(raw.min()) - 0.5 * float(np.median(np.abs(np.diff(self.edges[dim]))))
        return low, low + 360.0

    @property
    def size(self) -> int:
        """Number of cells."""
        return int(np.prod(self.shape))

    def time_positions(self, times: np.ndarray) -> np.ndarray:
        """Seconds since `time_origin` of ``datetime64`` values (float64)."""
        assert self.time_origin is not None
        ns = (np.asarray(times, dtype="datetime64[ns]") - self.time_origin).astype(np.int64)
        return ns.astype(np.float64) / _NS_PER_S

    def coordinates(self) -> dict[str, xr.DataArray]:
        """The dimension coordinates, with their attributes, for building outputs."""
        return {
            d: xr.DataArray(self.coords[d], dims=d, attrs=dict(self.attrs[d])) for d in self.dims
        }

    @classmethod
    def from_dataset(
        cls, ds: xr.Dataset | xr.DataArray, dims: Sequence[Hashable] | None = None
    ) -> TargetGrid:
        """The grid of a template dataset.

        Parameters
        ----------
        ds
            A Dataset or DataArray whose dimension coordinates are the grid; a dim
            without a coordinate gets index positions 0, 1, ...; CF ``bounds``
            variables, when present in a Dataset, give the cell edges.
        dims
            The grid's dims, in order; default: every dim of ``ds`` (a DataArray's
            own order, a Dataset's ``dims`` order).

        Returns
        -------
        TargetGrid

        Raises
        ------
        InputError
            A dim not in ``ds``, a coordinate that is not 1-D and monotonic, or an
            empty dim.
        """
        names = [str(d) for d in (dims if dims is not None else ds.dims)]
        coords: dict[str, xr.DataArray] = {}
        bounds: dict[str, np.ndarray | None] = {}
        for name in names:
            if name not in ds.dims:
                raise InputError(f"the template has no dim {name!r} (dims: {list(ds.dims)})")
            if name in ds.coords:
                coord = ds.coords[name]
            else:
                coord = xr.DataArray(np.arange(ds.sizes[name], dtype=float), dims=name, name=name)
            coords[name] = coord
            bname = coord.attrs.get("bounds")
            has_bounds = isinstance(ds, xr.Dataset) and bname in ds.variables
            bounds[name] = np.asarray(ds[bname].values) if has_bounds else None
        return cls._build(names, coords, bounds)

    @classmethod
    def from_bounds(
        cls,
        bounds: Mapping[str, tuple],
        resolution: float | str | np.timedelta64 | Mapping[str, float | str | np.timedelta64],
    ) -> TargetGrid:
        """A grid of equal cells covering ``bounds`` (cell centres half a step inside).

        Parameters
        ----------
        bounds
            ``{dim: (low, high)}`` in order; datetimes (or strings pandas parses)
            for a time dim. A dim named like a longitude (``lon``, ``longitude``)
            that spans 360 degrees wraps.
        resolution
            One step for every dim, or one per dim; a time step is a
            ``numpy.timedelta64`` or a pandas offset string such as ``"1D"``.

        Returns
        -------
        TargetGrid

        Raises
        ------
        InputError
            A high bound not above the low one, or a step that is not positive or
            that does not divide the span into a whole number of cells (within 1e-6).
        """
        coords: dict[str, xr.DataArray] = {}
        for name, (low, high) in bounds.items():
            step = resolution[name] if isinstance(resolution, Mapping) else resolution
            coords[name] = _regular_coord(str(name), low, high, step)
        return cls._build(list(coords), coords, dict.fromkeys(coords))

    @classmethod
    def _build(
        cls,
        names: list[str],
        coords: Mapping[str, xr.DataArray],
        bounds: Mapping[str, np.ndarray | None],
    ) -> TargetGrid:
        values, positions, edges, roles, periodic, attrs = {}, {}, {}, {}, {}, {}
        origin = None
        for name in names:
            coord = coords[name]
            if coord.ndim != 1 or coord.size == 0:
                raise InputError(f"grid coordinate {name!r} must be 1-D and not empty")
            role = role_of(coord)
            raw = np.asarray(coord.values)
            if role != "time" and not np.issubdtype(raw.dtype, np.number):
                raise InputError(
                    f"grid coordinate {name!r} is neither numeric nor datetime64 "
                    f"({raw.dtype}; cftime calendars are not supported for points)"
                )
            bnd = bounds[name]
            if role == "time":
                raw = raw.astype("datetime64[ns]")
                origin = raw[0]
                pos = (raw - origin).astype(np.int64).astype(np.float64) / _NS_PER_S
                if bnd is not None:
                    bnd = (bnd.astype("datetime64[ns]") - origin).astype(np.int64) / _NS_PER_S
            else:
                pos = raw.astype(np.float64)
            periodic[name] = bool(role == "longitude" and is_global_longitude(coord))
            if role == "longitude":
                pos = _unwrap(pos)
            if pos.size > 1 and not (np.all(np.diff(pos) > 0) or np.all(np.diff(pos) < 0)):
                raise InputError(f"grid coordinate {name!r} is not strictly monotonic")
            values[name], positions[name], roles[name] = raw, pos, role
            edges[name] = _edges(pos, None if bnd is None else np.asarray(bnd, dtype=float))
            attrs[name] = dict(coord.attrs)
        return cls(tuple(names), values, positions, edges, roles, periodic, origin, attrs)


def _regular_coord(name: str, low: object, high: object, step: object) -> xr.DataArray:
    """Cell centres from ``low + step/2`` to ``high - step/2``."""
    is_time = not isinstance(low, int | float | np.number)
    if is_time:
        lo, hi = pd.Timestamp(low).to_datetime64(), pd.Timestamp(high).to_datetime64()
        lo, hi = lo.astype("datetime64[ns]"), hi.astype("datetime64[ns]")
        dt = pd.Timedelta(step).to_timedelta64().astype("timedelta64[ns]")
        span, width = float((hi - lo).astype(np.int64)), float(dt.astype(np.int64))
    else:
        span, width = float(high) - float(low), float(step)  # type: ignore[arg-type]
    if not span > 0 or not width > 0:
        raise InputError(f"grid dim {name!r}: bounds ({low}, {high}) and step {step} give no cells")
    n = round(span / width)
    if n < 1 or abs(n * width - span) > 1e-6 * span:
        raise InputError(f"grid dim {name!r}: step {step} does not divide ({low}, {high})")
    if is_time:
        values = lo + dt // 2 + dt * np.arange(n)
        return xr.DataArray(values, dims=name, name=name, attrs={"standard_name": "time"})
    values = float(low) + width * (np.arange(n) + 0.5)  # type: ignore[arg-type]
    role = role_of_name(name)
    attrs = {"units": "degrees_east"} if role == "longitude" else {}
    if role == "latitude":
        attrs = {"units": "degrees_north"}
    return xr.DataArray(values, dims=name, name=name, attrs=attrs)
