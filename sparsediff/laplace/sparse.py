"""The Laplace fill, exact: one sparse linear solve per slice (numpy + scipy, float64).

The torch-free backend of [`sparsediff.laplace`][sparsediff.laplace]: the
discrete Laplace equation on the unknown points of one slice, assembled as a
sparse matrix ([`laplace_system`][laplace_system]) and solved directly
(SuperLU) or by Jacobi-preconditioned conjugate gradients
([`harmonic_solve`][harmonic_solve]). The classical baselines use it
([`sparsediff.evaluation.baselines.laplace`][sparsediff.evaluation.baselines.laplace]).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from sparsediff.errors import InputError

__all__ = ["harmonic_solve", "laplace_system"]


def laplace_system(
    known: np.ndarray, active: np.ndarray, values: np.ndarray, periodic: Sequence[bool]
) -> tuple[sp.csr_array, np.ndarray, np.ndarray, np.ndarray]:
    """Discrete Laplace system for the unknown points of one slice.

    Unknowns are ``active & ~known``. Each unknown row reads
    ``n_i u_i - sum_{unknown j ~ i} u_j = sum_{known j ~ i} v_j`` over its
    active neighbours ``j`` (2 per axis; periodic axes wrap), i.e. known
    points are Dirichlet values and inactive points / domain edges are
    zero-flux (Neumann) boundaries.

    Parameters
    ----------
    known, active
        Boolean arrays of the slice's shape: the Dirichlet points, and the
        points of the domain.
    values
        The slice's values (read at known points only; NaN elsewhere is fine).
    periodic
        Per axis, whether it wraps around.

    Returns
    -------
    A, rhs, unknown flat indices, and ``touches`` (the unknown has a known neighbour).
    """
    shape = known.shape
    unknown = active & ~known
    flat = np.flatnonzero(unknown)
    n = flat.size
    idx = np.full(known.size, -1, dtype=np.int64)
    idx[flat] = np.arange(n)
    coords = np.unravel_index(flat, shape)
    diag = np.zeros(n)
    rhs = np.zeros(n)
    touches = np.zeros(n, dtype=bool)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    known_f, active_f, values_f = known.reshape(-1), active.reshape(-1), values.reshape(-1)
    me = np.arange(n)
    for ax, size in enumerate(shape):
        for step in (-1, 1):
            c = coords[ax] + step
            if periodic[ax]:
                c = c % size
                inside = np.ones(n, dtype=bool)
            else:
                inside = (c >= 0) & (c < size)
                c = np.clip(c, 0, size - 1)
            nb = np.ravel_multi_index((*coords[:ax], c, *coords[ax + 1 :]), shape)
            ok = inside & active_f[nb]
            diag += ok
            is_known = ok & known_f[nb]
            rhs += np.where(is_known, np.nan_to_num(values_f[nb]), 0.0)
            touches |= is_known
            is_unknown = ok & ~known_f[nb]
            rows.append(me[is_unknown])
            cols.append(idx[nb[is_unknown]])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    a = sp.csr_array((-np.ones(r.size), (r, c)), shape=(n, n)) + sp.diags_array(diag)
    return sp.csr_array(a), rhs, flat, touches


def harmonic_solve(
    values: np.ndarray,
    known: np.ndarray,
    active: np.ndarray,
    periodic: Sequence[bool],
    *,
    tol: float,
    iters: int,
    direct_max: int,
) -> np.ndarray:
    """Fill ``active & ~known`` points of one slice with the harmonic interpolant of ``known``.

    Parameters
    ----------
    values, known, active, periodic
        As for [`laplace_system`][laplace_system].
    tol, iters
        Relative residual and iteration limit of the conjugate gradients.
    direct_max
        Largest number of unknowns solved directly (SuperLU); beyond it,
        Jacobi-preconditioned conjugate gradients.

    Returns
    -------
    numpy.ndarray
        ``values`` at known points, the harmonic interpolant at the unknown
        points connected to a known point, NaN elsewhere (unknown regions
        not connected to any known point, inactive points).

    Raises
    ------
    InputError
        The conjugate-gradient solver broke down.
    """
    out = np.where(known, values, np.nan)
    if not known.any():
        return out
    a, rhs, flat, touches = laplace_system(known, active, values, periodic)
    n = flat.size
    if n == 0:
        return out
    ncomp, labels = csgraph.connected_components(a, directed=False)
    reached = np.bincount(labels, weights=touches, minlength=ncomp) > 0
    sel = reached[labels]
    if not sel.any():
        return out
    a_sel = a[sel][:, sel] if not sel.all() else a
    b = rhs[sel]
    if b.size <= direct_max:
        u = spla.spsolve(a_sel.tocsc(), b)
    else:
        # symmetric positive definite (each component touches a Dirichlet point):
        # conjugate gradients with a Jacobi preconditioner
        precond = sp.diags_array(1.0 / a_sel.diagonal())
        u, info = spla.cg(a_sel, b, rtol=tol, maxiter=iters, M=precond)
        if info < 0:  # pragma: no cover - cg reports breakdown
            raise InputError("the Laplace solver broke down (singular system)")
    res = out.reshape(-1)
    res[flat[sel]] = u
    return res.reshape(values.shape)
