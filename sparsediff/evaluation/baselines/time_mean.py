"""The per-point mean over the observed times (climatology)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar, Literal

import numpy as np

from sparsediff.data.climatology import observed_mean
from sparsediff.errors import ConfigError
from sparsediff.evaluation.baselines.base import Baseline

__all__ = ["TimeMean"]


class TimeMean(Baseline):
    """Fill each gap with the mean of that point over its observed times (climatology).

    Parameters
    ----------
    time_dim
        The dim to average over.
    never_observed
        What a point never observed at any time gets: ``"field_mean"``
        (default) the mean of the time-mean field over the points that were
        observed (per block of the other non-spatial dims), or ``"nan"``.
    """

    name: ClassVar[str] = "time_mean"
    needs: ClassVar[frozenset[str]] = frozenset({"time"})

    def __init__(
        self,
        time_dim: Hashable = "time",
        never_observed: Literal["field_mean", "nan"] = "field_mean",
    ) -> None:
        if never_observed not in ("field_mean", "nan"):
            raise ConfigError(
                f"never_observed must be 'field_mean' or 'nan', got {never_observed!r}"
            )
        self.time_dim = time_dim
        self.never_observed = never_observed

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        mean, seen = observed_mean(values, observed)
        if self.never_observed == "field_mean" and seen.any():
            mean = np.where(seen, mean, mean[seen].mean())
        return np.broadcast_to(mean, values.shape)
