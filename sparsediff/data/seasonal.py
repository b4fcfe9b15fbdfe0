"""The seasonal cycle of a climatology: annual harmonics per point, fitted and evaluated.

A per-point time mean leaves the whole seasonal cycle in the anomalies a model
fills. Where the neighbouring steps are observed, the space-time first guess
carries the season across; inside a gap that the neighbours share, or for a
step whose neighbours are not in the record, it does not. A climatology with
an annual cycle removes it before the fill: at each point the mean plus the
first ``HARMONICS`` annual harmonics (annual and semi-annual),

    c(t) = a0 + a1 cos(2 pi f) + b1 sin(2 pi f) + a2 cos(4 pi f) + b2 sin(4 pi f),

with ``f`` the fraction of the year at step ``t`` (in the record's own
calendar: 360-day and no-leap calendars included). Harmonics, not a mean per
calendar month: they need a few years of data, not a decade, and they apply
to daily or irregular steps as they do to monthly ones.

This module is the one owner of that cycle:

- [`seasonal_reason`][seasonal_reason], whether a record can fit one (``None``) or why not;
- [`fit_harmonics`][fit_harmonics], the least-squares fit per point of complete fields,
  and [`fit_observed`][fit_observed], of gappy ones;
- [`evaluate_cycle`][evaluate_cycle], the climatology at a record's own steps (lazy for dask).

A seasonal climatology is a DataArray with one more dim than the per-point
mean, ``<dim>_harmonic`` (``dim`` the record dim, e.g. ``time_harmonic``),
labelled by [`TERMS`][TERMS];
[`sparsediff.data.climatology`][sparsediff.data.climatology] applies it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from sparsediff.errors import CompatibilityError

__all__ = [
    "HARMONICS",
    "MIN_YEARS",
    "SUFFIX",
    "TERMS",
    "basis",
    "check_dates",
    "climatology_range",
    "evaluate_cycle",
    "fit_harmonics",
    "fit_observed",
    "harmonic_dim",
    "record_dim",
    "seasonal_reason",
    "year_fraction",
]

HARMONICS = 2
"""Annual harmonics fitted per point (1: annual, 2: plus semi-annual)."""

TERMS: tuple[str, ...] = (
    "mean",
    *(f"{f}{k}" for k in range(1, HARMONICS + 1) for f in ("cos", "sin")),
)
"""The terms of a seasonal climatology, in the order of its harmonic dim."""

SUFFIX = "_harmonic"
"""The harmonic dim of a seasonal climatology is the record dim plus this suffix."""

MIN_YEARS = 2.0
"""Fewest years the training steps must span for a seasonal fit (each harmonic is
then seen over two cycles at least)."""

RANGE_PHASES = 48
"""Phases over the year at which [`climatology_range`][climatology_range] evaluates a cycle."""

MIN_SPREAD = 0.1
"""Smallest eigenvalue of the steps' normalised Gram matrix of the harmonics (0.5 for
phases spread evenly over the year; 0 for one step a year)."""


def year_fraction(time: xr.DataArray) -> np.ndarray:
    """The fraction of its year (0 to 1) at each step of a time coordinate, in its calendar.

    Works for numpy datetimes and cftime dates (360-day, no-leap, ...):
    ``decimal_year`` minus the year, as xarray computes it.
    """
    t = time.dt
    return np.asarray(t.decimal_year.values, dtype=np.float64) - np.asarray(t.year.values)


def basis(time: xr.DataArray) -> np.ndarray:
    """``(steps, len(TERMS))`` values of the terms at each step."""
    return _terms(year_fraction(time))


def _terms(f: np.ndarray) -> np.ndarray:
    """``(len(f), len(TERMS))`` values of the terms at fractions ``f`` of the year."""
    cols = [np.ones_like(f)]
    for k in range(1, HARMONICS + 1):
        cols += [np.cos(2 * np.pi * k * f), np.sin(2 * np.pi * k * f)]
    return np.stack(cols, axis=1)


def _is_time(coord: xr.DataArray) -> bool:
    if coord.dtype.kind == "M":
        return True
    return coord.dtype == object and coord.size > 0 and hasattr(coord.values.flat[0], "calendar")


def seasonal_reason(ds: xr.Dataset | xr.DataArray, dim: str) -> str | None:
    """Why the steps of ``ds`` along ``dim`` cannot fit a seasonal cycle, or ``None`` if they can.

    They can when ``dim`` has a date coordinate, the steps span at least
    [`MIN_YEARS`][MIN_YEARS] years, and their phases are spread over the year
    (one step a year, as in an annual record, cannot separate a cycle from
    the mean).
    """
    if dim not in ds.coords or not _is_time(ds[dim]):
        return f"{dim!r} has no date coordinate"
    time = ds[dim]
    if bool(time.isnull().any()):
        return f"{dim!r} has missing dates (NaT)"
    years = np.asarray(time.dt.decimal_year.values, dtype=np.float64)
    span = float(years.max() - years.min()) if years.size else 0.0
    if span < MIN_YEARS:
        return f"the steps span {span:.2g} years (a seasonal cycle needs {MIN_YEARS:g})"
    b = basis(time)
    gram = b.T @ b / b.shape[0]
    spread = float(np.linalg.eigvalsh(gram).min())
    if spread < MIN_SPREAD:
        return "the steps do not cover the year (one phase of the year, or few)"
    return None


def harmonic_dim(dim: str) -> str:
    """The harmonic dim of a seasonal climatology along record dim ``dim``."""
    return f"{dim}{SUFFIX}"


def record_dim(clim: xr.DataArray) -> str | None:
    """The record dim of a seasonal climatology (``None`` for a per-point mean)."""
    for d in clim.dims:
        if str(d).endswith(SUFFIX):
            return str(d)[: -len(SUFFIX)]
    return None


def fit_harmonics(
    projected: np.ndarray, count: np.ndarray, time: xr.DataArray, fallback: np.ndarray
) -> np.ndarray:
    """Least-squares harmonics per point, from sums over the steps of complete fields.

    Parameters
    ----------
    projected
        ``(len(TERMS), *points)``: per term, the sum over the steps of the
        term's value times the field (0 where a point is not active).
    count
        ``(*points)`` active steps per point.
    time
        The steps' date coordinate.
    fallback
        ``(*points)`` per-point means: the mean term, with no cycle, at points
        not active at every step.

    Returns
    -------
    numpy.ndarray
        ``(len(TERMS), *points)`` float64 coefficients.
    """
    b = basis(time)
    full = (count == b.shape[0]).reshape(-1)
    coef = np.linalg.solve(b.T @ b, projected.reshape(len(TERMS), -1))
    out = np.zeros((len(TERMS), *fallback.shape), dtype=np.float64)
    out[0] = fallback
    flat = out.reshape(len(TERMS), -1)
    flat[:, full] = coef[:, full]
    return out


def fit_observed(values: np.ndarray, observed: np.ndarray, time: xr.DataArray) -> np.ndarray:
    """Least-squares harmonics per point of gappy fields, from each point's observed steps.

    For the classical baseline ``laplace_seasonal``
    ([`sparsediff.evaluation.baselines.laplace_seasonal`][sparsediff.evaluation.baselines.laplace_seasonal]),
    which, unlike training, does not complete the fields first.

    Parameters
    ----------
    values, observed
        ``(steps, *points)`` values and where they are observed.
    time
        The steps' date coordinate.

    Returns
    -------
    numpy.ndarray
        ``(len(TERMS), *points)`` float64 coefficients; NaN at points whose
        observed steps cannot separate the terms (fewer than twice as many
        as terms, or phases not spread over the year by the
        [`MIN_SPREAD`][MIN_SPREAD] test of [`seasonal_reason`][seasonal_reason];
        the span in years is the record's, checked there).
    """
    b = basis(time)
    k = len(TERMS)
    obs = observed.reshape(observed.shape[0], -1).astype(np.float64)
    y = np.where(observed, values, 0.0).reshape(obs.shape)
    gram = np.einsum("tp,ti,tj->pij", obs, b, b)
    rhs = np.einsum("tp,ti->pi", obs * y, b)
    count = obs.sum(axis=0)
    scaled = gram / np.maximum(count, 1.0)[:, None, None]
    ok = (count >= 2 * k) & (np.linalg.eigvalsh(scaled)[:, 0] >= MIN_SPREAD)
    coef = np.full((obs.shape[1], k), np.nan)
    if ok.any():
        coef[ok] = np.linalg.solve(gram[ok], rhs[ok][..., None])[..., 0]
    return coef.T.reshape(k, *observed.shape[1:])


def climatology_range(clim: xr.DataArray) -> tuple[float, float]:
    """The smallest and largest value of a climatology (a seasonal one over a year of phases).

    A per-point mean's own range; a seasonal cycle evaluated at ``RANGE_PHASES``
    phases spread over the year, so no step of any record is computed.
    """
    dim = record_dim(clim)
    if dim is None:
        return float(clim.min()), float(clim.max())
    f = (np.arange(RANGE_PHASES) + 0.5) / RANGE_PHASES
    coef = np.asarray(clim.sel({harmonic_dim(dim): list(TERMS)}).values, dtype=np.float64)
    cycle = np.tensordot(_terms(f), coef, axes=1)
    return float(np.nanmin(cycle)), float(np.nanmax(cycle))


def check_dates(clim: xr.DataArray, data: xr.DataArray | xr.Dataset) -> str:
    """The record dim of a seasonal climatology, after checking ``data`` has dates along it.

    A scalar date coordinate (one field of the record) counts.

    Raises
    ------
    CompatibilityError
        ``data`` without a date coordinate on that dim.
    """
    dim = record_dim(clim)
    assert dim is not None
    if dim not in data.coords or not _is_time(data[dim]) or data[dim].ndim > 1:
        raise CompatibilityError(
            f"the model's climatology has a seasonal cycle along {dim!r}; the data have no "
            f"date coordinate {dim!r} to evaluate it at"
        )
    if bool(data[dim].isnull().any()):
        raise CompatibilityError(
            f"the model's climatology has a seasonal cycle along {dim!r}; the data's "
            f"{dim!r} has missing dates (NaT)"
        )
    return dim


def evaluate_cycle(clim: xr.DataArray, data: xr.DataArray | xr.Dataset) -> xr.DataArray:
    """A seasonal climatology at the steps of ``data`` (lazy for dask).

    Parameters
    ----------
    clim
        A seasonal climatology (a ``<dim>_harmonic`` dim labelled by [`TERMS`][TERMS]),
        on the data's grid.
    data
        Data with a date coordinate along the record dim ``dim`` (a scalar
        date for one field of the record).

    Returns
    -------
    xarray.DataArray
        ``clim``'s other dims plus ``dim`` (with ``data``'s coordinate; none
        for a scalar date); dask-backed, chunked like ``data`` along ``dim``,
        when ``data`` is.

    Raises
    ------
    CompatibilityError
        ``data`` without dates along ``dim`` ([`check_dates`][check_dates]).
    """
    dim = check_dates(clim, data)
    harmonic = harmonic_dim(dim)
    dates = data[dim] if data[dim].ndim == 1 else data[dim].expand_dims(dim)
    values: Any = xr.DataArray(
        basis(dates), dims=[dim, harmonic], coords={dim: dates.values, harmonic: list(TERMS)}
    )
    chunks = data.chunksizes.get(dim) if hasattr(data, "chunksizes") else None
    if chunks:
        values = values.chunk({dim: chunks})
    cycle = xr.dot(values, clim.sel({harmonic: list(TERMS)}), dim=harmonic).rename(clim.name)
    return cycle if data[dim].ndim == 1 else cycle.isel({dim: 0}, drop=True)
