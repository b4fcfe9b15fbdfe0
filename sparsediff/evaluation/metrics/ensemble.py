"""Pointwise scores of an ensemble (a ``member`` dim): CRPS, spread/skill, rank histogram."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Literal, cast

import numpy as np
import scoringrules as sr
import xarray as xr

from sparsediff.errors import InputError
from sparsediff.evaluation.metrics._inputs import Dims, _check_da, _named, _prepare
from sparsediff.evaluation.metrics.weighting import _masked_mean, _weights

__all__ = ["crps", "rank_histogram", "spread_skill_ratio"]

_CRPS_ESTIMATORS = {"standard": "qd", "fair": "pwm"}
_CRPS_CHUNK = 1 << 18  # points per scoringrules call (bounds the temporary memory)


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
        As for `rmse`.
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
        As for `rmse`; a missing member dim; ``"fair"`` with one member.
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
    var = ensemble.var([member_dim], ddof=1, skipna=False)
    spread = np.sqrt(_masked_mean(var, mask, rdims, w) * (k + 1) / k)
    mean = ensemble.mean([member_dim], skipna=False)
    skill = np.sqrt(_masked_mean((mean - truth) ** 2, mask, rdims, w))
    # a DataArray: numpy's stubs do not see xarray's __array_ufunc__
    return _named(cast(xr.DataArray, spread / skill), "spread_skill_ratio")


def _scored_points(
    ensemble: xr.DataArray, truth: xr.DataArray, mask: xr.DataArray, member_dim: Hashable
) -> tuple[np.ndarray, np.ndarray]:
    """Members ``(N, K)`` and truth ``(N,)`` at the masked points."""
    ens, tru, msk = xr.broadcast(ensemble, truth, mask, exclude=[member_dim])
    point_dims = [d for d in ens.dims if d != member_dim]
    members = np.asarray(ens.transpose(*point_dims, member_dim).values)
    values = np.asarray(tru.transpose(*point_dims).values)
    scored = np.asarray(msk.transpose(*point_dims).values)
    return members[scored], values[scored]


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
