"""Which points a fill leaves alone: the user's mask, the model's training mask, or a rule.

In order of precedence:

1. ``invalid=`` given (a variable, a DataArray or a file): that mask, OR-ed
   with ``invalid_below`` when a threshold is given explicitly, and with
   ``invalid_along`` when given explicitly (or the model's rule, as in 3).
2. Otherwise, when the model carries the invalid mask of its training grid
   (`sparsediff.model.Model.invalid`) and the data lie on that grid
   (the same coordinates, or a permutation or subset of them, matched as in
   [`sparsediff.data.alignment`][sparsediff.data.alignment]): a point is invalid when the mask says
   so **and** it is missing in the data. So one month alone fills no land,
   a sea point that happens to be a gap at every step is still filled, and
   a value observed where training never saw one is kept, not blanked. The
   rule of point 3 is then not used (unless ``invalid_along`` is given
   explicitly).
3. Otherwise, the model's training rule: points missing at every step along
   its ``invalid_along`` dim are invalid, when the data have more than one
   step of it. When the model has such a rule but it cannot run (one step,
   or no such dim) and nothing else says which points are invalid, a
   [`SparsediffWarning`][sparsediff.errors.SparsediffWarning] says that every missing
   point will be filled.

Without ``invalid=``, the model's ``invalid_below`` rule (e.g. air ``<= 0``
around a head) is OR-ed in as well (``invalid_below=None`` turns it off, a
number replaces it).

What was assumed is recorded in the ``sparsediff_fill`` attribute
(``"invalid"``) of the filled dataset.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import xarray as xr

from sparsediff.data import masks
from sparsediff.data.alignment import align_to
from sparsediff.errors import CompatibilityError, ConfigError
from sparsediff.model import Model

__all__ = ["InvalidRule", "resolve_invalid"]


@dataclass(frozen=True)
class InvalidRule:
    """How the points of a fill are classified.

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


def _model_masks(ds: xr.Dataset, model: Model) -> tuple[dict[str, xr.DataArray] | None, str]:
    """The model's training masks at the data's points, or ``None`` and why not."""
    if not model.invalid:
        return None, "the model carries no invalid mask"
    out = {}
    for v in model.variables:
        mask = model.invalid.get(v)
        if mask is None:
            return None, f"the model carries no invalid mask of {v!r}"
        try:
            aligned = align_to(mask, ds[v], what=f"the model's training mask of {v!r}")
        except CompatibilityError as e:
            return None, f"its training mask does not fit these data ({e})"
        # invalid where training never saw a value AND the data have none either
        out[v] = aligned.drop_vars(list(aligned.coords)) & ~masks.finite_mask(ds[v])
    return out, ""


def _below(value: Any, model: Model) -> float | None:
    if isinstance(value, str) and value == "model":
        return model.spec.invalid_below
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"invalid_below must be a number, None or 'model', got {value!r}")
    return float(value)


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

    Raises
    ------
    ConfigError
        An ``invalid_below`` that is not a number, ``None`` or ``"model"``.
    """
    variables = model.variables
    below = _below(invalid_below, model)
    if invalid is not None and isinstance(invalid_below, str):
        below = None  # a mask given: the model's threshold only when asked for explicitly
    model_along = model.spec.invalid_along
    explicit_along = not (isinstance(invalid_along, str) and invalid_along == "model")
    spec: Any = invalid
    warning = None
    if invalid is not None:
        source = "the invalid mask given"
        used_model_mask = False
    else:
        spec, why_not = _model_masks(ds, model)
        used_model_mask = spec is not None
        source = "the model's training mask" if used_model_mask else ""
    if explicit_along:
        along = invalid_along
    elif used_model_mask or model_along is None:
        along = None
    else:
        usable = model_along in ds.dims and ds.sizes[model_along] > 1
        along = model_along if usable else None
    if not source:
        if along is not None:
            source = f"points missing at every step along {along!r} (the model's rule; {why_not})"
        else:
            source = f"none: every missing point is a gap ({why_not})"
            if model_along is not None and below is None and not explicit_along:
                steps = ds.sizes.get(model_along, 0)
                warning = (
                    f"the model finds invalid points (land) as points missing at every step "
                    f"along {model_along!r}, but the data have {steps} such step(s) and "
                    f"{why_not}: every missing point will be filled; pass invalid= "
                    "(CLI: --invalid) to leave land unfilled"
                )
    elif along is not None:
        source += f" and points missing at every step along {along!r}"
    if below is not None:
        if isinstance(spec, dict):
            rule = masks.at_or_below(ds, variables, below)
            spec = {v: rule | m for v, m in spec.items()}
        else:
            spec = masks.at_or_below(ds, variables, below, invalid=spec)
        source += f"; values <= {below:g}"
    return InvalidRule(spec, along, below, source, warning)
