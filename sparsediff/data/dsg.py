"""Reading CF discrete sampling geometries (CF §9) into one table of observations.

``featureType`` ``point``, ``timeSeries`` and ``trajectory`` are read in each
of CF's layouts:

- *point*: every variable along the one observation dim;
- *orthogonal / incomplete multidimensional*: data ``(instance, element)``,
  instance coordinates ``(instance)``, element coordinates ``(element)`` or
  ``(instance, element)``: broadcast against the data;
- *contiguous ragged*: data ``(obs)``; a count variable with a
  ``sample_dimension`` attribute gives each instance's run length;
- *indexed ragged*: data ``(obs)``; an index variable with an
  ``instance_dimension`` attribute gives each observation's instance.

Coordinates are found through the data variable's ``coordinates`` attribute
and recognised by CF attributes (``standard_name``, ``units``, ``axis``,
``positive``); the feature id is the variable with ``cf_role``
``timeseries_id`` or ``trajectory_id``. Padding (elements whose coordinates
are all missing, past the end of a shorter feature) is left out; a missing
value at a real location is a NaN row, dropped and counted downstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import numpy as np
import pandas as pd
import xarray as xr

from sparsediff.data.target_grid import role_of
from sparsediff.errors import InputError

__all__ = ["FEATURE_TYPES", "DsgTable", "read_dsg"]


#: The CF featureTypes read (lower case).
FEATURE_TYPES = ("point", "timeseries", "trajectory")
_ID_ROLES = ("timeseries_id", "trajectory_id")
_CANONICAL = {"latitude": "latitude", "longitude": "longitude", "time": "time", "vertical": "z"}


@dataclass(frozen=True)
class DsgTable:
    """A DSG flattened to one row per observation.

    Attributes
    ----------
    frame
        Columns: the value, the coordinates (named ``latitude``, ``longitude``,
        ``time``, ``z``), and the platform id when there is one.
    value
        The value column.
    coords
        The coordinate columns.
    platform
        The platform-id column, or ``None``.
    error
        An error-std column (a variable named in the value's
        ``ancillary_variables`` with ``standard_name`` ending in
        ``standard_error``), or ``None``.
    units
        The value's units, or ``None``.
    """

    frame: pd.DataFrame
    value: str
    coords: tuple[str, ...]
    platform: str | None
    error: str | None
    units: str | None


def _open(source: str | PathLike | xr.Dataset) -> xr.Dataset:
    if isinstance(source, xr.Dataset):
        return source
    try:
        return xr.open_dataset(source)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot read {source} as NetCDF: {first}") from None


def _value_name(ds: xr.Dataset, value: str | None) -> str:
    if value is not None:
        if value not in ds.data_vars:
            raise InputError(f"the DSG has no data variable {value!r} (have {list(ds.data_vars)})")
        return value
    found = [
        str(k)
        for k, v in ds.data_vars.items()
        if "coordinates" in v.encoding or "coordinates" in v.attrs
    ]
    if len(found) != 1:
        raise InputError(f"name the DSG's data variable with value= (candidates: {found})")
    return found[0]


def _expander(ds: xr.Dataset, obs_dim: str) -> tuple[str, np.ndarray] | None:
    """(instance dim, instance index of each observation) for a ragged array."""
    for var in ds.variables.values():
        if var.attrs.get("sample_dimension") == obs_dim:
            counts = np.asarray(var.values, dtype=np.int64)
            return str(var.dims[0]), np.repeat(np.arange(counts.size), counts)
        if "instance_dimension" in var.attrs and var.dims == (obs_dim,):
            return str(var.attrs["instance_dimension"]), np.asarray(var.values, dtype=np.int64)
    return None


def _coordinate_names(ds: xr.Dataset, value: str) -> list[str]:
    var = ds[value]
    names = str(var.encoding.get("coordinates", var.attrs.get("coordinates", ""))).split()
    names += [str(c) for c in var.coords if c not in names]
    return [n for n in names if n in ds.variables and role_of(ds[n]) is not None]


def read_dsg(source: str | PathLike | xr.Dataset, value: str | None = None) -> DsgTable:
    """Flatten a CF DSG (``point``, ``timeSeries``, ``trajectory``) to one table.

    Parameters
    ----------
    source
        A NetCDF path or an open Dataset (CF-decoded, as by `xarray.open_dataset`).
    value
        The data variable; default: the only one with a ``coordinates`` attribute.

    Returns
    -------
    DsgTable

    Raises
    ------
    InputError
        No or an unsupported ``featureType``, no coordinates, or a variable whose
        dims fit neither the data nor its instances.
    """
    ds = _open(source)
    feature = str(ds.attrs.get("featureType", "")).lower()
    if feature not in FEATURE_TYPES:
        raise InputError(
            f"featureType {ds.attrs.get('featureType')!r}: "
            "expected one of point, timeSeries, trajectory"
        )
    value = _value_name(ds, value)
    data = ds[value]
    ids = [str(k) for k, v in ds.variables.items() if v.attrs.get("cf_role") in _ID_ROLES]
    names = _coordinate_names(ds, value)
    if not names:
        raise InputError(f"DSG variable {value!r} has no recognisable coordinates")
    ancillary = str(data.attrs.get("ancillary_variables", "")).split()
    errors = [
        a
        for a in ancillary
        if a in ds.variables
        and str(ds[a].attrs.get("standard_name", "")).endswith("standard_error")
    ]
    ragged = _expander(ds, str(data.dims[0])) if data.ndim == 1 else None
    columns: dict[str, np.ndarray] = {value: _flat(ds[value], data, ragged)}
    coords = []
    for name in names:
        column = _CANONICAL[role_of(ds[name]) or ""]
        columns[column] = _flat(ds[name], data, ragged)
        coords.append(column)
    if errors:
        columns["error"] = _flat(ds[errors[0]], data, ragged)
    if ids:
        columns["platform"] = _flat(ds[ids[0]], data, ragged)
    frame = pd.DataFrame(columns)
    padding = frame[coords].isna().all(axis=1).to_numpy()  # past a feature's end: not data
    return DsgTable(
        frame.loc[~padding].reset_index(drop=True), value, tuple(coords),
        "platform" if ids else None, "error" if errors else None, data.attrs.get("units"),
    )  # fmt: skip


def _flat(
    var: xr.DataArray, data: xr.DataArray, ragged: tuple[str, np.ndarray] | None
) -> np.ndarray:
    """``var`` with one entry per element of ``data`` (flattened in C order)."""
    if set(var.dims) <= set(data.dims):
        return np.asarray(var.broadcast_like(data).transpose(*data.dims).values).ravel()
    if ragged is not None and var.dims == (ragged[0],):
        return np.asarray(var.values)[ragged[1]]
    raise InputError(
        f"DSG variable {var.name!r} with dims {var.dims} fits neither {data.dims} nor its instances"
    )
