"""Which points a fill leaves alone: the model's recorded rule, for the one policy.

The policy (the user's mask, the model's training mask, or a rule, in that
order) is [`sparsediff.data.invalid_policy`][sparsediff.data.invalid_policy];
here a model's recorded rule is read ([`model_rule`][model_rule]) and the policy
applied to a fill ([`resolve_invalid`][resolve_invalid]).

What was assumed is recorded in the ``sparsediff_fill`` attribute
(``"invalid"``) of the filled dataset.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import xarray as xr

from sparsediff.data import invalid_policy, masks
from sparsediff.data.invalid_policy import InvalidRule, RecordedRule
from sparsediff.model import Model

__all__ = ["InvalidRule", "model_rule", "resolve_invalid"]


def model_rule(model: Model) -> RecordedRule:
    """The invalid rule ``model`` was trained with: what ``"model"`` means in its fills.

    Parameters
    ----------
    model
        A trained model.

    Returns
    -------
    RecordedRule
        Its ``invalid_below`` and ``invalid_along`` settings and the invalid
        mask of its training grid.
    """
    return RecordedRule(
        below=model.spec.invalid_below, along=model.spec.invalid_along, masks=model.invalid
    )


def resolve_invalid(
    ds: xr.Dataset,
    model: Model,
    *,
    invalid: masks.InvalidSpec,
    invalid_below: float | str | None,
    invalid_along: Hashable | Iterable[Hashable] | None,
) -> InvalidRule:
    """Decide how the points of ``ds`` are classified for a fill with ``model``.

    Parameters
    ----------
    ds
        The data to fill.
    model
        The model.
    invalid, invalid_below, invalid_along
        The options of [`sparsediff.fill`][sparsediff.filling.fill.fill] (``"model"``: the model's
        setting).

    Returns
    -------
    InvalidRule
        As [`resolve_invalid`][sparsediff.data.invalid_policy.resolve_invalid] of
        `sparsediff.data.invalid_policy`, with the model's recorded rule.

    Raises
    ------
    ConfigError
        An ``invalid_below`` that is not a number, ``None`` or ``"model"``.
    """
    return invalid_policy.resolve_invalid(
        ds,
        model.variables,
        invalid=invalid,
        invalid_below=invalid_below,
        invalid_along=invalid_along,
        recorded=model_rule(model),
    )
