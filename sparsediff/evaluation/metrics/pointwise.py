"""Pointwise errors of a deterministic fill at the masked points: RMSE, MAE, bias."""

from __future__ import annotations

from typing import cast

import numpy as np
import xarray as xr

from sparsediff.evaluation.metrics._inputs import Dims, _named, _prepare
from sparsediff.evaluation.metrics.weighting import _masked_mean, _weights

__all__ = ["bias", "mae", "rmse"]


def rmse(
    pred: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    dims: Dims = None,
    area_weighted: bool = True,
) -> xr.DataArray:
    """Root-mean-square error over the masked points.

    ``sqrt(sum(w * (pred - truth)**2) / sum(w))`` over the points where
    ``mask`` is ``True``, with ``w = cos(latitude)`` (or 1).

    Parameters
    ----------
    pred, truth
        Prediction and truth on the same grid (dims may differ and broadcast,
        e.g. a ``member`` dim in ``pred``).
    mask
        Boolean DataArray, ``True`` = point to score (the held-out points);
        ``None`` scores every point where ``truth`` is finite.
    dims
        Dim(s) to reduce; default all.
    area_weighted
        Weight by ``cos(latitude)`` when there is a latitude coordinate.

    Returns
    -------
    xarray.DataArray
        A scalar by default; NaN where no point is scored or a scored point
        holds NaN.

    Raises
    ------
    InputError
        Inputs that are not DataArrays, a non-boolean mask, mismatched
        coordinates or an unknown dim.
    """
    pred, truth, mask, rdims = _prepare(pred, truth, mask, dims)
    mse = _masked_mean((pred - truth) ** 2, mask, rdims, _weights(truth, area_weighted))
    # a DataArray: numpy's stubs do not see xarray's __array_ufunc__
    return _named(cast(xr.DataArray, np.sqrt(mse)), "rmse")


def mae(
    pred: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    dims: Dims = None,
    area_weighted: bool = True,
) -> xr.DataArray:
    """Mean absolute error ``mean(w * |pred - truth|)`` over the masked points.

    Parameters
    ----------
    pred, truth, mask, dims, area_weighted
        As for [`rmse`][rmse].

    Returns
    -------
    xarray.DataArray
        A scalar by default.

    Raises
    ------
    InputError
        As for [`rmse`][rmse].
    """
    pred, truth, mask, rdims = _prepare(pred, truth, mask, dims)
    out = _masked_mean(abs(pred - truth), mask, rdims, _weights(truth, area_weighted))
    return _named(out, "mae")


def bias(
    pred: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    dims: Dims = None,
    area_weighted: bool = True,
) -> xr.DataArray:
    """Mean error ``mean(w * (pred - truth))`` over the masked points (positive = too high).

    Parameters
    ----------
    pred, truth, mask, dims, area_weighted
        As for [`rmse`][rmse].

    Returns
    -------
    xarray.DataArray
        A scalar by default.

    Raises
    ------
    InputError
        As for [`rmse`][rmse].
    """
    pred, truth, mask, rdims = _prepare(pred, truth, mask, dims)
    out = _masked_mean(pred - truth, mask, rdims, _weights(truth, area_weighted))
    return _named(out, "bias")
