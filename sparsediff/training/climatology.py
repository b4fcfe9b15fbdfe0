"""The climatology a model is trained with, estimated from incomplete training data.

The per-point mean of the observed values
([`sparsediff.data.climatology.climatology_of`][sparsediff.data.climatology.climatology_of])
is unbiased when points are missing at random, but at a point seen in few of the
training steps it is noisy, and that noise does not cancel in the fill: where a gap
is also a gap in the neighbouring steps, the filled anomaly is smooth and the fill
is that smooth anomaly plus the noisy mean. On OSTIA trained with 50 % of its
points punched out (MCAR) this alone made the model's first guess 10 % worse on the
same held-out gaps (``pipelines/missing_rate.py``, ``latent_first_guess`` rows).

[`fit_climatology`][fit_climatology] therefore estimates the mean of *completed* fields: each
training step's gaps are filled with the Laplace relaxation of its anomalies from
the plain mean (the first guess of [`sparsediff.method.first_guess`][sparsediff.method.first_guess],
over the
whole field, every spatial dim, periodic longitudes), and the climatology is the
per-point mean over the steps of the observed values and those fills. A point seen
in few steps then borrows from its neighbours in the others, as DINEOF's completed
fields do. Training data without gaps (only observed and invalid points) get the
plain mean, bit for bit.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch
import xarray as xr

from sparsediff.data import masks
from sparsediff.data.climatology import climatology_of
from sparsediff.method.first_guess import harmonic_fill

__all__ = ["fit_climatology"]

#: Most grid points filled per batch (bounds the memory of one pass; at least one step).
POINTS_PER_BATCH = 4_000_000


def fit_climatology(
    ds: xr.Dataset,
    states: xr.Dataset,
    variables: Sequence[str],
    dim: str,
    dims: Sequence[Hashable],
    periodic: Sequence[bool],
) -> dict[str, xr.DataArray]:
    """Per-point mean over ``dim`` of the training fields with their gaps filled.

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

    Returns
    -------
    dict
        Per variable, a float64 DataArray over the non-``dim`` dims. Points
        invalid at every step keep the plain estimate of
        [`climatology_of`][sparsediff.data.climatology.climatology_of] (the variable's
        overall mean), so the climatology is finite everywhere.
    """
    plain = climatology_of(ds, states, list(variables), dim)
    out: dict[str, xr.DataArray] = {}
    for v in variables:
        st = states[v]
        if not bool((st == masks.GAP).any().compute()):
            out[v] = plain[v]
            continue
        out[v] = _completed_mean(ds[v], st, plain[v], dim, list(dims), list(periodic))
    return out


def _completed_mean(
    da: xr.DataArray,
    st: xr.DataArray,
    plain: xr.DataArray,
    dim: str,
    dims: list[Hashable],
    periodic: list[bool],
) -> xr.DataArray:
    others = [d for d in da.dims if d != dim and d not in dims]
    order = [dim, *others, *dims]
    da = da.transpose(*order)
    st = st.transpose(*order)
    clim = plain.transpose(*others, *dims)
    c = np.asarray(clim.values, dtype=np.float64)
    total = np.zeros(c.shape, dtype=np.float64)
    count = np.zeros(c.shape, dtype=np.int64)
    spatial = c.shape[len(others) :]
    n = da.sizes[dim]
    step = max(1, POINTS_PER_BATCH // max(1, int(np.prod(c.shape))))
    for start in range(0, n, step):
        sl = {dim: slice(start, min(start + step, n))}
        s = np.asarray(st.isel(sl).values)
        x = np.asarray(da.isel(sl).values, dtype=np.float64)
        observed = s == masks.OBSERVED
        active = s != masks.INVALID
        anomaly = np.where(observed, x - c, 0.0)
        flat = (-1, 1, *spatial)
        filled = harmonic_fill(
            torch.from_numpy(anomaly.astype(np.float32)).reshape(flat),
            torch.from_numpy(observed).reshape(flat),
            torch.from_numpy(active).reshape(flat),
            periodic=periodic,
        )
        filled_np = filled.reshape(anomaly.shape).double().numpy()
        # observed points keep their exact values; gaps get the mean plus the filled anomaly
        value = np.where(observed, x, c + filled_np)
        total += np.where(active, value, 0.0).sum(0)
        count += active.sum(0)
    mean = np.where(count > 0, total / np.maximum(count, 1), c)
    return clim.copy(data=mean).transpose(*plain.dims).rename(plain.name)
