"""Multivariate scores of an ensemble, per gap region: energy score and variogram score.

CRPS and spread/skill judge each point alone: an ensemble of independent
noise around a good mean can score well on them while no member looks like
a real field. The energy score (Gneiting & Raftery 2007) and the variogram
score (Scheuerer & Hamill 2015) judge the members as joint draws: they
reward members whose points vary *together* as the truth's do.

A **gap region** is a connected set of scored (held-out) points in one slice
over the spatial ``dims`` (face neighbours; one region per time step and
blob). Each region of at least ``min_points`` points is one multivariate
outcome: the truth at its points, and each member at its points. Regions
larger than ``max_points`` are scored on a random subset of that many points
(the same subset for every ensemble scored with the same ``seed``: it depends
only on the mask), which bounds the cost (the variogram score needs all
pairs of points). Both scores come from `scoringrules` and are
normalised per region so that regions of different sizes count alike:

* energy score / ``sqrt(D)`` (``D`` points in the region): in the data's
  units, the MAE of a deterministic fill for a one-point region;
* variogram score (order ``p``, unit pair weights) / ``D (D - 1)``: the mean
  over ordered pairs of points.

The table value is the mean over regions; lower is better for both. The
scores are unweighted (no area weights).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import scipy.ndimage as ndi
import scoringrules as sr
import xarray as xr

from sparsediff.errors import InputError
from sparsediff.evaluation.metrics._inputs import _align, _check_da, _check_mask
from sparsediff.evaluation.metrics.ensemble import _check_members

__all__ = ["energy_score", "gap_regions", "multivariate_scores", "variogram_score"]


def gap_regions(
    mask: xr.DataArray,
    *,
    dims: Sequence[Hashable],
    min_points: int = 2,
    max_points: int = 256,
    seed: int = 0,
) -> list[np.ndarray]:
    """The gap regions of a mask, as flat indices into ``mask.values``.

    Parameters
    ----------
    mask
        Boolean, ``True`` = scored point.
    dims
        The spatial dims a region is connected over (2 or 3).
    min_points
        Smallest region kept.
    max_points
        Largest region scored whole; a larger one is a random subset of this
        many of its points (sorted), drawn with ``seed``.
    seed
        Seed of the subsets.

    Returns
    -------
    list of numpy.ndarray
        One array of flat indices per region, in label order.

    Raises
    ------
    InputError
        A non-boolean mask, an unknown dim, or ``min_points``/``max_points`` < 1.
    """
    mask = _check_da(mask, "mask")
    if mask.dtype != np.bool_:
        raise InputError(f"mask must be boolean (True = point to score), got {mask.dtype}")
    missing = [d for d in dims if d not in mask.dims]
    if missing:
        raise InputError(f"dims {missing} are not in the mask (dims: {list(mask.dims)})")
    if int(min_points) < 1 or int(max_points) < max(2, int(min_points)):
        raise InputError(
            f"need 1 <= min_points <= max_points and max_points >= 2, got {min_points}, "
            f"{max_points}"
        )
    spatial = [mask.dims.index(d) for d in dims]
    structure = np.zeros((3,) * mask.ndim, dtype=bool)
    centre = (1,) * mask.ndim
    structure[centre] = True
    for ax in spatial:
        for step in (0, 2):
            neighbour = list(centre)
            neighbour[ax] = step
            structure[tuple(neighbour)] = True
    labels, n = ndi.label(np.asarray(mask.values), structure=structure)
    flat = labels.reshape(-1)
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(1, n + 2))
    rng = np.random.default_rng(seed)
    regions: list[np.ndarray] = []
    for k in range(n):
        idx = order[bounds[k] : bounds[k + 1]]
        if idx.size < min_points:
            continue
        if idx.size > max_points:
            idx = np.sort(rng.choice(idx, size=max_points, replace=False))
        regions.append(idx)
    return regions


def _outcomes(
    ensemble: xr.DataArray, truth: xr.DataArray, mask: xr.DataArray | None, member_dim: Hashable
) -> tuple[np.ndarray, np.ndarray, xr.DataArray]:
    """Members ``(K, N)`` and truth ``(N,)`` flattened in the mask's dim order, and the mask."""
    ensemble = _check_members(ensemble, member_dim, 1)
    truth = _check_da(truth, "truth")
    mask = _check_mask(mask, truth)
    ensemble, truth, mask = _align(ensemble, truth, mask)
    truth, mask = xr.broadcast(truth, mask)
    order = list(mask.dims)
    ens = ensemble.broadcast_like(mask).transpose(member_dim, *order)
    k = ensemble.sizes[member_dim]
    members = np.asarray(ens.values, dtype=np.float64).reshape(k, -1)
    values = np.asarray(truth.transpose(*order).values, dtype=np.float64).reshape(-1)
    return members, values, mask.transpose(*order)


def multivariate_scores(
    ensemble: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    dims: Sequence[Hashable],
    member_dim: Hashable = "member",
    p: float = 0.5,
    min_points: int = 2,
    max_points: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Energy and variogram scores of an ensemble, averaged over the gap regions.

    Parameters
    ----------
    ensemble
        Members on a ``member_dim`` (one member: a deterministic fill).
    truth, mask
        As for [`crps`][sparsediff.evaluation.metrics.crps].
    dims
        The spatial dims regions are connected over.
    member_dim
        Name of the member dim.
    p
        Order of the variogram score (0.5 as Scheuerer & Hamill recommend).
    min_points, max_points, seed
        As for [`gap_regions`][gap_regions].

    Returns
    -------
    dict
        ``energy_score`` and ``variogram_score`` (means over regions, see the
        module docstring; NaN without a region, or when a scored point is NaN)
        and ``n_regions``.

    Raises
    ------
    InputError
        As for [`gap_regions`][gap_regions] and [`crps`][sparsediff.evaluation.metrics.crps].
    """
    members, values, mask = _outcomes(ensemble, truth, mask, member_dim)
    regions = gap_regions(mask, dims=dims, min_points=min_points, max_points=max_points, seed=seed)
    es: list[float] = []
    vs: list[float] = []
    for idx in regions:
        obs = values[idx]
        fct = members[:, idx]
        if not (np.isfinite(obs).all() and np.isfinite(fct).all()):
            return {"energy_score": np.nan, "variogram_score": np.nan, "n_regions": len(regions)}
        d = idx.size
        es.append(float(sr.es_ensemble(obs, fct, backend="numpy")) / np.sqrt(d))
        vs.append(float(sr.vs_ensemble(obs, fct, p=p, backend="numpy")) / (d * (d - 1)))
    return {
        "energy_score": float(np.mean(es)) if es else np.nan,
        "variogram_score": float(np.mean(vs)) if vs else np.nan,
        "n_regions": len(regions),
    }


def energy_score(
    ensemble: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    dims: Sequence[Hashable],
    member_dim: Hashable = "member",
    max_points: int = 256,
    seed: int = 0,
) -> float:
    """Energy score per gap region / ``sqrt(D)``, averaged over regions.

    See [`multivariate_scores`][multivariate_scores].

    Parameters
    ----------
    ensemble, truth, mask, dims, member_dim, max_points, seed
        As for [`multivariate_scores`][multivariate_scores].

    Returns
    -------
    float
    """
    return multivariate_scores(
        ensemble, truth, mask, dims=dims, member_dim=member_dim, max_points=max_points, seed=seed
    )["energy_score"]


def variogram_score(
    ensemble: xr.DataArray,
    truth: xr.DataArray,
    mask: xr.DataArray | None,
    *,
    dims: Sequence[Hashable],
    member_dim: Hashable = "member",
    p: float = 0.5,
    max_points: int = 256,
    seed: int = 0,
) -> float:
    """Variogram score per gap region / ``D (D - 1)``, averaged over regions.

    See [`multivariate_scores`][multivariate_scores].

    Parameters
    ----------
    ensemble, truth, mask, dims, member_dim, p, max_points, seed
        As for [`multivariate_scores`][multivariate_scores].

    Returns
    -------
    float
    """
    return multivariate_scores(
        ensemble,
        truth,
        mask,
        dims=dims,
        member_dim=member_dim,
        p=p,
        max_points=max_points,
        seed=seed,
    )["variogram_score"]
