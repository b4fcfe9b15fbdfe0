"""User rules for invalid points: a mask (name, DataArray or file) or a threshold.

The masks resolved here become the ``INVALID`` state of
[`states`][sparsediff.data.masks.states]; a mask must broadcast against the variable it
belongs to (same dim lengths and coordinates).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from sparsediff.data.selection import validate_dims
from sparsediff.errors import InputError

__all__ = ["InvalidSpec", "at_or_below", "invalid_mask"]

InvalidSpec = str | os.PathLike[str] | xr.DataArray | None


def _along_dims(ds: xr.Dataset, along: Hashable | Iterable[Hashable] | None) -> tuple:
    """The checked dims of an ``invalid_along`` argument (``()`` for ``None``)."""
    if along is None:
        return ()
    return validate_dims(ds, along)


def _mask_from_file(path: Path) -> xr.DataArray:
    """The one data variable of a NetCDF/Zarr mask file."""
    from sparsediff.data.io import open as open_data

    mask_ds = open_data(path)
    names = [str(n) for n in mask_ds.data_vars]
    if len(names) != 1:
        raise InputError(
            f"invalid-mask file {str(path)!r} must hold exactly one data variable, "
            f"it holds {', '.join(names) or 'none'}"
        )
    return mask_ds[names[0]]


def invalid_mask(ds: xr.Dataset, spec: InvalidSpec) -> xr.DataArray | None:
    """Resolve an ``invalid`` argument into a boolean DataArray (``True`` = invalid).

    Parameters
    ----------
    ds
        The dataset the mask belongs to.
    spec
        ``None``; the name of a variable of ``ds``; a DataArray (bool, or
        numeric where non-zero — NaN included — means invalid); or the path of
        a NetCDF/Zarr file holding exactly one such variable.

    Returns
    -------
    xarray.DataArray or None
        The boolean mask, with the dims of the mask (it broadcasts later).

    Raises
    ------
    InputError
        An unknown name, a missing file, or a mask that is not bool or numeric.
    """
    if spec is None:
        return None
    if isinstance(spec, xr.DataArray):
        mask, what = spec, f"invalid mask {spec.name!r}" if spec.name else "invalid mask"
    elif isinstance(spec, str) and spec in ds.variables:
        mask, what = ds[spec], f"invalid mask variable {spec!r}"
    elif isinstance(spec, str | os.PathLike):
        path = Path(os.fspath(spec)).expanduser()
        if not path.exists():
            raise InputError(
                f"invalid mask {os.fspath(spec)!r} is neither a variable of the dataset "
                f"(variables: {', '.join(map(str, ds.variables))}) nor an existing file"
            )
        mask, what = _mask_from_file(path), f"invalid mask from {str(path)!r}"
    else:
        raise InputError(
            "invalid must be a variable name, a DataArray or a file path, "
            f"got {type(spec).__name__}"
        )
    if mask.dtype == np.bool_:
        out = mask
    elif np.issubdtype(mask.dtype, np.number):
        out = mask != 0
    else:
        raise InputError(f"{what} has dtype {mask.dtype}; it must be bool or 0/1 numbers")
    out.attrs = {}
    out.name = "invalid"
    return out


def at_or_below(
    ds: xr.Dataset, variables: Iterable[str], threshold: float, *, invalid: InvalidSpec = None
) -> xr.DataArray:
    """Invalid mask of points where any variable is ``<= threshold`` (e.g. air = 0).

    Parameters
    ----------
    ds
        The data.
    variables
        Variables the rule looks at.
    threshold
        Points at or below it are invalid.
    invalid
        An extra ``invalid`` spec (as for [`states`][sparsediff.data.masks.states]) OR-ed in.

    Returns
    -------
    xarray.DataArray
        Boolean, ``True`` = invalid; lazy if the data are.
    """
    masks_ = [ds[v] <= threshold for v in variables]
    out = masks_[0]
    for m in masks_[1:]:
        out = out | m
    extra = invalid_mask(ds, invalid)
    return out if extra is None else (out | extra)


def _fit_mask(mask: xr.DataArray, var: xr.DataArray, name: str) -> xr.DataArray:
    """Check ``mask`` broadcasts against ``var``; return it with ``var``'s coords."""

    def shape_text(obj: xr.DataArray) -> str:
        return "(" + ", ".join(f"{d}: {n}" for d, n in obj.sizes.items()) + ")"

    bad = [d for d in mask.dims if d not in var.sizes or var.sizes[d] != mask.sizes[d]]
    if bad:
        raise InputError(
            f"invalid mask of shape {shape_text(mask)} does not match variable {name!r} "
            f"of shape {shape_text(var)} (dim {bad[0]!r})"
        )
    for d in mask.dims:
        if d in mask.indexes and d in var.indexes:
            a, b = mask.indexes[d], var.indexes[d]
            same = a.equals(b)
            if not same and a.dtype.kind in "iuf" and b.dtype.kind in "iuf":
                same = bool(np.allclose(np.asarray(a), np.asarray(b)))
            if not same:
                raise InputError(
                    f"coordinates of dim {d!r} differ between the invalid mask "
                    f"and variable {name!r}"
                )
    return mask.drop_vars(list(mask.coords))


def _user_masks(
    data: xr.Dataset, names: list[str], invalid: InvalidSpec | Mapping[str, InvalidSpec]
) -> dict[str, xr.DataArray | None]:
    """The resolved user mask of each variable (one spec for all, or one per variable)."""
    if isinstance(invalid, Mapping):
        unknown = [k for k in invalid if k not in names]
        if unknown:
            raise InputError(f"invalid masks given for {unknown}, which are not among {names}")
        return {n: invalid_mask(data, invalid.get(n)) for n in names}
    shared = invalid_mask(data, invalid)
    return dict.fromkeys(names, shared)
