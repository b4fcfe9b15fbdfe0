"""CF metadata rules that every output of sparsediff follows.

- The ``Conventions`` attribute names CF 1.9 or later when the data hold
  ``uint8`` flags or ``int64`` coordinates (CF 1.9 added those types);
  other conventions named in it are kept.
- Coordinate variables and cell-boundary variables carry no ``_FillValue``
  (they hold no missing values); xarray would add a NaN fill value to every
  float one.
- ``flag_values``, ``flag_masks`` and ``valid_*`` attributes have the type of
  their variable's stored data (Zarr keeps attributes as JSON numbers).
- A time boundary variable is encoded with exactly its parent's units and
  calendar, so that xarray writes no ``units`` attribute on it (CF recommends
  none, and a differing one is an error).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "MIN_CF_VERSION",
    "align_bounds_encoding",
    "cf_conventions",
    "no_fill_on_coordinates",
    "typed_attributes",
]

#: Attributes CF wants in the type of their variable's stored data.
TYPED_ATTRIBUTES = ("flag_values", "flag_masks", "valid_range", "valid_min", "valid_max")

#: The CF version whose data types the outputs of a fill need (uint8, int64).
MIN_CF_VERSION = (1, 9)

_CF = re.compile(r"^CF-(\d+)\.(\d+)$")


def cf_conventions(value: object, minimum: tuple[int, int] = MIN_CF_VERSION) -> str:
    """``value`` of a ``Conventions`` attribute, naming at least CF ``minimum``.

    Parameters
    ----------
    value
        The current attribute (``None`` when absent); conventions are separated
        by commas or, when there is no comma, by blanks.
    minimum
        The lowest CF version to name.

    Returns
    -------
    str
        The same list with its CF entry raised to ``minimum`` when lower, or
        added first when absent.

    Examples
    --------
    >>> cf_conventions("CF-1.5")
    'CF-1.9'
    >>> cf_conventions("CF-1.6 ACDD-1.3")
    'CF-1.9 ACDD-1.3'
    >>> cf_conventions("CF-1.11, ACDD-1.3")
    'CF-1.11, ACDD-1.3'
    >>> cf_conventions(None)
    'CF-1.9'
    """
    wanted = f"CF-{minimum[0]}.{minimum[1]}"
    if value is None:
        return wanted
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    sep = ", " if "," in text else " "
    names = [n.strip() for n in (text.split(",") if "," in text else text.split())]
    names = [n for n in names if n]
    out, seen = [], False
    for name in names:
        match = _CF.match(name)
        if match and not seen:
            seen = True
            version = (int(match.group(1)), int(match.group(2)))
            out.append(name if version >= minimum else wanted)
        else:
            out.append(name)
    if not seen:
        out.insert(0, wanted)
    return sep.join(out)


def _bounds_of(ds: xr.Dataset) -> dict[str, str]:
    """Coordinate name → its boundary variable's name (present in ``ds``)."""
    out = {}
    for name in ds.coords:
        var = ds.variables[name]
        bounds = var.attrs.get("bounds") or var.encoding.get("bounds")
        if isinstance(bounds, str) and bounds in ds.variables:
            out[str(name)] = bounds
    return out


def no_fill_on_coordinates(ds: xr.Dataset) -> None:
    """Keep ``_FillValue`` off dimension coordinates and boundary variables (in place).

    Sets the encoding of the variables of ``ds``, a copy being prepared for
    writing. Auxiliary (non-dimension) coordinates keep theirs: CF lets them
    hold missing values.
    """
    names = {str(d) for d in ds.dims if d in ds.variables}
    names.update(_bounds_of(ds).values())
    for name in names:
        ds.variables[name].encoding["_FillValue"] = None


def _plain_time_units(units: str) -> str:
    """``"hours since 1970-01-01 00:00:00"`` → ``"hours since 1970-01-01"`` (as xarray writes)."""
    step, sep, ref = units.partition(" since ")
    if not sep:
        return units
    try:
        stamp = pd.Timestamp(ref.strip())
    except (ValueError, TypeError):
        return units
    if stamp.tzinfo is None and stamp == stamp.normalize():
        return f"{step.strip()} since {stamp.date().isoformat()}"
    return units


def align_bounds_encoding(ds: xr.Dataset) -> None:
    """Encode each time boundary variable with its parent's units and calendar (in place).

    xarray leaves the ``units`` attribute off a boundary variable whose encoded
    units equal its parent's; it also shortens a midnight reference time of an
    in-memory coordinate (``... 00:00:00``), so both get that short form.
    """
    for parent, bounds in _bounds_of(ds).items():
        pvar, bvar = ds.variables[parent], ds.variables[bounds]
        if pvar.dtype.kind != "M" or bvar.dtype.kind != "M":
            continue
        units = pvar.encoding.get("units") or bvar.encoding.get("units")
        if isinstance(units, str):
            pvar.encoding["units"] = bvar.encoding["units"] = _plain_time_units(units)
        calendar = pvar.encoding.get("calendar") or bvar.encoding.get("calendar")
        if calendar is not None:
            pvar.encoding["calendar"] = bvar.encoding["calendar"] = calendar


def typed_attributes(ds: xr.Dataset) -> None:
    """Give `TYPED_ATTRIBUTES` their variable's stored dtype, where exact (in place)."""
    for var in ds.variables.values():
        try:
            dtype = np.dtype(var.encoding.get("dtype", var.dtype))
        except TypeError:
            continue
        if dtype.kind not in "iuf":
            continue
        for key in TYPED_ATTRIBUTES:
            value = var.attrs.get(key)
            if value is None or isinstance(value, str | bytes):
                continue
            try:
                raw = np.asarray(value)
                if raw.dtype.kind not in "iuf":
                    continue
                with np.errstate(all="ignore"):
                    cast = raw.astype(dtype)
            except (TypeError, ValueError, OverflowError):
                continue
            if np.array_equal(cast, raw):
                var.attrs[key] = cast if raw.ndim else cast[()]
