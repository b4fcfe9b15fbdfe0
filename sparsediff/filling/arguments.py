"""The keywords of ``sparsediff.fill`` that the writers pass on: [`FillArguments`][FillArguments].

[`fill_to_zarr`][sparsediff.filling.store.fill_to_zarr] and the array-job steps
([`sparsediff.filling.array_job`][sparsediff.filling.array_job]) take an
``options=`` of their own and pass these keywords on to
[`sparsediff.fill`][sparsediff.filling.fill.fill]; typing them here keeps them
checked (a test keeps them equal to ``fill``'s own).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sparsediff.method.options import FillKeywords

__all__ = ["FillArguments"]


class FillArguments(FillKeywords, total=False):
    """The option fields and the other keywords of ``sparsediff.fill`` a writer passes on.

    Each as documented on [`sparsediff.fill`][sparsediff.filling.fill.fill] (``options``
    is the writer's own argument; ``progress`` and ``persist`` are the writer's
    business).
    """

    device: str
    invalid: Any
    invalid_below: float | str | None
    invalid_along: str | Sequence[str] | None
    check_values: bool
    min_observed_share: float | None
    overlap: Sequence[int] | int | None
    periodic: Sequence[bool] | None
    adapt: Any
    calibrate: str
