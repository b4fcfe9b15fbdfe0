"""Power spectra of fills and of the truth, and their ratio per wavenumber."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr

from sparsediff.errors import InputError
from sparsediff.evaluation.metrics._inputs import _align, _check_da

__all__ = ["power_spectrum", "power_spectrum_ratio", "spectrum_ratio_score"]


def _spatial_2d(da: xr.DataArray, dims: Sequence[Hashable]) -> tuple[Hashable, Hashable]:
    dims = tuple(dims)
    if len(dims) != 2:
        raise InputError(f"a power spectrum needs exactly 2 spatial dims, got {dims}")
    for d in dims:
        if d not in da.dims:
            raise InputError(f"dim {d!r} is not in the data (dims: {', '.join(map(str, da.dims))})")
    return dims[0], dims[1]


def _radial_spectrum(fields: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power of ``fields`` (``(..., ny, nx)``), averaged over the leading axes.

    Each slice is de-meaned over its non-missing points, then the missing
    points are set to 0 before the FFT.
    """
    ny, nx = fields.shape[-2:]
    x = np.where(missing, 0.0, fields).astype(np.float64)
    count = (~missing).sum(axis=(-2, -1), keepdims=True)
    mean = x.sum(axis=(-2, -1), keepdims=True) / np.maximum(count, 1)
    x = np.where(missing, 0.0, x - mean)
    power = np.abs(np.fft.fft2(x)) ** 2 / (ny * nx)
    power = power.reshape(-1, ny, nx).mean(axis=0)
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    step = 1.0 / min(ny, nx)
    nbins = min(ny, nx) // 2
    index = np.rint(np.sqrt(fy**2 + fx**2) / step).astype(np.int64)
    keep = (index >= 1) & (index <= nbins)
    sums = np.bincount(index[keep], weights=power[keep], minlength=nbins + 1)[1:]
    counts = np.bincount(index[keep], minlength=nbins + 1)[1:]
    wavenumber = np.arange(1, nbins + 1) * step
    return wavenumber, sums / np.maximum(counts, 1)


def _spectrum_inputs(
    objs: Sequence[xr.DataArray], dims: Sequence[Hashable]
) -> tuple[list[np.ndarray], np.ndarray]:
    d0, d1 = _spatial_2d(objs[0], dims)
    arrays = xr.broadcast(*objs)
    order = [*(d for d in arrays[0].dims if d not in (d0, d1)), d0, d1]
    vals = [np.asarray(a.transpose(*order).values, dtype=np.float64) for a in arrays]
    if min(vals[0].shape[-2:]) < 2:
        raise InputError(f"a power spectrum needs at least 2 points along {d0!r} and {d1!r}")
    missing = np.zeros(vals[0].shape, dtype=bool)
    for v in vals:
        missing |= ~np.isfinite(v)
    return vals, missing


def _spectrum_da(wavenumber: np.ndarray, values: np.ndarray, name: str, long: str) -> xr.DataArray:
    return xr.DataArray(
        values,
        dims=("wavenumber",),
        coords={
            "wavenumber": (
                "wavenumber",
                wavenumber,
                {"long_name": "radial wavenumber", "units": "cycles per grid point"},
            )
        },
        name=name,
        attrs={"long_name": long},
    )


def power_spectrum(da: xr.DataArray, *, dims: Sequence[Hashable]) -> xr.DataArray:
    """Radially averaged 2-D power spectrum, averaged over the other dims.

    Each 2-D slice over ``dims`` is de-meaned over its finite points; NaN
    (invalid or unfilled) points are then set to 0 so the FFT sees a complete
    field. ``|FFT|**2 / N`` is averaged in rings of radial wavenumber
    ``sqrt(fy**2 + fx**2)`` (cycles per grid point, grid-index space), ring
    width ``1/min(ny, nx)``, from the first ring up to ``min(ny, nx)//2``
    rings (the Nyquist of the shorter side); then over the other dims.

    Parameters
    ----------
    da
        The field.
    dims
        The two spatial dims.

    Returns
    -------
    xarray.DataArray
        Power on dim ``wavenumber``.

    Raises
    ------
    InputError
        Not exactly two dims, an unknown dim, or a side shorter than 2.
    """
    (vals,), missing = _spectrum_inputs([_check_da(da, "da")], dims)
    k, p = _radial_spectrum(vals, missing)
    return _spectrum_da(k, p, "power_spectrum", "radially averaged power spectrum")


def power_spectrum_ratio(
    pred: xr.DataArray, truth: xr.DataArray, *, dims: Sequence[Hashable]
) -> xr.DataArray:
    """Power spectrum of the prediction over that of the truth, per wavenumber.

    Both spectra are computed as in :func:`power_spectrum` with the *same*
    missing points (the union of the NaN points of ``pred`` and ``truth``
    is set to 0 in both after de-meaning), so a difference in where the data
    are missing does not show up as a difference in power. A ratio below 1
    at high wavenumbers means the fill is too smooth (lost small-scale
    variance); above 1, too noisy. Score the fields over their complete
    extent (the filled field against the full truth), not the mask only.

    Parameters
    ----------
    pred, truth
        Fields on the same grid.
    dims
        The two spatial dims.

    Returns
    -------
    xarray.DataArray
        Ratio on dim ``wavenumber`` (cycles per grid point).

    Raises
    ------
    InputError
        As for :func:`power_spectrum`; mismatched coordinates.
    """
    pred, truth = _align(_check_da(pred, "pred"), _check_da(truth, "truth"))
    (p_vals, t_vals), missing = _spectrum_inputs([pred, truth], dims)
    k, p_pow = _radial_spectrum(p_vals, missing)
    _, t_pow = _radial_spectrum(t_vals, missing)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = p_pow / t_pow
    return _spectrum_da(k, ratio, "power_spectrum_ratio", "power spectrum of pred / truth")


def spectrum_ratio_score(ratio: xr.DataArray, *, low: float = 0.5) -> float:
    """Scalar summary of a spectrum ratio: mean ``|ln ratio|`` over the high wavenumbers.

    Parameters
    ----------
    ratio
        Output of :func:`power_spectrum_ratio`.
    low
        Fraction of the highest wavenumber from which bins count (default
        0.5: the upper half of the wavenumbers).

    Returns
    -------
    float
        0 for a perfect spectrum; ``ln 2 ≈ 0.69`` when the fill has half (or
        twice) the power of the truth at small scales.

    Raises
    ------
    InputError
        ``ratio`` has no ``wavenumber`` dim or ``low`` is outside ``[0, 1)``.
    """
    ratio = _check_da(ratio, "ratio")
    if "wavenumber" not in ratio.dims:
        raise InputError("ratio must have a 'wavenumber' dim (from power_spectrum_ratio)")
    if not 0.0 <= low < 1.0:
        raise InputError(f"low must be in [0, 1), got {low}")
    k = ratio["wavenumber"]
    upper = ratio.where(k >= low * float(k.max()), drop=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(np.abs(np.log(np.asarray(upper.values, dtype=np.float64)))))
