"""DINEOF: iterated truncated SVD of the time x space anomaly matrix."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from sparsediff.data.climatology import observed_mean
from sparsediff.data.eofs import complete_low_rank
from sparsediff.errors import ConfigError
from sparsediff.evaluation.baselines.base import Baseline

if TYPE_CHECKING:
    from sparsediff.evaluation.baselines.setting import Setting

__all__ = ["DINEOF"]


class DINEOF(Baseline):
    """Data Interpolating Empirical Orthogonal Functions.

    The block is a matrix ``X`` (time × space points, over the points observed
    at least once). Missing entries start at the per-point mean of the
    observed times. For ``k = 1 .. max_rank``, sweeps replace the missing
    entries by ``mean + rank-k truncated SVD of (X - mean)`` — the per-point
    time mean is re-estimated from the completed matrix at every sweep, so
    it is not biased by where the gaps are and does not cost a mode — until
    they change by less than ``tol`` (relative to the spread of the observed
    data) or ``max_iter`` sweeps; each rank starts from the previous one.

    A random ``cv_fraction`` of the observed entries (seeded) is hidden during
    this search; the rank kept is the smallest whose RMS error on them is
    within ``rank_tol`` (relative; and ``10 * tol`` of the data spread) of
    the lowest one — further modes that gain less than that are noise
    (Beckers & Rixen 2003; Alvera-Azcárate et al. 2005). The hidden entries
    are then put back and the sweeps run again at that rank with all
    observed entries.

    Points never observed at any time carry no information for an EOF
    method: they stay NaN (mark them invalid, or use `Laplace`).
    After `fill`, `ranks_` holds the rank chosen for each block
    of the other non-spatial dims and `cv_errors_` the CV curves.

    Parameters
    ----------
    time_dim
        The time dim (rows of the matrix).
    max_rank
        Largest rank tried (capped at ``min(n_time, n_points) - 1``).
    tol
        Convergence threshold of the sweeps.
    max_iter
        Most sweeps per rank.
    cv_fraction
        Share of the observed entries held out to choose the rank.
    seed
        Seed of the held-out draw.
    patience
        Stop the rank search after this many ranks without a new CV minimum.
    rank_tol
        Relative CV improvement a further mode must bring to count.
    """

    name: ClassVar[str] = "dineof"
    needs: ClassVar[frozenset[str]] = frozenset({"time"})

    def __init__(
        self,
        time_dim: Hashable = "time",
        max_rank: int = 20,
        tol: float = 1e-3,
        max_iter: int = 200,
        cv_fraction: float = 0.05,
        seed: int = 0,
        patience: int = 3,
        rank_tol: float = 0.01,
    ) -> None:
        if int(max_rank) < 1 or int(max_iter) < 1 or int(patience) < 1:
            raise ConfigError("max_rank, max_iter and patience must be at least 1")
        if not 0.0 < cv_fraction < 1.0:
            raise ConfigError(f"cv_fraction must be in (0, 1), got {cv_fraction}")
        if not tol > 0 or not rank_tol >= 0:
            raise ConfigError(f"tol must be positive and rank_tol >= 0, got {tol}, {rank_tol}")
        self.time_dim = time_dim
        self.max_rank = int(max_rank)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.cv_fraction = float(cv_fraction)
        self.seed = int(seed)
        self.patience = int(patience)
        self.rank_tol = float(rank_tol)
        self.ranks_: list[int] = []
        self.cv_errors_: list[np.ndarray] = []

    @classmethod
    def for_evaluation(cls, setting: Setting, notes: list[str]) -> DINEOF:
        """DINEOF over the evaluation's time dim, its cross-validation seeded by its seed.

        Parameters
        ----------
        setting, notes
            As for `Baseline.for_evaluation`.

        Returns
        -------
        DINEOF
        """
        return cls(time_dim=setting.time_dim, seed=setting.seed)

    def _start(self) -> None:
        """Each `fill` records its own `ranks_` and `cv_errors_` (one per block)."""
        self.ranks_ = []
        self.cv_errors_ = []

    def _iterate(self, x: np.ndarray, missing: np.ndarray, rank: int, scale: float) -> np.ndarray:
        """Sweeps of ``missing <- mean + rank-k SVD`` on ``x`` (in place)."""
        if missing.any():
            x[...] = complete_low_rank(
                x, missing, rank, sweeps=self.max_iter, tol=self.tol, scale=scale
            )
        return x

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        nt = values.shape[0]
        mean, seen = observed_mean(values, observed)
        cols = np.flatnonzero(seen.reshape(-1))
        out = np.broadcast_to(np.where(seen, mean, np.nan), values.shape).copy()
        obs = observed.reshape(nt, -1)[:, cols]
        x = values.reshape(nt, -1)[:, cols].astype(np.float64)
        col_mean = np.broadcast_to(mean.reshape(-1)[cols], x.shape)
        x[~obs] = col_mean[~obs]
        top = min(self.max_rank, min(x.shape) - 1)
        if top < 1 or obs.all():
            self.ranks_.append(0)
            self.cv_errors_.append(np.empty(0))
            return np.where(observed, values, out)
        scale = float(np.std(x[obs])) or 1.0
        rng = np.random.default_rng(self.seed)
        obs_idx = np.flatnonzero(obs)
        n_cv = max(1, round(self.cv_fraction * obs_idx.size))
        cv: np.ndarray = np.zeros(obs.size, dtype=bool)
        cv[rng.choice(obs_idx, size=n_cv, replace=False)] = True
        cv = cv.reshape(obs.shape)
        truth_cv = x[cv].copy()
        work = x.copy()
        work[cv] = col_mean[cv]
        missing = ~obs | cv
        errors: list[float] = []
        best, best_err, final = 0, np.inf, work.copy()
        for k in range(1, top + 1):
            work = self._iterate(work, missing, k, scale)
            err = float(np.sqrt(np.mean((work[cv] - truth_cv) ** 2)))
            errors.append(err)
            gain = best_err - err
            if best == 0 or gain > max(self.rank_tol * best_err, 10.0 * self.tol * scale):
                best, best_err, final = k, err, work.copy()
            elif k - best >= self.patience:
                break
        final[cv] = truth_cv
        final = self._iterate(final, ~obs, best, scale)
        self.ranks_.append(best)
        self.cv_errors_.append(np.asarray(errors))
        flat = out.reshape(nt, -1)
        flat[:, cols] = final
        return flat.reshape(values.shape)
