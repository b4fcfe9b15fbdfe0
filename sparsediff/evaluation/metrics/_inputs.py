"""Input checks shared by the metrics: DataArrays, masks, alignment, the dims to reduce."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import cast

import numpy as np
import xarray as xr

from sparsediff.errors import InputError

Dims = Hashable | Sequence[Hashable] | None


def _check_da(obj: object, what: str) -> xr.DataArray:
    if not isinstance(obj, xr.DataArray):
        raise InputError(f"{what} must be an xarray DataArray, got {type(obj).__name__}")
    return obj


def _check_mask(mask: object, truth: xr.DataArray) -> xr.DataArray:
    if mask is None:
        # a DataArray: numpy's stubs do not see xarray's __array_ufunc__
        return cast(xr.DataArray, np.isfinite(truth))
    mask = _check_da(mask, "mask")
    if mask.dtype != np.bool_:
        raise InputError(
            f"mask must be a boolean DataArray (True = point to score), got dtype {mask.dtype}"
        )
    return mask


def _align(*objs: xr.DataArray) -> tuple[xr.DataArray, ...]:
    try:
        return tuple(xr.align(*objs, join="exact"))
    except ValueError as err:
        raise InputError(
            f"the prediction, truth and mask are not on the same grid (coordinates differ): {err}"
        ) from None


def _reduce_dims(dims: Dims, *objs: xr.DataArray) -> list[Hashable]:
    available: list[Hashable] = []
    for obj in objs:
        available += [d for d in obj.dims if d not in available]
    if dims is None:
        return available
    wanted = [dims] if isinstance(dims, str) or not isinstance(dims, Iterable) else list(dims)
    for d in wanted:
        if d not in available:
            raise InputError(
                f"cannot reduce over dim {d!r}: it is not in the data (dims: "
                f"{', '.join(map(str, available))})"
            )
    return wanted


def _prepare(
    pred: object, truth: object, mask: object, dims: Dims
) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray, list[Hashable]]:
    pred = _check_da(pred, "pred")
    truth = _check_da(truth, "truth")
    mask = _check_mask(mask, truth)
    pred, truth, mask = _align(pred, truth, mask)
    return pred, truth, mask, _reduce_dims(dims, pred, truth, mask)


def _named(da: xr.DataArray, name: str) -> xr.DataArray:
    da.name = name
    da.attrs = {}
    return da
