"""Point observations: values at locations, with optional errors and platform ids.

[`Observations`][Observations] is the one type through which data that are not on the
grid (stations, floats, drifters, ship and satellite tracks) enter sparsediff;
a gridded field with gaps is its special case (`Observations.from_grid_mask`,
one observation per observed cell). It holds

- ``values``: one float64 value per observation;
- ``coords``: the location of each observation, one array per coordinate
  (float64; ``datetime64[ns]`` for time), named like the grid's dims or by
  their role (``lat``/``latitude``, ``lon``/``longitude``, ``time``, ``depth``/``z``);
- ``error``: an optional observation error standard deviation per observation;
- ``platform``: an optional id per observation (station, float, track).

Rules on bad input, decided here once for every reader:

- a NaN value or coordinate: the row is dropped and counted (a warning), or
  refused with ``strict=True``;
- a duplicate (same coordinates, value and platform as an earlier row):
  dropped and counted, or refused with ``strict=True``; two different values
  at one place are two measurements and are both kept;
- an error that is NaN, zero or negative: refused ([`InputError`][sparsediff.errors.InputError]);
- a missing column or variable: refused, naming what is there.

Against a grid (`Observations.aligned_to`): coordinates are matched to
the grid's dims by name, then by role; longitudes are moved into the grid's
convention (0..360 or -180..180, counted in a warning); points outside the
grid's cells and times outside its time range are dropped and counted, or
refused with ``strict=True``. The operator ``H`` from a grid field to the
observations is `Observations.operator`
([`sparsediff.data.obs_operator`][sparsediff.data.obs_operator]).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from sparsediff.data import dsg
from sparsediff.data.obs_holdout import held_out
from sparsediff.data.obs_input import (
    as_coord,
    clean_rows,
    column,
    first_line,
    floats,
    isnan,
    report,
)
from sparsediff.data.obs_operator import at_observations, inside_grid, observation_operator
from sparsediff.data.target_grid import TargetGrid, role_of, role_of_name, wrap_longitude
from sparsediff.errors import InputError, SparsediffWarning

__all__ = ["Observations"]


def _freeze(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, eq=False)
class Observations:
    """Values at locations in a grid's coordinates, with optional errors and platform ids.

    Build one with a ``from_*`` constructor, which cleans the input by the rules
    of the module notes; the plain constructor only checks (every array 1-D, one
    length, no NaN, errors > 0).

    Attributes
    ----------
    name
        The observed variable's name.
    values
        float64 values, shape ``(n,)``.
    coords
        Location per coordinate name, each shape ``(n,)``: float64, or
        ``datetime64[ns]`` for time.
    error
        Observation error standard deviations (float64, > 0), or ``None``.
    platform
        Platform ids (station, float, track), or ``None``.
    units
        The values' units (UDUNITS string), or ``None``.
    dropped
        Rows dropped so far, counted by reason.
    """

    name: str
    values: np.ndarray
    coords: Mapping[str, np.ndarray]
    error: np.ndarray | None = None
    platform: np.ndarray | None = None
    units: str | None = None
    dropped: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "coords", _freeze(self.coords))
        object.__setattr__(self, "dropped", _freeze(self.dropped))
        n = self.values.shape[0] if self.values.ndim == 1 else -1
        arrays = {"values": self.values, **self.coords}
        arrays |= {
            k: v for k, v in (("error", self.error), ("platform", self.platform)) if v is not None
        }
        for key, arr in arrays.items():
            if arr.ndim != 1 or arr.shape[0] != n:
                raise InputError(f"observations: {key!r} must be 1-D with one entry per value")
        if not self.coords:
            raise InputError("observations need at least one coordinate")
        for key in ("values", *self.coords):
            if isnan(arrays[key]).any():
                raise InputError(f"observations: {key!r} holds NaN")
        if self.error is not None and not np.all(self.error > 0):  # False for NaN too
            bad = int(np.sum(~(self.error > 0)))
            raise InputError(f"{bad} observation errors are NaN, zero or negative")

    # -- basics ---------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __repr__(self) -> str:
        platforms = "" if self.platform is None else f", platforms={np.unique(self.platform).size}"
        return (
            f"Observations({self.name!r}, n={len(self)}, coords={self.dims}, "
            f"errors={self.error is not None}{platforms}, units={self.units!r}, "
            f"dropped={dict(self.dropped)})"
        )

    @property
    def dims(self) -> tuple[str, ...]:
        """The coordinate names, in order."""
        return tuple(self.coords)

    def take(self, index: np.ndarray) -> Observations:
        """The observations at ``index`` (an integer or boolean array), same metadata."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        coords = {k: v[index] for k, v in self.coords.items()}
        return replace(
            self, values=self.values[index], coords=coords,
            error=pick(self.error), platform=pick(self.platform),
        )  # fmt: skip

    def to_dataframe(self) -> pd.DataFrame:
        """One row per observation: the coordinates, the value, and ``error``/``platform``."""
        cols: dict[str, np.ndarray] = {**self.coords, self.name: self.values}
        if self.error is not None:
            cols["error"] = self.error
        if self.platform is not None:
            cols["platform"] = self.platform
        return pd.DataFrame(cols)

    def to_dataset(self, dim: str = "obs") -> xr.Dataset:
        """The observations along one dim ``dim``: the value (with its ``units``), the
        coordinates as coordinate variables, ``<name>_error`` and ``platform``.

        `from_dataset` reads it back to equal observations.
        """
        data: dict[str, xr.DataArray] = {
            self.name: xr.DataArray(
                self.values, dims=dim, attrs={"units": self.units} if self.units else {}
            )
        }
        if self.error is not None:
            data[f"{self.name}_error"] = xr.DataArray(self.error, dims=dim)
            data[self.name].attrs["ancillary_variables"] = f"{self.name}_error"
        if self.platform is not None:
            data["platform"] = xr.DataArray(
                self.platform, dims=dim, attrs={"cf_role": "platform_id"}
            )
        return xr.Dataset(data, coords={k: (dim, v) for k, v in self.coords.items()})

    def in_units(self, units: str) -> Observations:
        """The observations in ``units``: the same when equal, converted (with a
        warning) when convertible (``degC`` to ``K``), refused otherwise.

        Raises
        ------
        InputError
            The observations have no units, or units that cannot be converted.
        """
        from cf_units import Unit

        if self.units is None:
            raise InputError(f"observations of {self.name!r} have no units; {units!r} expected")
        have, want = Unit(self.units), Unit(units)
        if have == want:
            return self
        if not have.is_convertible(want):
            raise InputError(f"observations of {self.name!r} are in {self.units!r}, not {units!r}")
        warnings.warn(
            f"observations of {self.name!r} converted from {self.units!r} to {units!r}",
            SparsediffWarning,
            stacklevel=2,
        )
        values = np.asarray(have.convert(self.values, want), dtype=np.float64)
        error = (
            None
            if self.error is None
            else self.error * abs(have.convert(1.0, want) - have.convert(0.0, want))
        )
        return replace(self, values=values, error=error, units=units)

    # -- against a grid -------------------------------------------------------
    def aligned_to(self, grid: TargetGrid, strict: bool = False) -> Observations:
        """These observations in ``grid``'s terms: coordinates renamed to its dims,
        longitudes moved into its convention, points outside it dropped and counted.

        Parameters
        ----------
        grid
            The target grid.
        strict
            Refuse points outside the grid (or its time range) instead of dropping them.

        Returns
        -------
        Observations
            Coordinates named and ordered as ``grid.dims`` (a dim of size 1 the
            observations lack is left out).

        Raises
        ------
        InputError
            A grid dim of size > 1 that no coordinate matches, a coordinate that
            matches no grid dim, or (strict) a point outside the grid.
        """
        coords = self._matched(grid)
        dropped = dict(self.dropped)
        moved, span = 0, ""
        for dim, pos in coords.items():
            if grid.roles[dim] == "longitude":
                low, high = grid.longitude_range(dim)
                moved += int(((pos < low) | (pos >= high)).sum())
                coords[dim] = wrap_longitude(pos, low)
                span = f"{low:g}..{high:g}"
        if moved:
            warnings.warn(
                f"{moved} observation longitudes moved by whole turns into the grid's {span}",
                SparsediffWarning,
                stacklevel=2,
            )
        obs = replace(self, coords=coords, dropped=dropped)
        inside, late = inside_grid(obs, grid)
        report(
            dropped, "outside time range", int(late.sum()), strict, "have times outside the grid's"
        )
        report(
            dropped, "outside grid", int((~inside & ~late).sum()), strict, "lie outside the grid"
        )
        return replace(obs.take(np.flatnonzero(inside)), dropped=dropped)

    def _matched(self, grid: TargetGrid) -> dict[str, np.ndarray]:
        """Coordinates renamed to the grid dims they match (by name, then by role)."""
        out: dict[str, np.ndarray] = {}
        free = dict(self.coords)
        for dim in grid.dims:
            key = dim if dim in free else None
            if key is None and grid.roles[dim] is not None:
                same = [k for k in free if role_of_name(k) == grid.roles[dim]]
                key = same[0] if len(same) == 1 else None
            if key is None:
                if grid.coords[dim].size > 1:
                    raise InputError(
                        f"observations have no coordinate for grid dim {dim!r} "
                        f"(have {list(self.coords)})"
                    )
                continue
            values = free.pop(key)
            is_time = np.issubdtype(values.dtype, np.datetime64)
            if is_time != (grid.roles[dim] == "time"):
                raise InputError(
                    f"observation coordinate {key!r} and grid dim {dim!r} differ in kind "
                    "(one is a time)"
                )
            out[dim] = values
        if free:
            raise InputError(
                f"observation coordinates {list(free)} match no grid dim of {list(grid.dims)}"
            )
        return out

    def operator(
        self, grid: TargetGrid, time: Literal["linear", "nearest"] = "linear"
    ) -> sp.csr_array:
        """The sparse operator H with ``H @ field.ravel() == field at the observations``.

        Bilinear (2D), trilinear (3D), multilinear in general over ``grid.dims``
        (C order), wrapping a global longitude; ``time`` picks linear or nearest
        along a time dim. ``H.T`` is its adjoint. See
        [`sparsediff.data.obs_operator.observation_operator`][sparsediff.data.obs_operator.observation_operator].

        Raises
        ------
        InputError
            Observations not yet aligned to ``grid`` (see `aligned_to`).
        """
        return observation_operator(self, grid, time=time)

    def at(
        self, field: xr.DataArray, time: Literal["linear", "nearest"] = "linear"
    ) -> xr.DataArray:
        """``field`` interpolated to these observations through H, for each of its other
        indices (an ensemble ``(member, time, lat, lon)`` gives ``(member, obs)``).
        See
        [`at_observations`][sparsediff.data.obs_operator.at_observations]."""
        return at_observations(self, field, time=time)

    # -- holdout --------------------------------------------------------------
    def holdout(self, spec: str, seed: int = 0) -> tuple[Observations, Observations]:
        """Split into (shown, held out) by ``"points:F"`` or ``"platforms:F"``.

        ``points:F`` hides ``round(F * n)`` observations drawn at random;
        ``platforms:F`` hides ``round(F * p)`` of the ``p`` platforms whole (all
        their observations). The draw depends only on ``seed`` and the data.

        Raises
        ------
        InputError
            A malformed spec, a fraction outside (0, 1), ``platforms`` without
            platform ids, or a split that leaves either side empty.
        """
        held = held_out(self, spec, seed)
        return self.take(np.flatnonzero(~held)), self.take(np.flatnonzero(held))

    # -- constructors ---------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        name: str,
        values: Any,
        coords: Mapping[str, Any],
        error: Any = None,
        platform: Any = None,
        units: str | None = None,
        strict: bool = False,
    ) -> Observations:
        """Observations from plain arrays, cleaned by the rules of the module notes.

        Parameters
        ----------
        name
            The variable's name.
        values, coords, error, platform
            1-D arrays of one length (``coords`` by name).
        units
            The values' units.
        strict
            Refuse NaN rows and duplicates instead of dropping them.

        Returns
        -------
        Observations
        """
        vals = floats(values, name)
        cols = {str(k): as_coord(str(k), v) for k, v in coords.items()}
        err = None if error is None else floats(error, f"{name} error")
        plat = None if platform is None else np.asarray(platform)
        n = vals.shape[0] if vals.ndim == 1 else -1
        if any(
            a.shape != (n,) for a in (*cols.values(), *(x for x in (err, plat) if x is not None))
        ):
            raise InputError(f"observations of {name!r}: every array must be 1-D and of one length")
        keep, dropped = clean_rows(vals, cols, plat, strict)
        pick = lambda a: None if a is None else a[keep]  # noqa: E731
        kept = {k: v[keep] for k, v in cols.items()}
        return cls(name, vals[keep], kept, pick(err), pick(plat), units, dropped)

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        value: str,
        coords: Sequence[str] | Mapping[str, str] | None = None,
        error: str | None = None,
        platform: str | None = None,
        units: str | None = None,
        strict: bool = False,
    ) -> Observations:
        """Observations from a DataFrame: coordinate columns, a value column, and
        optional error and platform columns.

        Parameters
        ----------
        df
            The table (its index is ignored).
        value
            The value column.
        coords
            Coordinate column names, or ``{coordinate name: column}``; default:
            every column named like a latitude, longitude, time or vertical
            coordinate (``lat``, ``longitude``, ``time``, ``depth``, ...).
        error, platform
            The error-std and platform-id columns, if any.
        units
            The values' units.
        strict
            Refuse NaN rows and duplicates instead of dropping them.

        Returns
        -------
        Observations

        Raises
        ------
        InputError
            A named column that is not in ``df``, or no coordinate column.
        """
        if coords is None:
            coords = [str(c) for c in df.columns if role_of_name(c) is not None]
        mapping = dict(coords) if isinstance(coords, Mapping) else {str(c): str(c) for c in coords}
        if not mapping:
            raise InputError(
                f"no coordinate column found in {list(df.columns)}; name them with coords="
            )
        for name in (value, *mapping.values(), error, platform):
            if name is not None and name not in df.columns:
                raise InputError(f"the table has no column {name!r} (columns: {list(df.columns)})")
        pick = lambda c: None if c is None else column(df, c)  # noqa: E731
        return cls.from_arrays(
            value, column(df, value), {k: column(df, c) for k, c in mapping.items()},
            pick(error), pick(platform), units, strict,
        )  # fmt: skip

    @classmethod
    def from_csv(cls, path: str | PathLike, value: str, **kwargs: Any) -> Observations:
        """Observations from a CSV file, read by `pandas.read_csv`.

        Parameters
        ----------
        path
            The file.
        value
            The value column.
        **kwargs
            ``coords``, ``error``, ``platform``, ``units``, ``strict`` as for
            `from_dataframe`.

        Raises
        ------
        InputError
            A file that cannot be read as CSV, or a missing column.
        """
        try:
            df = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise InputError(f"cannot read {path} as CSV: {first_line(exc)}") from None
        return cls.from_dataframe(df, value, **kwargs)

    @classmethod
    def from_dataset(
        cls,
        ds: xr.Dataset,
        value: str,
        dim: str | None = None,
        coords: Sequence[str] | None = None,
        error: str | None = None,
        platform: str | None = None,
        strict: bool = False,
    ) -> Observations:
        """Observations from a Dataset whose variables run along one observation dim.

        Parameters
        ----------
        ds
            The dataset.
        value
            The value variable (1-D); its ``units`` attribute is kept.
        dim
            The observation dim; default: the value's only dim.
        coords
            Coordinate variables along ``dim``; default: those whose name or CF
            attributes make them a latitude, longitude, time or vertical coordinate.
        error, platform
            Error-std and platform-id variables, if any.
        strict
            Refuse NaN rows and duplicates instead of dropping them.

        Raises
        ------
        InputError
            A missing or multi-dimensional variable.
        """
        if value not in ds.variables:
            raise InputError(
                f"the dataset has no variable {value!r} (variables: {list(ds.variables)})"
            )
        if ds[value].ndim != 1:
            raise InputError(
                f"variable {value!r} must be 1-D along the observation dim, not {ds[value].dims}"
            )
        dim = dim or str(ds[value].dims[0])
        if coords is None:
            skip = (value, error, platform, dim)
            coords = [
                str(k) for k, v in ds.variables.items()
                if v.dims == (dim,) and k not in skip and role_of(ds[k]) is not None
            ]  # fmt: skip
        names = [value, *coords, *(x for x in (error, platform) if x is not None)]
        for name in names:
            if name not in ds.variables or ds[name].dims != (dim,):
                raise InputError(f"the dataset has no variable {name!r} along dim {dim!r}")
        renamed = {c: _role_name(ds[c]) for c in coords}
        df = pd.DataFrame({n: ds[n].values for n in names})
        return cls.from_dataframe(
            df,
            value,
            {renamed[c]: c for c in coords},
            error,
            platform,
            ds[value].attrs.get("units"),
            strict,
        )

    @classmethod
    def from_cf_dsg(
        cls, source: str | PathLike | xr.Dataset, value: str | None = None, strict: bool = False
    ) -> Observations:
        """Observations from CF discrete-sampling-geometry data (a NetCDF file or Dataset).

        ``featureType`` ``point``, ``timeSeries`` and ``trajectory`` are read, in
        any of CF's layouts (orthogonal or incomplete multidimensional, contiguous
        or indexed ragged arrays), through their CF attributes; see
        [`sparsediff.data.dsg.read_dsg`][sparsediff.data.dsg.read_dsg]. The feature id
        (``cf_role``) is the platform.

        Parameters
        ----------
        source
            A path or an open Dataset.
        value
            The data variable; default: the only one with a ``coordinates`` attribute.
        strict
            Refuse NaN rows and duplicates instead of dropping them.
        """
        table = dsg.read_dsg(source, value)
        return cls.from_dataframe(
            table.frame, table.value, table.coords, table.error, table.platform, table.units, strict
        )

    @classmethod
    def from_grid_mask(
        cls, da: xr.DataArray, mask: xr.DataArray | np.ndarray | None = None
    ) -> Observations:
        """One observation per observed cell of a gridded field (the gridded special case).

        Parameters
        ----------
        da
            The field; its dims are the grid's (see `TargetGrid.from_dataset`).
        mask
            ``True`` where observed; default: where ``da`` is finite.

        Returns
        -------
        Observations
            Located at the observed cells' coordinates, in C order of ``da``'s
            dims, so that ``operator(TargetGrid.from_dataset(da))`` selects
            exactly those cells.
        """
        grid = TargetGrid.from_dataset(da)
        values = np.asarray(da.values)
        observed = np.isfinite(values) if mask is None else np.asarray(mask, dtype=bool)
        if observed.shape != values.shape:
            raise InputError(
                f"mask of shape {observed.shape} does not fit field of shape {values.shape}"
            )
        index = np.nonzero(observed & np.isfinite(values))
        coords = {d: grid.coords[d][i] for d, i in zip(grid.dims, index)}
        name = str(da.name) if da.name is not None else "value"
        return cls(name, values[index].astype(np.float64), coords, units=da.attrs.get("units"))


def _role_name(var: xr.DataArray) -> str:
    """A variable's name, or its role's name when the name says nothing of its role."""
    role = role_of(var)
    if role is None or role_of_name(var.name) == role:
        return str(var.name)
    return {"vertical": "z"}.get(role, role)
