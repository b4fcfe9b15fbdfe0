"""EOFs of a record and their optimal interpolation from a step's observed points (numpy).

The record is a matrix ``rows`` ``(T, P)``: one anomaly field per step,
flattened over its ``P`` points. Its **EOFs** are the right singular vectors
(unit vectors over the points) and the variance of mode ``k`` is
``s_k² / T``. Given the values of one step at some of its points, the leading
``K`` EOFs' coefficients are interpolated optimally (the Gauss-Markov /
optimal-interpolation estimate with the EOF variances ``Λ`` as the prior and
the variance the ``K`` modes leave out, spread evenly over the points, as
noise ``σ²``)::

    a = (E_oᵀ E_o + σ² Λ⁻¹)⁻¹ E_oᵀ x_o,      background = E a

which shrinks towards zero where the shown points say little. Gappy records
are completed first by DINEOF's sweeps ([`complete_low_rank`][complete_low_rank]).

Used by the classical baselines ``laplace_eof``
([`sparsediff.evaluation.baselines.laplace_eof`][sparsediff.evaluation.baselines.laplace_eof])
and DINEOF (its sweeps are [`complete_low_rank`][complete_low_rank]), and by
``pipelines/eof_guess_probe.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EofBasis", "complete_low_rank", "eof_basis", "interpolate", "truncated"]


def truncated(x: np.ndarray, rank: int) -> np.ndarray:
    """Best rank-``rank`` approximation of ``x`` (truncated SVD).

    Computed from the eigenvectors of the small Gram matrix (``x x^T`` or
    ``x^T x``): the same projection as the SVD, much cheaper for a wide matrix.
    """
    if x.shape[0] <= x.shape[1]:
        _, vec = np.linalg.eigh(x @ x.T)
        u = vec[:, ::-1][:, :rank]
        return u @ (u.T @ x)
    _, vec = np.linalg.eigh(x.T @ x)
    v = vec[:, ::-1][:, :rank]
    return (x @ v) @ v.T


def complete_low_rank(
    rows: np.ndarray,
    missing: np.ndarray,
    rank: int,
    *,
    sweeps: int = 50,
    tol: float = 1e-4,
    scale: float | None = None,
) -> np.ndarray:
    """DINEOF's sweeps: ``missing`` entries of ``rows`` replaced by mean + rank-``rank`` SVD.

    Parameters
    ----------
    rows
        ``(T, P)`` float values, with a first estimate at the missing entries.
    missing
        ``(T, P)`` bool, the entries to re-estimate.
    rank
        The rank of the reconstruction.
    sweeps, tol, scale
        At most ``sweeps`` sweeps, until the missing entries change by less
        than ``tol`` times ``scale`` (RMS over them; ``scale`` defaults to the
        RMS of the known entries).

    Returns
    -------
    numpy.ndarray
        A new ``(T, P)`` array: ``rows`` at known entries, the converged
        reconstruction at missing ones.
    """
    out = np.array(rows, dtype=np.float64)
    if not missing.any():
        return out
    if scale is None:
        known = out[~missing]
        scale = float(np.sqrt(np.mean(known**2))) if known.size else 1.0
    for _ in range(sweeps):
        mu = out.mean(axis=0)
        recon = truncated(out - mu, rank) + mu
        change = recon[missing] - out[missing]
        out[missing] = recon[missing]
        if np.sqrt(np.mean(change**2)) <= tol * scale:
            break
    return out


@dataclass(frozen=True)
class EofBasis:
    """The EOFs of a record.

    Attributes
    ----------
    patterns
        ``(P, M)``: the EOFs as unit columns, by decreasing variance.
    variance
        ``(M,)``: the variance of each mode's coefficient (``s² / T``, floored
        at 1e-12 of the first so that ``Λ⁻¹`` is finite).
    """

    patterns: np.ndarray
    variance: np.ndarray

    def noise(self, modes: int) -> float:
        """Per-point variance the first ``modes`` EOFs leave out (floored at 1e-9 of the total)."""
        total = float(self.variance.sum())
        return max(float(self.variance[modes:].sum()) / self.patterns.shape[0], 1e-9 * total)


def eof_basis(rows: np.ndarray) -> EofBasis:
    """The EOFs of a complete ``(T, P)`` record of anomalies (SVD, no centring here)."""
    _, s, vt = np.linalg.svd(np.asarray(rows, dtype=np.float64), full_matrices=False)
    variance = np.maximum(s**2 / rows.shape[0], 1e-12 * max(float(s[0] ** 2), 1e-30))
    return EofBasis(vt.T, variance)


def interpolate(basis: EofBasis, values: np.ndarray, shown: np.ndarray, modes: int) -> np.ndarray:
    """The ``modes``-EOF optimal interpolation of each step's shown values.

    Parameters
    ----------
    basis
        The record's EOFs over the same ``P`` points.
    values
        ``(T, P)`` (or ``(P,)``): read at ``shown`` points only.
    shown
        Bool, the shape of ``values``.
    modes
        The number of leading EOFs (capped at those there are).

    Returns
    -------
    numpy.ndarray
        The shape of ``values``: ``E a`` per step (0 for a step with no shown point).
    """
    single = values.ndim == 1
    v = np.atleast_2d(values)
    sh = np.atleast_2d(shown)
    k = min(int(modes), basis.patterns.shape[1])
    e = basis.patterns[:, :k]
    prior = basis.noise(k) * np.diag(1.0 / basis.variance[:k])
    out = np.zeros(v.shape)
    for t in range(v.shape[0]):
        obs = sh[t]
        if obs.any():
            eo = e[obs]
            out[t] = e @ np.linalg.solve(eo.T @ eo + prior, eo.T @ v[t][obs])
    return out[0] if single else out
