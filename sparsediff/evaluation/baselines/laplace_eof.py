"""The record's EOFs, interpolated optimally per step, plus a harmonic (Laplace) interpolation.

A classical fill that knows the record's large-scale covariance (which a
Laplace relaxation does not) and still follows the data locally (which a
truncated-EOF reconstruction such as DINEOF does not):

1. the per-point time mean of the observed values, completed by Laplace
   (as [`Laplace`][sparsediff.evaluation.baselines.laplace.Laplace]);
2. each step's anomaly from it completed by Laplace, and the EOFs of those
   completed anomalies (an SVD of the time × space matrix; the variance of
   mode ``k`` is ``s_k² / T``);
3. per step, the leading ``K`` EOF coefficients by optimal interpolation
   from the step's observed points alone, with the EOF variances as prior
   and the variance the ``K`` modes leave out, spread evenly over the
   points, as noise: ``a = (E_oᵀE_o + σ²Λ⁻¹)⁻¹ E_oᵀ x_o``;
4. the background ``mean + E a`` and a Laplace interpolation of the
   observed departures from it (``Laplace``'s own step).

``K`` is chosen by cross-validation on the data: the observed points of
each step that are gaps in another step (a "cloud" copied from the record,
as DINEOF's and DINCAE's validation do, each copied gap kept whole; random
points when no step has a gap) are hidden, steps 1–4 are run without them for
each candidate ``K``, and the ``K`` with the smallest error at them is kept (``cv_errors_``).
Measured on held-out months and years (``pipelines/eof_guess_probe.py``,
docs/results.md), the EOF background takes 15–37 % off Laplace's RMSE on
OSTIA and A1B where time neighbours are not used.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sparsediff.data import eofs
from sparsediff.data.climatology import observed_mean
from sparsediff.errors import ConfigError
from sparsediff.evaluation.baselines.laplace import Laplace

if TYPE_CHECKING:
    from sparsediff.evaluation.baselines.setting import Setting

__all__ = ["LaplaceEOF"]

MODES = (1, 2, 4, 8, 16, 32)
"""The candidate numbers of EOFs the cross-validation chooses from (capped at the
number of steps less one)."""


class LaplaceEOF(Laplace):
    """The record's EOFs, interpolated optimally per step, around which Laplace fills.

    Parameters
    ----------
    time_dim
        The record dim whose steps the EOFs are computed over.
    modes
        Candidate numbers of EOFs; the cross-validation keeps one
        (`chosen_modes_`, one per block of the other dims).
    cv_fraction
        Share of the observed points hidden for the cross-validation at most.
    sweeps
        At most this many DINEOF sweeps (the gaps of the Laplace-completed
        anomalies replaced by their rank-``K`` SVD reconstruction, until it
        changes by less than 1e-4 of their RMS), so that the Laplace
        completion of large gaps does not shape the EOFs.
    seed
        Seed of the cross-validation points.
    iters, tol, direct_max, wrap_longitude
        As for [`Laplace`][sparsediff.evaluation.baselines.laplace.Laplace].
    """

    name: ClassVar[str] = "laplace_eof"
    needs: ClassVar[frozenset[str]] = frozenset({"time"})

    def __init__(
        self,
        time_dim: Hashable = "time",
        modes: Sequence[int] = MODES,
        cv_fraction: float = 0.1,
        sweeps: int = 50,
        seed: int = 0,
        iters: int = 5000,
        tol: float = 1e-8,
        direct_max: int = 60_000,
        wrap_longitude: bool = True,
    ) -> None:
        super().__init__(time_dim, "time_mean", iters, tol, direct_max, wrap_longitude)
        if not modes or any(int(k) < 1 for k in modes):
            raise ConfigError(f"modes must be positive numbers of EOFs, got {modes!r}")
        if not 0.0 < cv_fraction < 1.0:
            raise ConfigError(f"cv_fraction must be in (0, 1), got {cv_fraction}")
        self.modes = tuple(sorted({int(k) for k in modes}))
        if sweeps < 0:
            raise ConfigError(f"sweeps must be >= 0, got {sweeps}")
        self.cv_fraction = float(cv_fraction)
        self.sweeps = int(sweeps)
        self.seed = int(seed)
        self.chosen_modes_: list[int] = []
        self.cv_errors_: list[dict[int, float]] = []

    @classmethod
    def for_evaluation(cls, setting: Setting, notes: list[str]) -> LaplaceEOF:
        """The evaluation's time dim and seed."""
        return cls(time_dim=setting.time_dim, seed=setting.seed)

    def _background(
        self, values: np.ndarray, observed: np.ndarray, active: np.ndarray, wrap: Any
    ) -> np.ndarray:
        steps = values.shape[0]
        candidates = [k for k in self.modes if k < steps] or [1]
        if steps < 3 or not observed.any():
            return super()._background(values, observed, active, wrap)
        cv = self._cv_points(observed, active)
        errors: dict[int, float] = {}
        if cv.any():
            shown = observed & ~cv
            backgrounds = self._eof_backgrounds(values, shown, active, wrap, candidates)
            for k, bg in backgrounds.items():
                fill = self._relax(values, shown, active, wrap, bg)
                errors[k] = float(np.sqrt(np.mean((fill[cv] - values[cv]) ** 2)))
        k = min(errors, key=errors.__getitem__) if errors else candidates[0]
        self.chosen_modes_.append(k)
        self.cv_errors_.append(errors)
        return self._eof_backgrounds(values, observed, active, wrap, [k])[k]

    def _relax(
        self, values: np.ndarray, shown: np.ndarray, active: np.ndarray, wrap: Any, bg: np.ndarray
    ) -> np.ndarray:
        """Background plus the Laplace fill of the shown departures from it, per step."""
        out = np.empty_like(values)
        for t in range(values.shape[0]):
            a = self._solve(
                np.where(shown[t], values[t] - bg[t], np.nan), shown[t], active[t], wrap
            )
            out[t] = bg[t] + np.nan_to_num(a)
        return out

    def _cv_points(self, observed: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Observed points hidden for the cross-validation: whole gaps copied from other steps.

        Each step in a random order takes the gap mask of a random other step
        (random points when no step has a gap) until ``cv_fraction`` of the
        observed points are hidden; a copied gap is kept whole, so the
        validation sees gaps of the record's own shapes and sizes.
        """
        rng = np.random.default_rng(self.seed)
        gaps = active & ~observed
        with_gaps = np.flatnonzero(gaps.reshape(gaps.shape[0], -1).any(axis=1))
        budget = self.cv_fraction * observed.sum()
        cv = np.zeros_like(observed)
        for t in rng.permutation(observed.shape[0]):
            donors = with_gaps[with_gaps != t]
            if donors.size:
                hide = observed[t] & gaps[rng.choice(donors)]
            else:
                hide = observed[t] & (rng.random(observed[t].shape) < self.cv_fraction)
            if cv.sum() + hide.sum() > budget and cv.any():
                continue
            if hide.sum() < observed[t].sum():  # a step keeps some of its points
                cv[t] = hide
        return cv

    def _eof_backgrounds(
        self,
        values: np.ndarray,
        shown: np.ndarray,
        active: np.ndarray,
        wrap: Any,
        modes: Sequence[int],
    ) -> dict[int, np.ndarray]:
        """``mean + E a`` per step for each number of modes, from the ``shown`` points only."""
        mean, seen = observed_mean(values, shown)
        region = np.asarray(active.any(axis=0))
        base = np.nan_to_num(self._solve(mean, seen, region, wrap))
        anomaly = np.where(shown, values - base, np.nan)
        first = np.stack(
            [
                np.nan_to_num(self._solve(anomaly[t], shown[t], active[t], wrap))[region]
                for t in range(values.shape[0])
            ]
        )
        on = shown[:, region]
        out = {}
        for k in modes:
            rows = eofs.complete_low_rank(first, ~on, k, sweeps=self.sweeps)
            mu = rows.mean(axis=0)
            bg = np.broadcast_to(base, values.shape).copy()
            bg[:, region] += mu + eofs.interpolate(eofs.eof_basis(rows - mu), rows - mu, on, k)
            out[k] = bg
        return out
