"""Scores of a gap fill against held-out truth (xarray in, xarray out).

Every metric takes the prediction (or an ensemble with a ``member`` dim), the
truth and a boolean ``mask`` whose ``True`` points are the points to score —
in an evaluation, the observed points that were hidden before the fill (the
held-out points). Points outside the mask are ignored whatever they hold (NaN
included); a NaN *inside* the mask makes the score NaN, so a fill that leaves
holes cannot look good.

Conventions
-----------
* ``dims``: the dims to reduce over (default: all of them); the others stay.
* Area weighting: when the data have a latitude coordinate (a coord named
  ``lat``/``latitude``, or with ``units = "degrees_north"`` or
  ``standard_name = "latitude"``), the means are weighted by ``cos(latitude)``
  ([`area_weights`][area_weights]); ``area_weighted=False`` turns it off. Curvilinear
  (2-D) latitude coordinates work the same way.
* CRPS comes from `scoringrules` (`scoringrules.crps_ensemble`).
* PSNR and SSIM are image metrics for 2-D/3-D volumes, unweighted, restricted
  to the mask (the BraTS inpainting convention: only the filled region counts).

The inputs may be dask-backed; [`rmse`][rmse], [`mae`][mae], [`bias`][bias],
[`crps`][crps] and [`spread_skill_ratio`][spread_skill_ratio] stay lazy, the others compute.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
import scoringrules as sr
import xarray as xr

from sparsediff.errors import InputError

__all__ = [
    "area_weights",
    "bias",
    "crps",
    "mae",
    "power_spectrum",
    "power_spectrum_ratio",
    "psnr",
    "rank_histogram",
    "rmse",
    "score_table",
    "spectrum_ratio_score",
    "spread_skill_ratio",
    "ssim",
]

Dims = Hashable | Sequence[Hashable] | None

_LAT_NAMES = frozenset({"lat", "latitude"})
_LAT_UNITS = frozenset({"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen"})
_CRPS_ESTIMATORS = {"standard": "qd", "fair": "pwm"}
_CRPS_CHUNK = 1 << 18  # points per scoringrules call (bounds the temporary memory)


# --------------------------------------------------------------------------- helpers


def _check_da(obj: object, what: str) -> xr.DataArray:
    if not isinstance(obj, xr.DataArray):
        raise InputError(f"{what} must be an xarray DataArray, got {type(obj).__name__}")
    return obj


def _check_mask(mask: object, truth: xr.DataArray) -> xr.DataArray:
    if mask is None:
        return np.isfinite(truth)
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


def _is_latitude(name: Hashable, coord: xr.DataArray) -> bool:
    if str(name).lower() in _LAT_NAMES:
        return True
    units = str(coord.attrs.get("units", "")).strip().lower()
    return units in _LAT_UNITS or coord.attrs.get("standard_name") == "latitude"


def area_weights(da: xr.DataArray) -> xr.DataArray | None:
    """Grid-cell area weights ``cos(latitude)`` of a lat/lon field.

    Parameters
    ----------
    da
        Any DataArray. Its latitude coordinate is the first coordinate named
        ``lat`` or ``latitude`` (any case), or carrying ``units =
        "degrees_north"`` or ``standard_name = "latitude"``; it may be 1-D
        (a dim coordinate) or 2-D (a curvilinear grid).

    Returns
    -------
    xarray.DataArray or None
        ``cos(latitude)`` clipped at 0, on the dims of the latitude coordinate
        (it broadcasts against ``da``); ``None`` when ``da`` has no latitude
        coordinate (then every point weighs the same).

    Raises
    ------
    InputError
        The latitude coordinate is not numeric.
    """
    for name, coord in da.coords.items():
        if _is_latitude(name, coord):
            if not np.issubdtype(coord.dtype, np.number):
                raise InputError(f"latitude coordinate {name!r} is not numeric ({coord.dtype})")
            w = np.cos(np.deg2rad(coord.astype(np.float64))).clip(min=0.0)
            w = w.reset_coords(drop=True)
            w.name = "area_weight"
            w.attrs = {"long_name": "area weight cos(latitude)"}
            return w
    return None


def _weights(truth: xr.DataArray, area_weighted: bool) -> xr.DataArray | None:
    return area_weights(truth) if area_weighted else None


def _masked_mean(
    values: xr.DataArray,
    mask: xr.DataArray,
    dims: list[Hashable],
    weights: xr.DataArray | None,
) -> xr.DataArray:
    """Weighted mean of ``values`` over ``dims`` at the ``True`` points of ``mask``."""
    w = mask.astype(np.float64)
    if weights is not None:
        w = w * weights
    values, w = xr.broadcast(values, w)
    v = values.where(mask, 0.0)
    num = (v * w).sum(dims, skipna=False)
    den = w.sum(dims)
    return num / den.where(den > 0)


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


# --------------------------------------------------------------------------- pointwise errors


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
    return _named(np.sqrt(mse), "rmse")


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


# --------------------------------------------------------------------------- ensembles


def _check_members(ensemble: object, member_dim: Hashable, minimum: int) -> xr.DataArray:
    ensemble = _check_da(ensemble, "ensemble")
    if member_dim not in ensemble.dims:
        raise InputError(
            f"ensemble has no member dim {member_dim!r} (dims: "
            f"{', '.join(map(str, ensemble.dims))})"
        )
    k = ensemble.sizes[member_dim]
    if k < minimum:
        raise InputError(f"this score needs at least {minimum} members, the ensemble has {k}")
    return ensemble


def _crps_points(obs: np.ndarray, fct: np.ndarray, estimator: str) -> np.ndarray:
    """Pointwise CRPS from scoringrules, in chunks; ``fct`` has the members last."""
    obs, fct = np.broadcast_arrays(obs[..., None], fct)
    obs = obs[..., 0].reshape(-1).astype(np.float64)
    flat_fct = fct.reshape(-1, fct.shape[-1]).astype(np.float64)
    out = np.full(obs.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(obs) & np.isfinite(flat_fct).all(axis=-1))
    for start in range(0, valid.size, _CRPS_CHUNK):
        idx = valid[start : start + _CRPS_CHUNK]
        out[idx] = sr.crps_ensemble(
            obs[idx], flat_fct[idx], m_axis=-1, estimator=estimator, backend="numpy"
        )
    return out.reshape(fct.shape[:-1])


def crps(
    ensemble: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    member_dim: Hashable = "member",
    dims: Dims = None,
    area_weighted: bool = True,
    estimator: Literal["standard", "fair"] = "standard",
) -> xr.DataArray:
    """Continuous ranked probability score of an ensemble, averaged over the masked points.

    The pointwise CRPS comes from `scoringrules.crps_ensemble`:

    * ``"standard"`` (default): the CRPS of the empirical distribution of the
      K members, ``mean_i |x_i - y| - 1/(2 K**2) sum_ij |x_i - x_j|``
      (scoringrules' ``"qd"`` estimator, equal to its energy form ``"nrg"``).
      With one member it is exactly ``|x - y|``, so the CRPS of a one-member
      ensemble is the MAE.
    * ``"fair"``: the fair (unbiased for the underlying distribution)
      estimator, ``... - 1/(2 K (K-1)) sum_ij |x_i - x_j|`` (scoringrules'
      ``"pwm"``, equal to ``"fair"``); needs at least 2 members.

    Parameters
    ----------
    ensemble
        Members along ``member_dim``; the other dims as ``truth``.
    truth, mask, dims, area_weighted
        As for [`rmse`][rmse].
    member_dim
        Name of the member dim.
    estimator
        ``"standard"`` or ``"fair"``.

    Returns
    -------
    xarray.DataArray
        Mean CRPS (same units as the data), a scalar by default.

    Raises
    ------
    InputError
        As for [`rmse`][rmse]; a missing member dim; ``"fair"`` with one member.
    """
    if estimator not in _CRPS_ESTIMATORS:
        raise InputError(f"unknown CRPS estimator {estimator!r}; expected 'standard' or 'fair'")
    ensemble = _check_members(ensemble, member_dim, 2 if estimator == "fair" else 1)
    ensemble, truth, mask, rdims = _prepare(ensemble, truth, mask, dims)
    if member_dim in rdims:
        rdims.remove(member_dim)
    pointwise = xr.apply_ufunc(
        _crps_points,
        truth,
        ensemble,
        input_core_dims=[[], [member_dim]],
        kwargs={"estimator": _CRPS_ESTIMATORS[estimator]},
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    out = _masked_mean(pointwise, mask, rdims, _weights(truth, area_weighted))
    return _named(out, "crps")


def spread_skill_ratio(
    ensemble: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    member_dim: Hashable = "member",
    dims: Dims = None,
    area_weighted: bool = True,
) -> xr.DataArray:
    """Ensemble spread over the error of the ensemble mean (1 = calibrated).

    ``spread = sqrt((K+1)/K * mean(s**2))`` with ``s**2`` the unbiased
    (``ddof=1``) variance of the K members at each point, and
    ``skill = RMSE(ensemble mean, truth)``, both over the masked points with
    the same weights. The factor ``(K+1)/K`` is the finite-ensemble
    correction (Fortin et al. 2014): when truth and members are independent
    draws of one distribution, ``E[(mean - y)**2] = (K+1)/K * E[s**2]``, so
    the ratio of a calibrated ensemble is 1 whatever K.

    Parameters
    ----------
    ensemble, truth, mask, member_dim, dims, area_weighted
        As for [`crps`][crps].

    Returns
    -------
    xarray.DataArray
        The ratio (< 1: under-dispersive, > 1: over-dispersive).

    Raises
    ------
    InputError
        As for [`crps`][crps]; fewer than 2 members.
    """
    ensemble = _check_members(ensemble, member_dim, 2)
    ensemble, truth, mask, rdims = _prepare(ensemble, truth, mask, dims)
    if member_dim in rdims:
        rdims.remove(member_dim)
    k = ensemble.sizes[member_dim]
    w = _weights(truth, area_weighted)
    var = ensemble.var(member_dim, ddof=1, skipna=False)
    spread = np.sqrt(_masked_mean(var, mask, rdims, w) * (k + 1) / k)
    mean = ensemble.mean(member_dim, skipna=False)
    skill = np.sqrt(_masked_mean((mean - truth) ** 2, mask, rdims, w))
    return _named(spread / skill, "spread_skill_ratio")


def _scored_points(
    ensemble: xr.DataArray, truth: xr.DataArray, mask: xr.DataArray, member_dim: Hashable
) -> tuple[np.ndarray, np.ndarray]:
    """Members ``(N, K)`` and truth ``(N,)`` at the masked points."""
    ens, tru, msk = xr.broadcast(ensemble, truth, mask, exclude=[member_dim])
    point_dims = [d for d in ens.dims if d != member_dim]
    ens = np.asarray(ens.transpose(*point_dims, member_dim).values)
    tru = np.asarray(tru.transpose(*point_dims).values)
    msk = np.asarray(msk.transpose(*point_dims).values)
    return ens[msk], tru[msk]


def rank_histogram(
    ensemble: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    member_dim: Hashable = "member",
    seed: int = 0,
) -> xr.DataArray:
    """Talagrand rank histogram: where the truth falls among the sorted members.

    For each masked point the rank is the number of members below the truth
    (0..K); ties (members equal to the truth) are broken uniformly at random
    with a generator seeded by ``seed``, so the result is reproducible. A
    calibrated ensemble gives a flat histogram; a U shape means too little
    spread, a dome too much.

    Parameters
    ----------
    ensemble, truth, mask, member_dim
        As for [`crps`][crps].
    seed
        Seed of the tie-breaking generator.

    Returns
    -------
    xarray.DataArray
        ``int64`` counts on dim ``rank`` (coords ``0..K``), summing to the
        number of masked points.

    Raises
    ------
    InputError
        As for [`crps`][crps]; a masked point whose truth or a member is NaN.
    """
    ensemble = _check_members(ensemble, member_dim, 1)
    ensemble, truth, mask, _ = _prepare(ensemble, truth, mask, None)
    k = ensemble.sizes[member_dim]
    ens, y = _scored_points(ensemble, truth, mask, member_dim)
    bad = ~np.isfinite(y) | ~np.isfinite(ens).all(axis=-1)
    if bad.any():
        raise InputError(
            f"{int(bad.sum())} scored points have a NaN truth or member; "
            "a rank histogram needs complete values at the masked points"
        )
    below = (ens < y[:, None]).sum(axis=-1)
    ties = (ens == y[:, None]).sum(axis=-1)
    rng = np.random.default_rng(seed)
    ranks = below + rng.integers(0, ties + 1)
    counts = np.bincount(ranks, minlength=k + 1).astype(np.int64)
    return xr.DataArray(
        counts,
        dims=("rank",),
        coords={"rank": np.arange(k + 1)},
        name="rank_histogram",
        attrs={"long_name": "number of points with the truth at this rank among the members"},
    )


# --------------------------------------------------------------------------- spectra


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
        Power on dim ``wavenumber`` (cycles per grid point), in the squared
        units of ``da`` (``units`` attribute ``"K^2"`` for a field in K): the
        ring mean of ``|FFT|**2 / N``, whose sum over all N frequencies is the
        sum of squares of the de-meaned field (Parseval).

    Raises
    ------
    InputError
        Not exactly two dims, an unknown dim, or a side shorter than 2.
    """
    (vals,), missing = _spectrum_inputs([_check_da(da, "da")], dims)
    k, p = _radial_spectrum(vals, missing)
    out = _spectrum_da(k, p, "power_spectrum", "radially averaged power spectrum")
    units = str(da.attrs.get("units", "")).strip()
    if units:
        simple = units.replace("_", "").isalnum()
        out.attrs["units"] = f"{units}^2" if simple else f"({units})^2"
    return out


def power_spectrum_ratio(
    pred: xr.DataArray, truth: xr.DataArray, *, dims: Sequence[Hashable]
) -> xr.DataArray:
    """Power spectrum of the prediction over that of the truth, per wavenumber.

    Both spectra are computed as in [`power_spectrum`][power_spectrum] with the *same*
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
        As for [`power_spectrum`][power_spectrum]; mismatched coordinates.
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
        Output of [`power_spectrum_ratio`][power_spectrum_ratio].
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


# --------------------------------------------------------------------------- image metrics


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
        As for [`rmse`][rmse]; a non-positive range or a constant truth.
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


# --------------------------------------------------------------------------- table


def score_table(
    preds: Mapping[str, xr.DataArray],
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    ensembles: Mapping[str, xr.DataArray] | None = None,
    member_dim: Hashable = "member",
    area_weighted: bool = True,
) -> pd.DataFrame:
    """One row of scores per method.

    Parameters
    ----------
    preds
        Method name -> deterministic prediction.
    truth, mask, area_weighted
        As for [`rmse`][rmse].
    ensembles
        Method name -> ensemble (with ``member_dim``). A method only in
        ``ensembles`` is scored deterministically on its ensemble mean.
    member_dim
        Name of the member dim of the ensembles.

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``rmse``, ``mae``, ``bias`` and, when ensembles
        are given, ``crps`` (standard estimator) and ``spread_skill`` (NaN
        for methods without an ensemble, and ``spread_skill`` also for
        one-member ensembles); one row per method, in the order of ``preds``
        then the ensemble-only methods.

    Raises
    ------
    InputError
        No method given, or as for the metrics.
    """
    ensembles = dict(ensembles or {})
    names = list(preds) + [n for n in ensembles if n not in preds]
    if not names:
        raise InputError("score_table needs at least one prediction or ensemble")
    rows = []
    for name in names:
        if name in preds:
            pred = preds[name]
        else:
            pred = _check_members(ensembles[name], member_dim, 1).mean(member_dim, skipna=False)
        kw = {"area_weighted": area_weighted}
        row: dict[str, object] = {
            "method": name,
            "rmse": float(rmse(pred, truth, mask, **kw)),
            "mae": float(mae(pred, truth, mask, **kw)),
            "bias": float(bias(pred, truth, mask, **kw)),
        }
        if ensembles:
            ens = ensembles.get(name)
            row["crps"] = (
                float(crps(ens, truth, mask, member_dim=member_dim, **kw))
                if ens is not None
                else np.nan
            )
            row["spread_skill"] = (
                float(spread_skill_ratio(ens, truth, mask, member_dim=member_dim, **kw))
                if ens is not None and ens.sizes.get(member_dim, 0) >= 2
                else np.nan
            )
        rows.append(row)
    return pd.DataFrame(rows)
