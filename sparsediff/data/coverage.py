"""How much of the data a fill stands on: observed values the invalid rule removes, and per step.

Two ways a fill can look right and be made up:

* an invalid rule (``invalid_below``, a user mask) that marks (nearly) every
  observed value invalid: nothing is left to fill from, yet every gap would
  be "filled". [`check_rule`][check_rule] refuses a rule that removes more than
  `MAX_REMOVED_SHARE` of the usable values of a variable, naming it.
* steps (time steps, levels, ...) with few or no observed points (an all-NaN
  month, a Zarr store still being written by another process): each of
  their points would be invented from the model alone. [`sparse_steps`][sparse_steps]
  names them; a fill warns about steps with no observed point and, given a
  ``min_observed_share``, refuses steps below it.

The counts come from one pass over the states ([`coverage`][coverage]).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import dask
import numpy as np
import xarray as xr

from sparsediff.data import masks
from sparsediff.errors import ConfigError, InputError

__all__ = ["MAX_REMOVED_SHARE", "Coverage", "check_rule", "check_share", "coverage", "sparse_steps"]

#: An invalid rule may mark at most this share of a variable's usable values invalid.
MAX_REMOVED_SHARE = 0.99
#: Steps named in a message (the rest are counted).
_SHOWN = 5


@dataclass(frozen=True)
class Coverage:
    """Counts of one variable's points.

    Attributes
    ----------
    usable
        Values that are usable (finite, not a fill value, in the valid range).
    removed
        Of those, how many the invalid rule marks invalid.
    observed, fillable
        Per step (the non-spatial dims), observed points and points that are
        not invalid; 0-d when the variable has no such dim.
    """

    usable: int
    removed: int
    observed: xr.DataArray
    fillable: xr.DataArray


def coverage(
    ds: xr.Dataset, states: xr.Dataset, variables: Sequence[str], spatial: Sequence[Hashable]
) -> dict[str, Coverage]:
    """The counts of each variable, computed in one pass (see [`Coverage`][Coverage])."""
    todo = {}
    for v in variables:
        st = states[v]
        dims = [d for d in spatial if d in st.dims]
        usable = masks.finite_mask(ds[v])
        todo[v] = (
            usable.sum(),
            (usable & (st == masks.INVALID)).sum(),
            (st == masks.OBSERVED).sum(dims),
            (st != masks.INVALID).sum(dims),
        )
    (done,) = dask.compute(todo)
    return {
        v: Coverage(
            int(u), int(r), obs.drop_vars(list(obs.coords)), fil.drop_vars(list(fil.coords))
        )
        for v, (u, r, obs, fil) in done.items()
    }


def check_rule(counts: dict[str, Coverage], rule: str) -> None:
    """Refuse an invalid rule that leaves (nearly) no observed value.

    Parameters
    ----------
    counts
        From [`coverage`][coverage].
    rule
        The rule in words, for the message.

    Raises
    ------
    InputError
        The rule marks more than `MAX_REMOVED_SHARE` of a variable's
        usable values invalid.
    """
    for v, c in counts.items():
        if c.usable and c.removed > MAX_REMOVED_SHARE * c.usable:
            what = "all" if c.removed == c.usable else f"{c.removed / c.usable:.1%} ({c.removed:,})"
            raise InputError(
                f"the invalid rule ({rule}) marks {what} of the {c.usable:,} observed values of "
                f"{v!r} invalid (at most {MAX_REMOVED_SHARE:.0%} may be): nothing would be left "
                "to fill from; check the rule (invalid=, invalid_below=; CLI: --invalid, "
                "--invalid-below)"
            )


def check_share(value: float | None) -> float | None:
    """``min_observed_share`` checked: ``None`` or a number in [0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ConfigError(f"min_observed_share must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"min_observed_share must be a number in [0, 1], got {value!r}")
    return float(value)


def _step_names(mask: xr.DataArray, share: xr.DataArray, ds: xr.Dataset) -> list[str]:
    """``time=2001-03-16 (0%)`` for each step where ``mask`` holds (at most `_SHOWN`)."""
    names = []
    for pos in np.argwhere(np.asarray(mask))[:_SHOWN]:
        parts = []
        for d, i in zip(mask.dims, pos, strict=True):
            value = ds[d].values[i] if d in ds.coords else i
            if isinstance(value, np.datetime64):
                value = np.datetime_as_string(value, unit="D")
            parts.append(f"{d}={value}")
        names.append(f"{', '.join(parts) or 'the only step'} ({float(share[tuple(pos)]):.0%})")
    return names


def sparse_steps(counts: dict[str, Coverage], ds: xr.Dataset, min_share: float | None) -> list[str]:
    """Warnings about steps without observed points; refuse steps below ``min_share``.

    Parameters
    ----------
    counts
        From [`coverage`][coverage].
    ds
        The data (for the steps' coordinate values).
    min_share
        Refuse a step whose observed share (observed points over points that
        are not invalid) is below it; ``None``: only warn about steps with
        no observed point at all.

    Returns
    -------
    list of str
        One warning per variable with steps without any observed point.

    Raises
    ------
    InputError
        A step below ``min_share``, naming the steps and how many there are.
    """
    messages = []
    for v, c in counts.items():
        fillable = np.asarray(c.fillable)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = xr.DataArray(np.asarray(c.observed) / fillable, dims=c.observed.dims)
        share = share.where(fillable > 0)
        n_steps = int(fillable.size)
        if min_share is not None:
            low = share < min_share
            if bool(low.any()):
                raise InputError(
                    f"{int(low.sum())} of {n_steps} steps of {v!r} have an observed share below "
                    f"{min_share:g}: {'; '.join(_step_names(low, share, ds))}; drop them, or "
                    "lower min_observed_share (CLI: --min-observed-share)"
                )
        empty = share == 0
        if bool(empty.any()) and n_steps > 1:
            messages.append(
                f"{int(empty.sum())} of {n_steps} steps of {v!r} have no observed point "
                f"({'; '.join(_step_names(empty, share, ds))}): every point of them is made up "
                "by the model alone; pass min_observed_share= (CLI: --min-observed-share) to "
                "refuse such steps"
            )
    return messages
