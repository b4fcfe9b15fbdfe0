"""Seasonal climatology plus a harmonic (Laplace) interpolation of the anomaly.

The classical counterpart of a model trained with a seasonal climatology
(``data.climatology``, [`sparsediff.data.seasonal`][sparsediff.data.seasonal]): the same
Laplace relaxation as [`Laplace`][sparsediff.evaluation.baselines.laplace.Laplace], around
the mean plus annual and semi-annual harmonics fitted per point to its
observed steps, instead of around the time mean. Scored beside a seasonal
model, it shows how much of the model's gain a classical fill gets from the
same cycle.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import xarray as xr

from sparsediff.data import seasonal
from sparsediff.errors import InputError
from sparsediff.evaluation.baselines.laplace import Laplace

if TYPE_CHECKING:
    from sparsediff.evaluation.baselines.setting import Setting

__all__ = ["LaplaceSeasonal"]


class LaplaceSeasonal(Laplace):
    """A per-point seasonal cycle plus a harmonic interpolation of the anomaly.

    The background of each step is the cycle of
    [`fit_observed`][sparsediff.data.seasonal.fit_observed] at the step's date.
    A point whose observed steps cannot fit the cycle (or never observed)
    takes each coefficient from its neighbours by a harmonic fill of that
    coefficient's field, as ``Laplace`` does for the time mean; when no point
    can, the background is ``Laplace``'s time mean. The record
    must have dates along ``time_dim`` that can fit a cycle
    ([`seasonal_reason`][sparsediff.data.seasonal.seasonal_reason]).

    Parameters
    ----------
    time_dim
        The record dim, with a date coordinate.
    iters, tol, direct_max, wrap_longitude
        As for [`Laplace`][sparsediff.evaluation.baselines.laplace.Laplace].
    """

    name: ClassVar[str] = "laplace_seasonal"
    needs: ClassVar[frozenset[str]] = frozenset({"time"})

    def __init__(
        self,
        time_dim: Hashable = "time",
        iters: int = 5000,
        tol: float = 1e-8,
        direct_max: int = 60_000,
        wrap_longitude: bool = True,
    ) -> None:
        super().__init__(time_dim, "time_mean", iters, tol, direct_max, wrap_longitude)
        self._time: xr.DataArray | None = None  # the dates of the variable being filled

    @classmethod
    def for_evaluation(cls, setting: Setting, notes: list[str]) -> LaplaceSeasonal:
        """The evaluation's time dim (its dates are checked when it fills)."""
        return cls(time_dim=setting.time_dim)

    def _fill_da(
        self, da: xr.DataArray, dims: tuple[Hashable, ...], inv: xr.DataArray | None
    ) -> xr.DataArray:
        why = seasonal.seasonal_reason(da, str(self.time_dim))
        if why is not None:
            raise InputError(f"baseline 'laplace_seasonal' needs a seasonal record: {why}")
        self._time = da[self.time_dim]
        try:
            return super()._fill_da(da, dims, inv)
        finally:
            self._time = None

    def _background(
        self, values: np.ndarray, observed: np.ndarray, active: np.ndarray, wrap: Any
    ) -> np.ndarray:
        assert self._time is not None
        coef = seasonal.fit_observed(values, observed, self._time)
        fitted = ~np.isnan(coef[0])
        if not fitted.any():
            return super()._background(values, observed, active, wrap)
        region = np.asarray(active.any(axis=0))
        # points that cannot fit a cycle take each term from their neighbours (Laplace)
        coef = np.stack([self._solve(c, fitted, region, wrap) for c in coef])
        return np.tensordot(seasonal.basis(self._time), coef, axes=1)
