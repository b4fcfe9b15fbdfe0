"""Which points are invalid: the one policy of training, ``fill`` and ``evaluate``.

[`resolve_invalid`][resolve_invalid] takes the data, the user's ``invalid``,
``invalid_below`` and ``invalid_along`` arguments (``"model"``: the model's
recorded rule) and the recorded rule of a model ([`RecordedRule`][RecordedRule];
``None`` for training, which records it), and decides, in order of precedence:

1. ``invalid=`` given (a variable, a DataArray or a file): that mask, OR-ed
   with ``invalid_below`` when a threshold is given explicitly, and with
   ``invalid_along`` when given explicitly (or the recorded rule, as in 3).
2. Otherwise, when the model carries the invalid mask of its training grid
   (`sparsediff.model.Model.invalid`) and the data lie on that grid
   (the same coordinates, or a permutation or subset of them, matched as in
   [`sparsediff.data.alignment`][sparsediff.data.alignment]): a point is invalid when the mask says
   so **and** it is missing in the data. So one month alone fills no land,
   a sea point that happens to be a gap at every step is still filled, and
   a value observed where training never saw one is kept, not blanked. The
   rule of point 3 is then not used (unless ``invalid_along`` is given
   explicitly).
3. Otherwise, the recorded rule: points missing at every step along its
   ``invalid_along`` dim are invalid, when the data have more than one
   step of it. When the model has such a rule but it cannot run (one step,
   or no such dim) and nothing else says which points are invalid, the rule
   carries a warning that every missing point will be filled.

Without ``invalid=``, the recorded ``invalid_below`` rule (e.g. air ``<= 0``
around a head) is OR-ed in as well (``invalid_below=None`` turns it off, a
number replaces it).

[`invalid_states`][invalid_states] is the same decision followed by the
states of the points ([`sparsediff.data.masks.states`][sparsediff.data.masks.states]).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import xarray as xr

from sparsediff.data import invalid_rules, masks
from sparsediff.data.alignment import align_to
from sparsediff.errors import CompatibilityError, ConfigError

__all__ = ["InvalidRule", "RecordedRule", "invalid_states", "resolve_invalid"]


@dataclass(frozen=True)
class RecordedRule:
    """A model's invalid rule, as recorded at training: what ``"model"`` means.

    Attributes
    ----------
    below
        The ``invalid_below`` threshold of training (``None``: none).
    along
        The ``invalid_along`` dim of training (``None``: none).
    masks
        Per variable, the invalid mask of the training grid (``None``: none).
    """

    below: float | None = None
    along: Hashable | None = None
    masks: Mapping[str, xr.DataArray] | None = None


@dataclass(frozen=True)
class InvalidRule:
    """How the points of the data are classified.

    Attributes
    ----------
    invalid
        What [`sparsediff.data.masks.states`][sparsediff.data.masks.states] gets as ``invalid``:
        ``None``,
        the user's spec, or one mask per variable.
    along
        What it gets as ``invalid_along``.
    below
        The ``invalid_below`` threshold in use (``None``: none).
    source
        What was assumed, in words (for the provenance).
    warning
        A warning to give, or ``None``.
    """

    invalid: Any
    along: Hashable | Iterable[Hashable] | None
    below: float | None
    source: str
    warning: str | None = None


def _recorded_masks(
    ds: xr.Dataset, variables: list[str], recorded: RecordedRule
) -> tuple[dict[str, xr.DataArray] | None, str]:
    """The recorded training masks at the data's points, or ``None`` and why not."""
    if not recorded.masks:
        return None, "the model carries no invalid mask"
    out = {}
    for v in variables:
        mask = recorded.masks.get(v)
        if mask is None:
            return None, f"the model carries no invalid mask of {v!r}"
        try:
            aligned = align_to(mask, ds[v], what=f"the model's training mask of {v!r}")
        except CompatibilityError as e:
            return None, f"its training mask does not fit these data ({e})"
        # invalid where training never saw a value AND the data have none either
        out[v] = aligned.drop_vars(list(aligned.coords)) & ~masks.finite_mask(ds[v])
    return out, ""


def _below(value: Any, recorded: RecordedRule) -> float | None:
    if isinstance(value, str) and value == "model":
        return recorded.below
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"invalid_below must be a number, None or 'model', got {value!r}")
    return float(value)


def _along(
    ds: xr.Dataset, invalid_along: Any, recorded: RecordedRule, used_masks: bool
) -> Hashable | Iterable[Hashable] | None:
    """The ``invalid_along`` in use: the explicit one, else the recorded one when it can run."""
    if not (isinstance(invalid_along, str) and invalid_along == "model"):
        return invalid_along  # type: ignore[no-any-return]
    if used_masks or recorded.along is None:
        return None
    usable = recorded.along in ds.dims and ds.sizes[recorded.along] > 1
    return recorded.along if usable else None


def resolve_invalid(
    ds: xr.Dataset,
    variables: Iterable[str],
    *,
    invalid: masks.InvalidSpec | Mapping[str, masks.InvalidSpec],
    invalid_below: float | str | None,
    invalid_along: Hashable | Iterable[Hashable] | None,
    recorded: RecordedRule | None = None,
) -> InvalidRule:
    """Decide how the points of ``ds`` are classified (the rules of the module notes).

    Parameters
    ----------
    ds
        The data.
    variables
        The variables classified.
    invalid, invalid_below, invalid_along
        The user's arguments (those of [`sparsediff.fill`][sparsediff.filling.fill.fill]);
        ``"model"``: the recorded setting.
    recorded
        The model's recorded rule (``None``: none, as in training).

    Returns
    -------
    InvalidRule

    Raises
    ------
    ConfigError
        An ``invalid_below`` that is not a number, ``None`` or ``"model"``.
    """
    variables = list(variables)
    recorded = recorded if recorded is not None else RecordedRule()
    below = _below(invalid_below, recorded)
    if invalid is not None and isinstance(invalid_below, str):
        below = None  # a mask given: the recorded threshold only when asked for explicitly
    explicit_along = not (isinstance(invalid_along, str) and invalid_along == "model")
    spec: Any = invalid
    warning: str | None = None
    why_not = ""
    if invalid is not None:
        source = "the invalid mask given"
    else:
        spec, why_not = _recorded_masks(ds, variables, recorded)
        source = "the model's training mask" if spec is not None else ""
    along = _along(ds, invalid_along, recorded, invalid is None and spec is not None)
    if not source:
        if along is not None:
            source = f"points missing at every step along {along!r} (the model's rule; {why_not})"
        else:
            source = f"none: every missing point is a gap ({why_not})"
            if recorded.along is not None and below is None and not explicit_along:
                steps = ds.sizes.get(recorded.along, 0)
                warning = (
                    f"the model finds invalid points (land) as points missing at every step "
                    f"along {recorded.along!r}, but the data have {steps} such step(s) and "
                    f"{why_not}: every missing point will be filled; pass invalid= "
                    "(CLI: --invalid) to leave land unfilled"
                )
    elif along is not None:
        source += f" and points missing at every step along {along!r}"
    if below is not None:
        if isinstance(spec, Mapping):  # per variable: the recorded masks, or the user's
            rule = masks.at_or_below(ds, variables, below)
            per_var = spec if invalid is None else invalid_rules._user_masks(ds, variables, spec)
            spec = {v: rule if m is None else rule | m for v, m in per_var.items()}
        else:
            spec = masks.at_or_below(ds, variables, below, invalid=spec)
        source += f"; values <= {below:g}"
    return InvalidRule(spec, along, below, source, warning)


def invalid_states(
    ds: xr.Dataset,
    variables: Iterable[str],
    *,
    invalid: masks.InvalidSpec | Mapping[str, masks.InvalidSpec],
    invalid_below: float | str | None,
    invalid_along: Hashable | Iterable[Hashable] | None,
    recorded: RecordedRule | None = None,
) -> tuple[InvalidRule, xr.Dataset]:
    """[`resolve_invalid`][resolve_invalid], then the states of the points under that rule.

    Parameters
    ----------
    ds, variables, invalid, invalid_below, invalid_along, recorded
        As for [`resolve_invalid`][resolve_invalid].

    Returns
    -------
    rule : InvalidRule
        The rule decided.
    states : xarray.Dataset
        [`sparsediff.data.masks.states`][sparsediff.data.masks.states] of ``variables``
        under it (lazy if the data are).
    """
    variables = list(variables)
    rule = resolve_invalid(
        ds,
        variables,
        invalid=invalid,
        invalid_below=invalid_below,
        invalid_along=invalid_along,
        recorded=recorded,
    )
    return rule, masks.states(ds, variables, invalid=rule.invalid, invalid_along=rule.along)
