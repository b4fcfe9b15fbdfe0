"""The keywords of ``sparsediff.fill`` that the writers pass on: [`FillArguments`][FillArguments].

[`fill_to_zarr`][sparsediff.filling.store.fill_to_zarr] and the array-job steps
([`sparsediff.filling.array_job`][sparsediff.filling.array_job]) take an
``options=`` of their own and pass these keywords on to
[`sparsediff.fill`][sparsediff.filling.fill.fill]; typing them here keeps them
checked (a test keeps them equal to ``fill``'s own).
[`fill_arguments`][fill_arguments] folds the option fields among such keywords
into one ``options``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sparsediff.method.options import FillKeywords, FillOptions, fill_option_fields

__all__ = ["FillArguments", "fill_arguments"]


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


def fill_arguments(
    fill_kw: Mapping[str, Any], *, defaults: FillOptions | None = None
) -> dict[str, Any]:
    """Keywords of [`sparsediff.fill`][sparsediff.filling.fill.fill] with their options as one.

    The option fields given as keywords (``members=``, ``seed=``, ...) and
    ``options=`` are folded into one ``options``
    ([`FillOptions.fold`][sparsediff.method.options.FillOptions.fold]); the
    other keywords (``device``, ``invalid``, ...) are kept as given.
    ``defaults``: what the option fields not given take (as for ``fold``).

    Raises
    ------
    ConfigError
        As [`FillOptions.fold`][sparsediff.method.options.FillOptions.fold].
    """
    names = {f.name for f in fill_option_fields()}
    given = {k: v for k, v in fill_kw.items() if k in names}
    rest = {k: v for k, v in fill_kw.items() if k not in names and k != "options"}
    options = FillOptions.fold(fill_kw.get("options"), defaults=defaults, **given)
    return rest | {"options": options}
