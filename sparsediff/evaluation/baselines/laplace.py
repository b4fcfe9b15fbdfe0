"""Climatology plus a harmonic (Laplace) interpolation of the anomaly (the classical baseline).

Each slice is solved by [`harmonic_solve`][sparsediff.laplace.sparse.harmonic_solve], the
torch-free backend of [`sparsediff.laplace`][sparsediff.laplace].
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from sparsediff.data.climatology import observed_mean
from sparsediff.errors import ConfigError
from sparsediff.evaluation.baselines.base import Baseline
from sparsediff.laplace.sparse import harmonic_solve

if TYPE_CHECKING:
    from sparsediff.evaluation.baselines.setting import Setting

__all__ = ["Laplace"]


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
        ``"time_mean"``, ``"mean"`` or ``"none"``: the background this
        baseline interpolates the anomaly from (a keyword of its own, not a
        model's first guess of
        [`FIRST_GUESSES`][sparsediff.method.first_guess.FIRST_GUESSES]).
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
        return harmonic_solve(
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
        return self._around(
            values, observed, active, wrap, self._background(values, observed, active, wrap)
        )

    def _around(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        wrap: Any,
        guess: np.ndarray,
    ) -> np.ndarray:
        """Per step, ``guess`` plus the harmonic fill of the observed departures from it."""
        out = np.empty_like(values)
        for t in range(values.shape[0]):
            anomaly = np.where(observed[t], values[t] - guess[t], np.nan)
            a = self._solve(anomaly, observed[t], active[t], wrap)
            a = np.where(active[t] & ~observed[t] & np.isnan(a), 0.0, a)
            out[t] = guess[t] + a
        return out

    def _background(
        self, values: np.ndarray, observed: np.ndarray, active: np.ndarray, wrap: Any
    ) -> np.ndarray:
        """The first guess of each step of a block ``(time, *spatial)``."""
        if self.first_guess == "time_mean":
            mean, seen = observed_mean(values, observed)
            fg = self._solve(mean, seen, np.asarray(active.any(axis=0)), wrap)
            guess = np.broadcast_to(fg, values.shape)
        elif self.first_guess == "mean":
            guess = np.empty_like(values)
            for t in range(values.shape[0]):
                guess[t] = values[t][observed[t]].mean() if observed[t].any() else np.nan
        else:
            guess = np.zeros_like(values)
        return np.asarray(guess)
