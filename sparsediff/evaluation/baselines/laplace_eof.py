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
points when no copied gap hides any) are hidden, steps 1–4 are run without
them for each candidate ``K`` (at most the steps less two), and the ``K`` with
the smallest error at them is kept (``chosen_modes_``, ``cv_errors_``).
Scored on the held-out holes of docs/results.md it is 7–36 % below
Laplace's RMSE on OSTIA and A1B.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sparsediff.data import eofs
from sparsediff.errors import ConfigError
from sparsediff.evaluation.baselines.laplace import Laplace

if TYPE_CHECKING:
    from sparsediff.evaluation.baselines.setting import Setting

__all__ = ["LaplaceEOF"]

MODES = (1, 2, 4, 8, 16, 32)
"""The candidate numbers of EOFs the cross-validation chooses from (capped at the
number of steps less two)."""


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
        About this share of the observed points is hidden for the
        cross-validation (see `_cv_points`).
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

    def _start(self) -> None:
        """Each `fill` records its own `chosen_modes_` and `cv_errors_`.

        One entry per block of the other dims; ``K`` is 0 where the record is
        too short for EOFs or the cross-validation hid nothing (``Laplace``'s fill).
        """
        self.chosen_modes_ = []
        self.cv_errors_ = []

    def _background(
        self, values: np.ndarray, observed: np.ndarray, active: np.ndarray, wrap: Any
    ) -> np.ndarray:
        steps = values.shape[0]
        if steps < 3 or not observed.any():
            self.chosen_modes_.append(0)
            self.cv_errors_.append({})
            return super()._background(values, observed, active, wrap)
        # at most steps - 2 modes: with steps - 1 the modes span the centred record and
        # leave no variance for the noise of the interpolation
        candidates = [k for k in self.modes if k <= steps - 2] or [1]
        cv = self._cv_points(observed, active)
        if not cv.any():  # too few observed points to hide any
            self.chosen_modes_.append(0)
            self.cv_errors_.append({})
            return super()._background(values, observed, active, wrap)
        shown = observed & ~cv
        prepared = self._prepare(values, shown, active, wrap)
        errors: dict[int, float] = {}
        for k in candidates:
            fill = self._around(values, shown, active, wrap, self._eof_background(prepared, k))
            errors[k] = float(np.sqrt(np.mean((fill[cv] - values[cv]) ** 2)))
        k = min(errors, key=errors.__getitem__)
        self.chosen_modes_.append(k)
        self.cv_errors_.append(errors)
        return self._eof_background(self._prepare(values, observed, active, wrap), k)

    def _cv_points(self, observed: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Observed points hidden for the cross-validation: whole gaps copied from other steps.

        Each step in a random order takes the gap mask of a random other step
        until about ``cv_fraction`` of the observed points are hidden (a copied
        gap is kept whole, so the validation sees gaps of the record's own
        shapes and sizes; the first one is taken even when it is larger);
        a step keeps at least one observed point. When no copied gap hides
        anything (no step has a gap, or the gaps never meet other steps'
        observed points), ``cv_fraction`` of the observed points at random.
        """
        rng = np.random.default_rng(self.seed)
        gaps = active & ~observed
        with_gaps = np.flatnonzero(gaps.reshape(gaps.shape[0], -1).any(axis=1))
        budget = self.cv_fraction * observed.sum()
        cv = np.zeros_like(observed)
        hidden = 0
        for t in rng.permutation(observed.shape[0]):
            donors = with_gaps[with_gaps != t]
            if not donors.size:
                continue
            hide = observed[t] & gaps[rng.choice(donors)]
            n = int(hide.sum())
            if (hidden and hidden + n > budget) or n == 0 or n == observed[t].sum():
                continue
            cv[t] = hide
            hidden += n
        if not hidden:
            cv = observed & (rng.random(observed.shape) < self.cv_fraction)
        return cv

    def _prepare(
        self, values: np.ndarray, shown: np.ndarray, active: np.ndarray, wrap: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The time-mean background (``Laplace``'s), the region, and each step's anomaly
        from it completed by Laplace, ``(T, P)`` at the region's points, with where it was shown."""
        base = np.nan_to_num(Laplace._background(self, values, shown, active, wrap)[0])
        region = np.asarray(active.any(axis=0))
        anomaly = np.where(shown, values - base, np.nan)
        first = np.stack(
            [
                np.nan_to_num(self._solve(anomaly[t], shown[t], active[t], wrap))[region]
                for t in range(values.shape[0])
            ]
        )
        return base, region, first, shown[:, region]

    def _eof_background(
        self, prepared: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], modes: int
    ) -> np.ndarray:
        """``mean + E a`` per step with ``modes`` EOFs (from the shown points only)."""
        base, region, first, on = prepared
        rows = eofs.complete_low_rank(first, ~on, modes, sweeps=self.sweeps)
        mu = rows.mean(axis=0)
        bg = np.broadcast_to(base, (first.shape[0], *base.shape)).copy()
        bg[:, region] += mu + eofs.interpolate(eofs.eof_basis(rows - mu), rows - mu, on, modes)
        return bg
