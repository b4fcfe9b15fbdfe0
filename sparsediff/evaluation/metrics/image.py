"""Image metrics of 2-D/3-D volumes restricted to the masked points: PSNR and SSIM."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import xarray as xr

from sparsediff.errors import InputError
from sparsediff.evaluation.metrics._inputs import Dims, _align, _check_da, _check_mask, _reduce_dims

__all__ = ["psnr", "ssim"]


def _image_inputs(
    pred: object, truth: object, mask: object, dims: Dims, *, spatial_check: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """Arrays of ``pred``, ``truth`` and ``mask`` broadcast together, plus the spatial axes."""
    pred = _check_da(pred, "pred")
    truth = _check_da(truth, "truth")
    mask = _check_mask(mask, truth)
    pred, truth, mask = _align(pred, truth, mask)
    pred, truth, mask = xr.broadcast(pred, truth, mask)
    order = list(truth.dims)
    spatial = order if dims is None else _reduce_dims(dims, truth)
    if spatial_check and len(spatial) not in (2, 3):
        raise InputError(f"PSNR/SSIM need 2 or 3 spatial dims, got {tuple(spatial)}")
    axes = tuple(order.index(d) for d in spatial)
    vals = [np.asarray(a.transpose(*order).values) for a in (pred, truth, mask)]
    return vals[0].astype(np.float64), vals[1].astype(np.float64), vals[2], axes


def _data_range(truth: np.ndarray, data_range: float | None) -> float:
    if data_range is not None:
        if not data_range > 0:
            raise InputError(f"data_range must be positive, got {data_range}")
        return float(data_range)
    finite = truth[np.isfinite(truth)]
    if finite.size == 0:
        raise InputError("truth has no finite value to take the data range from")
    span = float(finite.max() - finite.min())
    if span <= 0:
        raise InputError("truth is constant; give data_range explicitly")
    return span


def psnr(
    pred: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    data_range: float | None = None,
) -> float:
    """Peak signal-to-noise ratio over the masked points, in dB.

    ``10 log10(data_range**2 / MSE)`` with the (unweighted) MSE over the
    masked points; ``data_range`` defaults to ``max - min`` of the finite
    truth values (the whole array, not only the mask).

    Parameters
    ----------
    pred, truth
        2-D or 3-D volumes (any extra dims are pooled).
    mask
        Boolean, ``True`` = scored point (the filled region).
    data_range
        Dynamic range of the data.

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical inputs, NaN with no scored point.

    Raises
    ------
    InputError
        As for `rmse`; a non-positive range or a constant truth.
    """
    p, t, m, _ = _image_inputs(pred, truth, mask, None, spatial_check=False)
    rng = _data_range(t, data_range)
    if not m.any():
        return float("nan")
    mse = float(np.mean((p[m] - t[m]) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(rng**2 / mse))


def ssim(
    pred: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    data_range: float | None = None,
    dims: Dims = None,
    sigma: float = 1.5,
    truncate: float = 3.5,
) -> float:
    """Structural similarity (Wang et al. 2004) averaged over the masked points.

    The local means, variances and covariance are Gaussian-weighted
    (``scipy.ndimage.gaussian_filter``, ``sigma`` 1.5 and ``truncate`` 3.5
    as scikit-image's ``gaussian_weights=True``; ``mode="reflect"`` at the
    edges) over the spatial ``dims`` only; the SSIM map
    ``(2 mx my + C1)(2 sxy + C2) / ((mx² + my² + C1)(sxx + syy + C2))``
    with ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²`` is then averaged over the
    masked points only (BraTS inpainting convention). NaN points (e.g.
    outside the body or invalid) are set to 0 in both inputs before
    filtering.

    Parameters
    ----------
    pred, truth, mask, data_range
        As for [`psnr`][psnr].
    dims
        The 2 or 3 spatial dims (default: all dims of ``truth``); other dims
        are treated as a batch of volumes.
    sigma, truncate
        Gaussian window.

    Returns
    -------
    float
        Mean SSIM over the mask (1 for identical inputs), NaN with no scored point.

    Raises
    ------
    InputError
        As for [`psnr`][psnr]; not 2 or 3 spatial dims.
    """
    p, t, m, axes = _image_inputs(pred, truth, mask, dims)
    rng = _data_range(t, data_range)
    if not m.any():
        return float("nan")
    missing = ~np.isfinite(p) | ~np.isfinite(t)
    p = np.where(missing, 0.0, p)
    t = np.where(missing, 0.0, t)
    sig = [sigma if ax in axes else 0.0 for ax in range(t.ndim)]

    def blur(a: np.ndarray) -> np.ndarray:
        return ndi.gaussian_filter(a, sigma=sig, mode="reflect", truncate=truncate)

    mx, my = blur(p), blur(t)
    sxx = blur(p * p) - mx * mx
    syy = blur(t * t) - my * my
    sxy = blur(p * t) - mx * my
    c1 = (0.01 * rng) ** 2
    c2 = (0.03 * rng) ** 2
    smap = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(np.mean(smap[m]))
