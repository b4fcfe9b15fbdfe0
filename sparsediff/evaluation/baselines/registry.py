"""The registry of baselines: name -> class."""

from __future__ import annotations

from typing import Any

from sparsediff.errors import ConfigError
from sparsediff.evaluation.baselines.base import Baseline
from sparsediff.evaluation.baselines.dineof import DINEOF
from sparsediff.evaluation.baselines.laplace import Laplace
from sparsediff.evaluation.baselines.linear import LinearInterp
from sparsediff.evaluation.baselines.time_mean import TimeMean

__all__ = ["BASELINES", "get_baseline"]

BASELINES: dict[str, type[Baseline]] = {
    TimeMean.name: TimeMean,
    LinearInterp.name: LinearInterp,
    Laplace.name: Laplace,
    DINEOF.name: DINEOF,
}
"""Registry: baseline name -> class."""


def get_baseline(name: str, **kwargs: Any) -> Baseline:
    """Build a baseline by its registry name.

    Parameters
    ----------
    name
        One of :data:`BASELINES` (``time_mean``, ``linear``, ``laplace``, ``dineof``).
    **kwargs
        Passed to the class.

    Returns
    -------
    Baseline
        The configured baseline.

    Raises
    ------
    ConfigError
        An unknown name or an option the baseline does not take.
    """
    try:
        cls = BASELINES[name]
    except KeyError:
        raise ConfigError(
            f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}"
        ) from None
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"bad options for baseline {name!r}: {err}") from None
