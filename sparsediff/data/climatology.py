"""Per-point climatology: the record's mean at each point, and anomalies from it.

Strong classical fills (Laplace relaxation around the time mean, DINEOF) lean
on the per-point mean of the record. A model that fills anomalies from that
mean starts where the time-mean fill stops, and only has to learn the
spatial structure of the departures (DESIGN §3, "context the classical
methods use, we use too").

This module is the one owner of the per-point climatology:

- [`observed_mean`][observed_mean], the mean over the observed values along
  an axis (numpy or dask arrays), which everything below and the classical
  baselines (`sparsediff.evaluation.baselines`)
  compute it with;
- [`climatology_of`][climatology_of], that mean per variable of a dataset;
- [`fit_climatology`][fit_climatology], the climatology a model is trained
  with: the mean of the training fields with their gaps filled (by a fill
  function the caller passes: training passes the torch Laplace relaxation,
  [`sparsediff.laplace.relaxation.harmonic_fill_array`][sparsediff.laplace.relaxation.harmonic_fill_array]),
  or with ``seasonal_cycle=True`` the mean plus an annual cycle fitted to the same
  fields ([`sparsediff.data.seasonal`][sparsediff.data.seasonal]);
- [`anomalies`][anomalies] and [`add_climatology`][add_climatology], to and
  from anomalies, matched to the data by coordinates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from sparsediff.data import masks, seasonal
from sparsediff.data.alignment import align_to

__all__ = [
    "FieldFill",
    "add_climatology",
    "aligned_climatology",
    "anomalies",
    "climatology_of",
    "fit_climatology",
    "observed_mean",
]

FieldFill = Callable[[np.ndarray, np.ndarray, np.ndarray, Sequence[bool]], np.ndarray]
"""A gap fill of numpy fields: ``fill(values, known, active, periodic) -> filled``.

``values``, ``known`` and ``active`` share one shape whose last
``len(periodic)`` dims are the spatial ones (the leading ones a batch of
fields); the result has that shape, the values at known points and a fill at
the other active points."""

#: Most grid points [`fit_climatology`][fit_climatology] fills per batch (bounds the memory
#: of one pass; at least one step).
POINTS_PER_BATCH = 4_000_000


def observed_mean(values: Any, observed: Any, axis: int | None = 0) -> tuple[Any, Any]:
    """The mean of ``values`` over its observed points along ``axis``, and where there is one.

    Parameters
    ----------
    values
        A float numpy (or dask) array; values at points not observed are
        ignored (NaN is fine).
    observed
        Boolean array of the same shape: the points to average.
    axis
        The axis to average over (``None``: all of them).

    Returns
    -------
    mean, seen
        ``mean``: the sum of the observed values divided by their count
        (NaN where there is none); ``seen``: the count is not 0.
    """
    count = observed.sum(axis=axis)
    total = np.where(observed, values, 0.0).sum(axis=axis)
    seen = count > 0
    mean = np.where(seen, total / np.maximum(count, 1), np.nan)
    return mean, seen


def climatology_of(
    ds: xr.Dataset, states: xr.Dataset, variables: list[str], dim: str
) -> dict[str, xr.DataArray]:
    """Per-point mean over ``dim`` of the observed values (float64, computed now).

    Points never observed get the variable's overall observed mean, so the
    climatology is finite wherever a fill may need it.

    Parameters
    ----------
    ds
        The data (NumPy- or dask-backed).
    states
        Point states of ``ds`` ([`sparsediff.data.masks`][sparsediff.data.masks]).
    variables
        Variables to compute it for.
    dim
        The record dim the mean is taken over.

    Returns
    -------
    dict
        Per variable, a float64 DataArray over the other dims of the variable.
    """
    out = {}
    for v in variables:
        obs = ds[v].where(states[v] == masks.OBSERVED).astype("float64")
        clim = obs.reduce(_finite_mean, dim).compute()
        overall = float(obs.reduce(_finite_mean).compute())
        out[v] = clim.fillna(overall).rename(v)
    return out


def _finite_mean(x: Any, axis: int | None = None) -> Any:
    """[`observed_mean`][observed_mean] of the non-NaN values of ``x``."""
    return observed_mean(x, ~np.isnan(x), axis)[0]


def fit_climatology(
    ds: xr.Dataset,
    states: xr.Dataset,
    variables: Sequence[str],
    dim: str,
    dims: Sequence[Hashable],
    periodic: Sequence[bool],
    *,
    fill: FieldFill,
    seasonal_cycle: bool = False,
) -> dict[str, xr.DataArray]:
    """Per-point mean over ``dim`` of the training fields with their gaps filled.

    The plain mean of the observed values ([`climatology_of`][climatology_of])
    is unbiased when points are missing at random, but at a point seen in few
    of the training steps it is noisy, and that noise does not cancel in the
    fill: where a gap is also a gap in the neighbouring steps, the filled
    anomaly is smooth and the fill is that smooth anomaly plus the noisy mean.
    On OSTIA trained with 50 % of its points punched out (MCAR) this alone made
    the model's first guess 10 % worse on the same held-out gaps
    (``pipelines/missing_rate.py``, ``latent_first_guess`` rows). So each
    step's gaps are filled with ``fill`` applied to its anomalies from the plain
    mean (over the whole field, every spatial dim), and the climatology is the
    per-point mean over the steps of the observed values and those fills: a
    point seen in few steps borrows from its neighbours in the others, as
    DINEOF's completed fields do. Training data without gaps (only observed and
    invalid points) get the plain mean, bit for bit.

    Parameters
    ----------
    ds
        Training data (values; those at non-observed points are ignored).
    states
        Point states of ``ds`` ([`sparsediff.data.masks`][sparsediff.data.masks]): observed, gap,
        invalid.
    variables
        Variables to compute it for.
    dim
        The record dim the mean is taken over (``data.climatology_dim``).
    dims
        The spatial dims (2 or 3) the gaps are filled over.
    periodic
        Per spatial dim, whether it wraps around (a global longitude).
    fill
        The gap fill of the anomalies ([`FieldFill`][FieldFill]); training
        uses the Laplace relaxation
        ([`sparsediff.laplace.relaxation.harmonic_fill_array`][sparsediff.laplace.relaxation.harmonic_fill_array]).
    seasonal_cycle
        Fit the mean plus annual harmonics per point to the same values instead
        of the mean ([`sparsediff.data.seasonal`][sparsediff.data.seasonal]; ``dim`` must hold
        dates that can fit one, see
        [`seasonal_reason`][sparsediff.data.seasonal.seasonal_reason]). Points
        not active at every step keep their mean, with no cycle.

    Returns
    -------
    dict
        Per variable, a float64 DataArray over the non-``dim`` dims (and
        ``<dim>_harmonic`` first when ``seasonal_cycle``). Points invalid at every
        step keep the plain estimate of [`climatology_of`][climatology_of]
        (the variable's overall mean), so the climatology is finite everywhere.
    """
    plain = climatology_of(ds, states, list(variables), dim)
    out: dict[str, xr.DataArray] = {}
    for v in variables:
        st = states[v]
        if not seasonal_cycle and not bool((st == masks.GAP).any().compute()):
            out[v] = plain[v]
            continue
        sums = _completed_sums(
            ds[v], st, plain[v], dim, list(dims), list(periodic), fill, seasonal_cycle
        )
        out[v] = _harmonics(sums, ds[dim]) if seasonal_cycle else sums.mean
    return out


@dataclasses.dataclass
class _Sums:
    """Sums over the steps of the completed fields: the mean, and harmonic projections."""

    mean: xr.DataArray  # the per-point mean, dims of the plain climatology
    count: np.ndarray  # active steps per point, in the order of ``projected``'s points
    projected: np.ndarray | None  # (terms, *points): each term's value x the field, summed
    template: xr.DataArray  # the plain climatology in the order of ``projected``'s points


def _harmonics(sums: _Sums, time: xr.DataArray) -> xr.DataArray:
    """The seasonal climatology from the summed projections."""
    assert sums.projected is not None
    t = sums.template
    mean = sums.mean.transpose(*t.dims)
    coef = seasonal.fit_harmonics(sums.projected, sums.count, time, mean.values)
    harmonic = seasonal.harmonic_dim(str(time.dims[0]))
    return xr.DataArray(
        coef,
        dims=[harmonic, *t.dims],
        coords={**dict(t.coords), harmonic: list(seasonal.TERMS)},
        name=sums.mean.name,
    )


def _completed_sums(
    da: xr.DataArray,
    st: xr.DataArray,
    plain: xr.DataArray,
    dim: str,
    dims: list[Hashable],
    periodic: list[bool],
    fill: FieldFill,
    seasonal_fit: bool,
) -> _Sums:
    others = [d for d in da.dims if d != dim and d not in dims]
    order = [dim, *others, *dims]
    da = da.transpose(*order)
    st = st.transpose(*order)
    clim = plain.transpose(*others, *dims)
    c = np.asarray(clim.values, dtype=np.float64)
    total = np.zeros(c.shape, dtype=np.float64)
    count = np.zeros(c.shape, dtype=np.int64)
    basis = seasonal.basis(da[dim]) if seasonal_fit else None
    projected = None if basis is None else np.zeros((basis.shape[1], *c.shape))
    n = da.sizes[dim]
    step = max(1, POINTS_PER_BATCH // max(1, int(np.prod(c.shape))))
    for start in range(0, n, step):
        sl = {dim: slice(start, min(start + step, n))}
        s = np.asarray(st.isel(sl).values)
        x = np.asarray(da.isel(sl).values, dtype=np.float64)
        observed = s == masks.OBSERVED
        active = s != masks.INVALID
        anomaly = np.where(observed, x - c, 0.0)
        filled_np = fill(anomaly, observed, active, periodic)
        # observed points keep their exact values; gaps get the mean plus the filled anomaly
        value = np.where(observed, x, c + filled_np)
        total += np.where(active, value, 0.0).sum(0)
        count += active.sum(0)
        if basis is not None and projected is not None:
            b = basis[start : start + value.shape[0]]
            projected += np.tensordot(b.T, np.where(active, value, 0.0), axes=1)
    mean = np.where(count > 0, total / np.maximum(count, 1), c)
    out = clim.copy(data=mean).transpose(*plain.dims).rename(plain.name)
    return _Sums(out, count, projected, clim)


def aligned_climatology(
    ds: xr.Dataset, climatology: dict[str, xr.DataArray], *, at_steps: bool = True
) -> dict[str, xr.DataArray]:
    """The climatology of each variable, matched to the points of ``ds`` by coordinates.

    Parameters
    ----------
    ds
        The data.
    climatology
        Per variable, the per-point mean on the training grid, or its seasonal
        cycle ([`sparsediff.data.seasonal`][sparsediff.data.seasonal]).
    at_steps
        Evaluate a seasonal cycle at the data's steps (``False``: its
        coefficients matched to the grid, after checking that the data have
        the dates to evaluate it at; a compatibility check).

    Returns
    -------
    dict
        Per variable, the climatology at the data's points, in the data's
        order (a rolled longitude, a flipped latitude, a subset of the grid);
        a seasonal one evaluated at the data's steps (over the record dim too).

    Raises
    ------
    CompatibilityError
        Data on another grid (see
        [`sparsediff.data.alignment.align_to`][sparsediff.data.alignment.align_to]).
    """
    out = {}
    for v, clim in climatology.items():
        what = f"the climatology of {v!r}"
        dim = seasonal.record_dim(clim)
        if dim is None:
            out[v] = align_to(clim, ds[v], what=what)
            continue
        # the coefficients matched to the data's grid first, then the cycle at its steps
        clim = align_to(clim, ds[v], what=what, carry=(seasonal.harmonic_dim(dim),))
        if not at_steps:
            seasonal.check_dates(clim, ds[v])
        out[v] = seasonal.evaluate_cycle(clim, ds[v]) if at_steps else clim
    return out


def anomalies(ds: xr.Dataset, climatology: dict[str, xr.DataArray]) -> xr.Dataset:
    """``ds`` minus the climatology, per variable (lazy; dtype kept).

    The climatology is matched to the data by coordinates
    ([`aligned_climatology`][aligned_climatology]), never by array position alone; data on
    another grid raise [`CompatibilityError`][sparsediff.errors.CompatibilityError].
    """
    ds = ds.copy()
    for v, clim in aligned_climatology(ds, climatology).items():
        ds[v] = (ds[v] - clim.variable.astype(ds[v].dtype)).assign_attrs(ds[v].attrs)
    return ds


def add_climatology(da: xr.DataArray, clim: xr.DataArray) -> xr.DataArray:
    """Anomalies back to values: ``da + clim`` in ``da``'s dtype, attrs kept.

    ``clim`` is matched to ``da`` by coordinates as in [`anomalies`][anomalies].
    """
    clim = align_to(clim, da, what=f"the climatology of {da.name or clim.name!r}")
    return (da + clim.variable.astype(da.dtype)).astype(da.dtype).assign_attrs(da.attrs)
