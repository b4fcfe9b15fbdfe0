"""Climatology plus a harmonic (Laplace) interpolation of the anomaly, and its sparse solver."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from sparsediff.errors import ConfigError, InputError
from sparsediff.evaluation.baselines.base import Baseline, _time_mean

if TYPE_CHECKING:
    from sparsediff.evaluation.baselines.setting import Setting

__all__ = ["Laplace"]


def _laplace_matrix(
    known: np.ndarray, active: np.ndarray, values: np.ndarray, periodic: Sequence[bool]
) -> tuple[sp.csr_array, np.ndarray, np.ndarray, np.ndarray]:
    """Discrete Laplace system for the unknown points of one slice.

    Unknowns are ``active & ~known``. Each unknown row reads
    ``n_i u_i - sum_{unknown j ~ i} u_j = sum_{known j ~ i} v_j`` over its
    active neighbours ``j`` (2 per axis; periodic axes wrap), i.e. known
    points are Dirichlet values and inactive points / domain edges are
    zero-flux (Neumann) boundaries.

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


def _harmonic_fill(
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

    Unknown regions not connected to any known point stay NaN.
    """
    out = np.where(known, values, np.nan)
    if not known.any():
        return out
    a, rhs, flat, touches = _laplace_matrix(known, active, values, periodic)
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


class Laplace(Baseline):
    """Climatology plus a harmonic interpolation of the anomaly.

    ``fill = first_guess + L(obs - first_guess)`` where ``L`` solves the
    Laplace equation on the gap points of each slice with the observed
    anomalies as Dirichlet values and zero-flux (Neumann) conditions at the
    domain edges and at invalid points; a global longitude axis is periodic.
    The first guess is the per-point mean over the observed times
    (``"time_mean"``; points never observed get a harmonic fill of the
    time-mean field itself), the mean of the observed points of the slice
    (``"mean"``), or 0 (``"none"``: pure harmonic interpolation of the data).

    Each slice is one sparse linear solve: a direct solve (SuperLU) up to
    ``direct_max`` unknowns, beyond that conjugate gradients with a Jacobi
    preconditioner to relative residual ``tol`` in at most ``iters``
    iterations. Gap regions with no path to an observed point (walled in by
    invalid points) keep the first guess (NaN if it is NaN).

    Parameters
    ----------
    time_dim
        The dim of the time mean.
    first_guess
        ``"time_mean"``, ``"mean"`` or ``"none"``.
    iters, tol
        Conjugate-gradient limits for large slices.
    direct_max
        Largest number of unknowns solved directly.
    wrap_longitude
        Make a global longitude dim periodic (see `LinearInterp`).
    """

    name: ClassVar[str] = "laplace"

    def __init__(
        self,
        time_dim: Hashable = "time",
        first_guess: Literal["time_mean", "mean", "none"] = "time_mean",
        iters: int = 5000,
        tol: float = 1e-8,
        direct_max: int = 60_000,
        wrap_longitude: bool = True,
    ) -> None:
        if first_guess not in ("time_mean", "mean", "none"):
            raise ConfigError(
                f"first_guess must be 'time_mean', 'mean' or 'none', got {first_guess!r}"
            )
        if int(iters) < 1 or not tol > 0:
            raise ConfigError(f"iters must be >= 1 and tol > 0, got iters={iters}, tol={tol}")
        self.time_dim = time_dim
        self.first_guess = first_guess
        self.iters = int(iters)
        self.tol = float(tol)
        self.direct_max = int(direct_max)
        self.wrap_longitude = bool(wrap_longitude)

    @property
    def needs_time(self) -> bool:
        """Only the time-mean first guess needs the time dim."""
        return self.first_guess == "time_mean"

    @classmethod
    def for_evaluation(cls, setting: Setting, notes: list[str]) -> Laplace:
        """The time-mean first guess with a time dim; else the slice mean, with a note.

        Parameters
        ----------
        setting, notes
            As for `Baseline.for_evaluation`.

        Returns
        -------
        Laplace
        """
        if setting.has_time:
            return cls(time_dim=setting.time_dim)
        notes.append("baseline 'laplace' uses the slice mean as first guess (no time dim)")
        return cls(time_dim=None, first_guess="mean")

    def _solve(self, values: np.ndarray, known: np.ndarray, active: np.ndarray, wrap: Any) -> Any:
        return _harmonic_fill(
            values,
            known,
            active,
            wrap,
            tol=self.tol,
            iters=self.iters,
            direct_max=self.direct_max,
        )

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        wrap = periodic if self.wrap_longitude else (False,) * len(periodic)
        if self.first_guess == "time_mean":
            mean, seen = _time_mean(values, observed)
            fg = self._solve(mean, seen, np.asarray(active.any(axis=0)), wrap)
            guess = np.broadcast_to(fg, values.shape)
        elif self.first_guess == "mean":
            guess = np.empty_like(values)
            for t in range(values.shape[0]):
                guess[t] = values[t][observed[t]].mean() if observed[t].any() else np.nan
        else:
            guess = np.zeros_like(values)
        out = np.empty_like(values)
        for t in range(values.shape[0]):
            anomaly = np.where(observed[t], values[t] - guess[t], np.nan)
            a = self._solve(anomaly, observed[t], active[t], wrap)
            a = np.where(active[t] & ~observed[t] & np.isnan(a), 0.0, a)
            out[t] = guess[t] + a
        return out
