"""The Laplace fill, batched in torch: a coarse-to-fine relaxation refined by conjugate gradients.

The torch backend of [`sparsediff.laplace`][sparsediff.laplace]:
[`harmonic_fill`][harmonic_fill] fills a batch ``(N, C, *spatial)`` (2 or 3
spatial dims) on the model's device, in the batch's dtype. A coarse-to-fine
cascade (full multigrid without V-cycles: each level starts from the upsampled
solution of the level below and is smoothed with Jacobi sweeps) gets close; a
Jacobi-preconditioned conjugate-gradient refinement in float64 converges it.
Known points are Dirichlet values; window edges and inactive (invalid) points
are zero-flux; a periodic dim (global longitude) wraps.

It is the ``"laplace"`` first guess of the method
([`sparsediff.method.first_guess`][sparsediff.method.first_guess]) and the
fill of the training climatology's completed fields
([`harmonic_fill_array`][harmonic_fill_array], passed to
[`sparsediff.data.climatology.fit_climatology`][sparsediff.data.climatology.fit_climatology]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sparsediff.errors import InputError

__all__ = ["check_grid", "harmonic_fill", "harmonic_fill_array", "periodic_flags"]


def check_grid(values: torch.Tensor, known: torch.Tensor, active: torch.Tensor | None) -> int:
    """The number of spatial dims of a batched ``(N, C, *spatial)`` fill input.

    Parameters
    ----------
    values, known, active
        As for [`harmonic_fill`][harmonic_fill].

    Returns
    -------
    int
        2 or 3.

    Raises
    ------
    InputError
        Another number of spatial dims, or the three of different shapes.
    """
    nd = values.ndim - 2
    if nd not in (2, 3):
        raise InputError(f"first guess needs (N, C, *spatial) with 2 or 3 spatial dims, got {nd}")
    if known.shape != values.shape or (active is not None and active.shape != values.shape):
        raise InputError(
            "first guess: values, known and active must share one shape, got "
            f"{tuple(values.shape)}, {tuple(known.shape)}, "
            f"{None if active is None else tuple(active.shape)}"
        )
    return nd


def periodic_flags(periodic: Sequence[bool] | None, nd: int) -> tuple[bool, ...]:
    """Per spatial dim, whether it wraps around (``None``: none does).

    Raises
    ------
    InputError
        Not one entry per spatial dim.
    """
    out = (False,) * nd if periodic is None else tuple(bool(p) for p in periodic)
    if len(out) != nd:
        raise InputError(f"periodic has {len(out)} entries for {nd} spatial dims")
    return out


def _neighbour_sum(u: torch.Tensor, w: torch.Tensor, periodic: tuple[bool, ...]) -> torch.Tensor:
    """Sum over the 2·nd grid neighbours of ``u * w`` (zero outside non-periodic edges)."""
    uw = u * w
    total = torch.zeros_like(uw)
    for ax, wrap in enumerate(periodic):
        dim = 2 + ax
        n = u.shape[dim]
        if n == 1:
            continue
        if wrap:
            total += torch.roll(uw, 1, dim)
            total += torch.roll(uw, -1, dim)
        else:
            total.narrow(dim, 1, n - 1).add_(uw.narrow(dim, 0, n - 1))
            total.narrow(dim, 0, n - 1).add_(uw.narrow(dim, 1, n - 1))
    return total


def _pool2(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Sum-pool by ``factors`` (1 or 2 per spatial dim; ceil: a last odd row pools alone)."""
    nd = x.ndim - 2
    pad: list[int] = []
    for s, f in zip(reversed(x.shape[2:]), reversed(factors), strict=True):
        pad += [0, s % f]
    x = F.pad(x, pad)
    pool = F.avg_pool2d if nd == 2 else F.avg_pool3d
    k = tuple(int(f) for f in factors)
    return pool(x, k) * math.prod(k)


def _upsample(x: torch.Tensor, shape: Sequence[int], factors: Sequence[int]) -> torch.Tensor:
    """Nearest-neighbour upsampling by ``factors``, cropped to ``shape``."""
    for ax, f in enumerate(factors):
        if f > 1:
            x = x.repeat_interleave(int(f), dim=2 + ax)
    index = tuple(slice(0, s) for s in shape)
    return x[(slice(None), slice(None), *index)]


def _jacobi(
    u: torch.Tensor,
    fixed: torch.Tensor,
    active: torch.Tensor,
    periodic: tuple[bool, ...],
    sweeps: int,
) -> torch.Tensor:
    w = active.to(u.dtype)
    count = _neighbour_sum(torch.ones_like(u), w, periodic)
    free = active & ~fixed & (count > 0)
    inv = 1.0 / count.clamp_min(1.0)
    for _ in range(sweeps):
        new = _neighbour_sum(u, w, periodic) * inv
        u = torch.where(free, new, u)
    return u


def _cascade(
    values: torch.Tensor,
    known: torch.Tensor,
    active: torch.Tensor,
    periodic: tuple[bool, ...],
    sweeps: int,
    coarsest: int,
) -> torch.Tensor:
    spatial = values.shape[2:]
    if max(spatial) <= coarsest:
        # the coarsest level: start from the mean of the known points (per sample, channel)
        k = known.to(values.dtype)
        dims = tuple(range(2, values.ndim))
        mean = (values * k).sum(dims, keepdim=True) / k.sum(dims, keepdim=True).clamp_min(1.0)
        u = torch.where(known, values, mean.expand_as(values))
        return _jacobi(u, known, active, periodic, 4 * sweeps)
    # coarsen only the dims that are still long (anisotropic grids keep converging)
    factors = [2 if s > coarsest else 1 for s in spatial]
    k = known.to(values.dtype)
    weight = _pool2(k, factors)
    coarse_known = weight > 0
    coarse_values = _pool2(values * k, factors) / weight.clamp_min(1.0)
    coarse_active = _pool2(active.to(values.dtype), factors) > 0
    coarse = _cascade(coarse_values, coarse_known, coarse_active, periodic, sweeps, coarsest)
    u = torch.where(known, values, _upsample(coarse, spatial, factors))
    return _jacobi(u, known, active, periodic, sweeps)


def harmonic_fill(
    values: torch.Tensor,
    known: torch.Tensor,
    active: torch.Tensor | None = None,
    *,
    periodic: Sequence[bool] | None = None,
    sweeps: int = 24,
    coarsest: int = 4,
    cg_iters: int = 200,
    tol: float = 1e-4,
) -> torch.Tensor:
    """Harmonic (Laplace) interpolation of the known points, batched.

    Parameters
    ----------
    values
        ``(N, C, *spatial)`` with 2 or 3 spatial dims; values at unknown points
        are ignored (NaN is fine).
    known
        Same shape, bool: the Dirichlet points (the shown values).
    active
        Same shape, bool: points that belong to the domain (default: all).
        Inactive points are zero-flux walls and come back as 0.
    periodic
        Per spatial dim, whether it wraps around (a global longitude).
    sweeps
        Jacobi sweeps per level of the coarse-to-fine cascade (4× at the
        coarsest level).
    coarsest
        Dims longer than this are halved level by level (each dim on its
        own, so elongated grids coarsen fully); the cascade stops when every
        dim is this short.
    cg_iters, tol
        Conjugate-gradient refinement of the cascade's result (at most
        ``cg_iters`` iterations, until the residual is below ``tol`` times
        the largest known value): the cascade alone is close for small gaps
        but not converged across large ones.

    Returns
    -------
    torch.Tensor
        ``values`` at known points (bit for bit), the harmonic estimate at
        the other active points, 0 at inactive points. A sample/channel with
        no known point comes back 0 at every active point.
    """
    nd = check_grid(values, known, active)
    wrap = periodic_flags(periodic, nd)
    known = known.bool()
    act = torch.ones_like(known) if active is None else active.bool()
    known = known & act
    clean = torch.where(known, values, torch.zeros_like(values))
    out = _cascade(clean, known, act, wrap, int(sweeps), int(coarsest))
    if cg_iters:
        out = _conjugate_gradients(out, known, act, wrap, int(cg_iters), float(tol))
    out = torch.where(known, values, out)
    return torch.where(act, out, torch.zeros_like(out))


def _conjugate_gradients(
    u: torch.Tensor,
    known: torch.Tensor,
    active: torch.Tensor,
    periodic: tuple[bool, ...],
    iters: int,
    tol: float,
) -> torch.Tensor:
    """Refine ``u`` on the free points with Jacobi-preconditioned conjugate gradients.

    The discrete Laplace equation at every free point (active, not known):
    ``count * u_i - sum(active neighbours u_j) = 0`` with the known points as
    Dirichlet values; one independent system per sample and channel, solved
    together in float64. A system stops (is frozen) once its residual is below
    ``tol`` times the scale of its known values: iterating a converged system
    further only amplifies rounding.
    """
    dtype = u.dtype
    u = u.double()
    w = active.double()
    count = _neighbour_sum(torch.ones_like(u), w, periodic)
    free = active & ~known & (count > 0)
    f = free.double()
    dims = tuple(range(2, u.ndim))

    def apply(x: torch.Tensor) -> torch.Tensor:  # the operator on free points (x = 0 elsewhere)
        return f * (count * x - _neighbour_sum(x, w, periodic))

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(dims, keepdim=True)

    # b - A u with the Dirichlet values in b: the residual of the full equation at free points
    r = f * (_neighbour_sum(u, w, periodic) - count * u)
    inv_diag = f / count.clamp_min(1.0)
    z = inv_diag * r
    p = z
    rz = dot(r, z)
    known_scale = torch.where(known, u, torch.zeros_like(u)).abs().amax(dims, keepdim=True)
    limit = tol * (known_scale + 1e-12)
    for _ in range(iters):
        running = r.abs().amax(dims, keepdim=True) > limit
        if not bool(running.any()):
            break
        ap = apply(p)
        pap = dot(p, ap)
        ok = running & (pap > 0)
        alpha = torch.where(ok, rz / torch.where(ok, pap, torch.ones_like(pap)), 0.0)
        u = u + alpha * p
        r = r - alpha * ap
        z = inv_diag * r
        rz_new = dot(r, z)
        good = ok & (rz > 0)
        beta = torch.where(good, rz_new / torch.where(good, rz, torch.ones_like(rz)), 0.0)
        p = torch.where(ok, z + beta * p, p)
        rz = torch.where(ok, rz_new, rz)
    return u.to(dtype)


def harmonic_fill_array(
    values: np.ndarray, known: np.ndarray, active: np.ndarray, periodic: Sequence[bool]
) -> np.ndarray:
    """[`harmonic_fill`][harmonic_fill] of numpy fields ``(..., *spatial)``, computed in float32.

    Parameters
    ----------
    values
        Float values whose last ``len(periodic)`` dims are the spatial ones;
        the leading dims are a batch of fields filled independently (read at
        known points only).
    known, active
        Boolean arrays of the same shape (C order).
    periodic
        Per spatial dim, whether it wraps around.

    Returns
    -------
    numpy.ndarray
        Float64 of the shape of ``values``: the float32 harmonic fill of each
        field (the known values rounded to float32 at known points, 0 at
        inactive points).
    """
    flat = (-1, 1, *values.shape[values.ndim - len(periodic) :])
    filled = harmonic_fill(
        torch.from_numpy(values.astype(np.float32)).reshape(flat),
        torch.from_numpy(known).reshape(flat),
        torch.from_numpy(active).reshape(flat),
        periodic=periodic,
    )
    return filled.reshape(values.shape).double().numpy()
