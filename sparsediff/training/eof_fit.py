"""The EOFs of a model's first-guess background, fitted on the training anomalies (``data.eofs``).

Each training step's normalized anomaly is completed by Laplace relaxation
(as the climatology's fields are) and, where the training data have gaps, by
DINEOF's sweeps; the leading ``data.eofs`` EOFs of those completed fields
and their prior ratios ``σ²/λ`` are what the model carries
([`sparsediff.method.eof_guess`][sparsediff.method.eof_guess]).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from sparsediff.data import eofs
from sparsediff.data.masks import OBSERVED
from sparsediff.data.stats import Stats, normalize_array
from sparsediff.errors import ConfigError
from sparsediff.laplace.relaxation import harmonic_fill_array
from sparsediff.method.eof_guess import GuessEofs

__all__ = ["MAX_STEPS", "MAX_VALUES", "fit_eofs"]

MAX_STEPS = 2048
"""At most this many training steps (evenly spaced) enter the EOFs."""

MAX_VALUES = 2**24
"""At most about this many values (steps × points) enter the EOFs: fewer steps, evenly
spaced, on a large grid (a float64 copy is 128 MiB; the fit holds a few). Only
those steps are read from the data."""


def _steps(da: xr.DataArray, states: xr.DataArray, dims: Sequence[str]) -> tuple[Any, Any]:
    """``(T, *spatial)`` arrays of the data and their states at the steps the EOFs use."""
    batch = [str(d) for d in da.dims if d not in dims]
    if not batch:
        da, states = da.expand_dims("_step"), states.expand_dims("_step")
    else:
        da, states = da.stack(_step=batch), states.stack(_step=batch)
    da, states = da.transpose("_step", *dims), states.transpose("_step", *dims)
    n = da.sizes["_step"]
    points = int(np.prod([da.sizes[d] for d in dims]))
    cap = max(2, min(MAX_STEPS, MAX_VALUES // max(points, 1)))
    if n > cap:
        pick = np.unique(np.linspace(0, n - 1, cap).round().astype(int))
        da, states = da.isel(_step=pick), states.isel(_step=pick)
    raw = np.asarray(da.values, dtype=np.float64)
    return raw, np.asarray(states.values) == OBSERVED


def _completed(
    da: xr.DataArray,
    states: xr.DataArray,
    dims: Sequence[str],
    stats: Stats,
    active: np.ndarray,
    periodic: Sequence[bool],
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(T, P)`` of normalized anomalies at the active points, completed by Laplace,
    and where they were not observed."""
    raw, seen = _steps(da, states, dims)
    seen &= active
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(seen, normalize_array(raw, stats[str(da.name)]), 0.0)
    full = np.broadcast_to(active, seen.shape)
    filled = harmonic_fill_array(norm, seen, full.copy(), periodic).reshape(raw.shape[0], -1)
    at = active.reshape(-1)
    return filled[:, at], ~seen.reshape(raw.shape[0], -1)[:, at]


def fit_eofs(
    train: xr.Dataset,
    states: xr.Dataset,
    variables: Sequence[str],
    dims: Sequence[str],
    stats: Stats,
    invalid: dict[str, xr.DataArray] | None,
    modes: int,
    periodic: Sequence[bool],
    held: tuple[xr.Dataset, xr.Dataset] | None = None,
) -> tuple[GuessEofs, dict[str, xr.DataArray], dict[str, list[float]]]:
    """The leading ``modes`` EOFs of each variable's training anomalies.

    Parameters
    ----------
    train, states
        The training part (anomalies from the climatology) and its point states.
    variables, dims
        The variables and the spatial dims.
    stats
        The normalization stats (the EOFs are in normalized units).
    invalid
        Per variable, the points invalid at every training step (0 in the EOFs).
    modes
        How many EOFs (capped at the steps and points there are).
    periodic
        Per spatial dim, whether it wraps around (for the Laplace completion).
    held
        Steps never trained on (the validation part and its states): the
        noise ``σ²`` is the larger of the variance the modes leave out of the
        training steps and the mean square they leave out of these steps'
        observed points. With few training steps the first is far too small
        (the modes fit the steps they came from), and the coefficients of a
        new step would follow its shown points too closely.

    Returns
    -------
    crops, fields, prior
        The EOFs for the training crops, the same as DataArrays ``("eof", *dims)``
        for the model, and ``σ²/λ`` per variable and mode (``ModelSpec.eof_prior``).

    Raises
    ------
    ConfigError
        Fewer than two training steps.
    """
    completed = {}
    for v in variables:
        active = np.ones([train[v].sizes[d] for d in dims], dtype=bool)
        if invalid is not None and v in invalid:
            active &= ~np.asarray(invalid[v].transpose(*dims).values, dtype=bool)
        completed[v] = (active, *_completed(train[v], states[v], dims, stats, active, periodic))
    steps = min(r.shape[0] for _, r, _ in completed.values())
    if steps < 2:
        raise ConfigError("data.eofs needs at least two training steps")
    # one count for every variable, so that each prior matches the modes kept
    k = min(int(modes), steps - 1, *(r.shape[1] for _, r, _ in completed.values()))
    grids, priors = [], {}
    for v, (active, rows, missing) in completed.items():
        rows = eofs.complete_low_rank(rows, missing, k, sweeps=20)
        basis = eofs.eof_basis(rows)
        grid = np.zeros((k, active.size), dtype=np.float32)
        grid[:, active.reshape(-1)] = basis.patterns[:, :k].T
        grids.append(grid.reshape(k, *active.shape))
        noise = basis.noise(k)
        if held is not None:  # what the modes leave out of steps they never saw
            rows_v, missing_v = _completed(held[0][v], held[1][v], dims, stats, active, periodic)
            e = basis.patterns[:, :k]
            left = (rows_v - (rows_v @ e) @ e.T)[~missing_v]
            noise = max(noise, float(np.mean(left**2))) if left.size else noise
        priors[v] = [noise / float(lam) for lam in basis.variance[:k]]
    coords = {d: train[d] for d in dims if d in train.coords}
    fields = {
        v: xr.DataArray(g, dims=("eof", *dims), coords=coords, name=v)
        for v, g in zip(variables, grids, strict=True)
    }
    crops = GuessEofs(
        np.stack(grids).astype(np.float32),
        np.asarray([priors[v] for v in variables], dtype=np.float32),
    )
    return crops, fields, priors
