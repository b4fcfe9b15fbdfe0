"""Power spectra of fills and of the truth, and their ratio per wavenumber."""

from __future__ import annotations

import itertools
import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from sparsediff.atomic import save_figure
from sparsediff.errors import InputError
from sparsediff.evaluation.metrics._inputs import _align, _check_da

__all__ = [
    "band_ratios",
    "gap_spectrum_ratio",
    "plot_gap_spectra",
    "power_spectrum",
    "power_spectrum_ratio",
    "spectrum_ratio_score",
]


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


def gap_spectrum_ratio(
    ensemble: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray,
    *,
    dims: Sequence[Hashable],
    member_dim: Hashable = "member",
) -> xr.DataArray:
    """Power of the members inside the gaps over the truth's there, per wavenumber.

    Both fields are restricted to the scored points (``mask``): each 2-D
    slice is de-meaned over its scored points and set to 0 elsewhere, then
    its radial spectrum is taken as in [`power_spectrum`][power_spectrum] (the same
    window for the members and the truth, so the window's own imprint
    cancels in the ratio). The members' spectra are averaged over members
    and slices, the truth's over slices. A ratio below 1 at high
    wavenumbers: the members are too smooth inside the gaps; above 1, too
    rough. Slices without a scored point add nothing.

    Parameters
    ----------
    ensemble
        Members on ``member_dim`` (one member: a deterministic fill).
    truth
        The truth on the same grid.
    mask
        Boolean, ``True`` = scored point (the held-out points).
    dims
        The two spatial dims.
    member_dim
        Name of the member dim.

    Returns
    -------
    xarray.DataArray
        Ratio on dim ``wavenumber`` (cycles per grid point).

    Raises
    ------
    InputError
        As for [`power_spectrum_ratio`][power_spectrum_ratio]; no member dim.
    """
    ensemble = _check_da(ensemble, "ensemble")
    if member_dim not in ensemble.dims:
        raise InputError(f"ensemble has no member dim {member_dim!r}")
    truth, mask = _align(_check_da(truth, "truth"), _check_da(mask, "mask"))
    (t_vals, m_vals), _ = _spectrum_inputs([truth, mask.astype(np.float64)], dims)
    order = [*(d for d in xr.broadcast(truth, mask)[0].dims if d not in dims), *dims]
    ens = ensemble.broadcast_like(truth).transpose(member_dim, *order)
    e_vals = np.asarray(ens.values, dtype=np.float64)
    outside = ~(m_vals > 0)
    k, t_pow = _radial_spectrum(t_vals, outside)
    _, e_pow = _radial_spectrum(e_vals, np.broadcast_to(outside, e_vals.shape))
    n_slices = outside.reshape(-1, *outside.shape[-2:]).shape[0]
    scored = (~outside).reshape(n_slices, -1).any(axis=1).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = e_pow / t_pow if scored else np.full_like(t_pow, np.nan)
    return _spectrum_da(k, ratio, "gap_spectrum_ratio", "power in the gaps: members / truth")


def band_ratios(ratio: xr.DataArray, *, bands: int = 3) -> list[float]:
    """Geometric mean of a spectrum ratio in equal-width wavenumber bands, low to high.

    Parameters
    ----------
    ratio
        Output of [`power_spectrum_ratio`][power_spectrum_ratio] or
        [`gap_spectrum_ratio`][gap_spectrum_ratio].
    bands
        Number of bands splitting ``(0, max wavenumber]``.

    Returns
    -------
    list of float
        One ratio per band (1 is perfect; NaN for a band with no finite bin).

    Raises
    ------
    InputError
        No ``wavenumber`` dim, or ``bands`` < 1.
    """
    ratio = _check_da(ratio, "ratio")
    if "wavenumber" not in ratio.dims or int(bands) < 1:
        raise InputError("ratio must have a 'wavenumber' dim and bands must be >= 1")
    k = np.asarray(ratio["wavenumber"].values, dtype=np.float64)
    r = np.asarray(ratio.values, dtype=np.float64)
    edges = np.linspace(0.0, float(k.max()), int(bands) + 1)
    out = []
    for lo, hi in itertools.pairwise(edges):
        sel = (k > lo) & (k <= hi) & np.isfinite(r) & (r > 0)
        out.append(float(np.exp(np.mean(np.log(r[sel])))) if sel.any() else float("nan"))
    return out


def plot_gap_spectra(
    ratios: Mapping[str, xr.DataArray],
    path: str | os.PathLike[str] | None = None,
    *,
    tolerance: float = 0.25,
    title: str = "power in the gaps: members / truth",
) -> Any:
    """Line plot of spectrum ratios per method against wavenumber (log ratio axis).

    Parameters
    ----------
    ratios
        Method name -> [`gap_spectrum_ratio`][gap_spectrum_ratio] (or any ratio on ``wavenumber``).
    path
        Save the figure there, atomically (format from its suffix).
    tolerance
        Draw the band ``1 ± tolerance`` (the target of a faithful spectrum).
    title
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.0))
    ax = fig.subplots()
    ax.axhspan(1.0 - tolerance, 1.0 + tolerance, color="0.9", label=f"1 ± {tolerance:g}")
    ax.axhline(1.0, color="0.5", lw=0.8)
    for name, ratio in ratios.items():
        ax.plot(ratio["wavenumber"].values, ratio.values, marker=".", label=str(name))
    ax.set_yscale("log")
    ax.set_xlabel("wavenumber (cycles per grid point)")
    ax.set_ylabel("power ratio")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
