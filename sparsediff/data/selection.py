"""Which data to work on: Dataset conversion, variable selection, dim checks.

Every public entry point that accepts "a Dataset or a DataArray" goes through
[`as_dataset`][as_dataset], so a DataArray becomes a Dataset in exactly one way (its
name, or a default the caller chooses, or ``"data"``). [`numeric_variables`][numeric_variables]
picks the variables to fill and [`validate_dims`][validate_dims] checks named dims, both
with one-line [`InputError`][sparsediff.errors.InputError] messages that list what
the data does hold.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import numpy as np
import xarray as xr

from sparsediff.errors import InputError

__all__ = [
    "DEFAULT_NAME",
    "as_dataset",
    "as_tuple",
    "is_numeric",
    "numeric_variables",
    "validate_dims",
]

#: Name given to an unnamed DataArray when the caller has no better one.
DEFAULT_NAME = "data"


def as_dataset(obj: xr.Dataset | xr.DataArray, *, name: str | None = None) -> xr.Dataset:
    """Return ``obj`` as a Dataset (a DataArray becomes its only variable).

    Parameters
    ----------
    obj
        A Dataset (returned as is) or a DataArray.
    name
        Name of the variable for an *unnamed* DataArray (default
        `DEFAULT_NAME`). A named DataArray keeps its name.

    Returns
    -------
    xarray.Dataset
        For a DataArray: one data variable, its coordinates, no Dataset attrs.

    Raises
    ------
    InputError
        ``obj`` is neither a Dataset nor a DataArray.
    """
    if isinstance(obj, xr.Dataset):
        return obj
    if isinstance(obj, xr.DataArray):
        var = obj.name if obj.name is not None else (name or DEFAULT_NAME)
        return obj.to_dataset(name=var, promote_attrs=False)
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        raise InputError(
            f"expected an xarray Dataset or DataArray, got {type(obj).__name__}; wrap it "
            "with named dims first, e.g. xr.DataArray(values, dims=('time', 'lat', 'lon'))"
        )
    raise InputError(f"expected an xarray Dataset or DataArray, got {type(obj).__name__}")


def as_tuple(value: Hashable | Iterable[Hashable] | None) -> tuple[Hashable, ...]:
    """One dim name, an iterable of names or ``None`` as a tuple (``None`` → ``()``)."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Iterable):
        return (value,)
    return tuple(value)


def _dims_text(obj: xr.Dataset | xr.DataArray) -> str:
    sizes = dict(obj.sizes)
    return ", ".join(f"{d}={n}" for d, n in sizes.items()) or "(none)"


def validate_dims(
    obj: xr.Dataset | xr.DataArray, dims: Hashable | Iterable[Hashable]
) -> tuple[Hashable, ...]:
    """Check that every dim in ``dims`` exists in ``obj`` with a non-zero length.

    Parameters
    ----------
    obj
        Dataset or DataArray to check.
    dims
        One dim name or an iterable of dim names.

    Returns
    -------
    tuple
        The dims, as a tuple, in the order given.

    Raises
    ------
    InputError
        A dim is not in ``obj`` or has length zero; the message names the dim
        and lists the available dims with their lengths.
    """
    out = as_tuple(dims) if dims is not None else (None,)
    sizes = dict(obj.sizes)
    what = f"variable {obj.name!r}" if isinstance(obj, xr.DataArray) else "the dataset"
    for d in out:
        if d not in sizes:
            raise InputError(f"dim {d!r} is not in {what}; available dims: {_dims_text(obj)}")
        if sizes[d] == 0:
            raise InputError(f"dim {d!r} of {what} has length 0; dims: {_dims_text(obj)}")
    return out


def is_numeric(da: xr.DataArray) -> bool:
    """Whether ``da`` holds numbers (integers, floats or complex; not bool or dates)."""
    return bool(np.issubdtype(da.dtype, np.number))


def numeric_variables(
    ds: xr.Dataset | xr.DataArray, variables: str | Iterable[str] | None = None
) -> list[str]:
    """Return the data variables to work on.

    Parameters
    ----------
    ds
        The dataset (a DataArray counts as a dataset with one variable).
    variables
        Names to use. ``None`` selects every numeric data variable with at
        least two dims that is not a CF bounds, grid-mapping or flag variable.

    Returns
    -------
    list of str
        Variable names, in dataset order (or in the order given).

    Raises
    ------
    InputError
        A named variable is absent or not numeric, or no variable qualifies.
    """
    ds = as_dataset(ds)
    names = [str(n) for n in ds.data_vars]
    if variables is not None:
        chosen = [variables] if isinstance(variables, str) else list(variables)
        if not chosen:
            raise InputError("empty list of variables")
        for name in chosen:
            if name not in ds.data_vars:
                raise InputError(
                    f"variable {name!r} is not in the dataset; data variables: "
                    f"{', '.join(names) or '(none)'}"
                )
            if not is_numeric(ds[name]):
                raise InputError(
                    f"variable {name!r} is not numeric (dtype {ds[name].dtype}); "
                    "only numeric variables can be used"
                )
        return list(dict.fromkeys(chosen))
    auxiliary: set[str] = set()
    for var in ds.variables.values():
        for key in ("bounds", "grid_mapping", "climatology"):
            ref = var.attrs.get(key) or var.encoding.get(key)
            if isinstance(ref, str):
                auxiliary.update(ref.replace(":", " ").split())
    picked = [
        n
        for n in names
        if n not in auxiliary
        and is_numeric(ds[n])
        and ds[n].ndim >= 2
        and "flag_meanings" not in ds[n].attrs
    ]
    if not picked:
        raise InputError(
            "no numeric data variable with at least 2 dims in the dataset; data variables: "
            f"{', '.join(f'{n}{ds[n].dims}' for n in names) or '(none)'}"
        )
    return picked
