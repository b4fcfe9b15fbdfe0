"""The conditioning inputs of the v2 networks, built the same way in training and fill.

A batch of **frames** (whole fields at fill time, crops around a window in
training) in normalized units becomes input channels, in this order::

    shown values (C) | shown mask (C) | active mask (C) | first guess (C)
    | for each context frame: its shown values (C) | its shown mask (C)

with ``C`` the number of variables. The first guess is computed here, over
the whole frame, from the shown points only (:mod:`.first_guess`), so a gap
at a window edge is estimated from data beyond the window. Windows are cut
from the channels afterwards; :func:`guess_of` finds the guess in them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sparsediff.errors import InputError
from sparsediff.method.first_guess import first_guess

__all__ = ["Frames", "build_inputs", "guess_of", "n_inputs"]


@dataclass
class Frames:
    """A batch of fields in normalized units, all ``(N, C, *S)`` unless noted.

    Attributes
    ----------
    values
        Values; anything (NaN too) where not shown.
    shown
        bool: the points the model may use (observed, minus any hidden ones).
    active
        bool: points inside the domain (not invalid).
    context
        ``(N, K, C, *S)`` values of K neighbouring frames (or ``None``).
    context_shown
        ``(N, K, C, *S)`` bool, where the context frames are shown.
    """

    values: Tensor
    shown: Tensor
    active: Tensor
    context: Tensor | None = None
    context_shown: Tensor | None = None


def n_inputs(n_vars: int, n_context: int) -> int:
    """Number of input channels for ``n_vars`` variables and ``n_context`` frames."""
    return 4 * n_vars + 2 * n_vars * n_context


def guess_of(inputs: Tensor, n_vars: int) -> Tensor:
    """The first-guess channels of an input tensor ``(N, n_inputs, *S)``."""
    return inputs[:, 3 * n_vars : 4 * n_vars]


def build_inputs(
    frames: Frames,
    *,
    guess: str,
    n_context: int,
    periodic: Sequence[bool] | None = None,
) -> Tensor:
    """Input channels of a batch of frames.

    Parameters
    ----------
    frames
        The frames; ``context`` must hold ``n_context`` frames when
        ``n_context > 0`` (missing neighbours are all-unshown frames).
    guess
        First-guess name (``"laplace"``, ``"normconv"``, ``"zero"``).
    n_context
        Context frames the model expects.
    periodic
        Per spatial dim, whether the frames wrap around (global longitude).

    Returns
    -------
    torch.Tensor
        ``(N, n_inputs(C, n_context), *S)`` in float32; exactly 0 at
        inactive points except in the masks.
    """
    values, shown, active = frames.values, frames.shown.bool(), frames.active.bool()
    if shown.shape != values.shape or active.shape != values.shape:
        raise InputError(
            f"frames: values {tuple(values.shape)}, shown {tuple(shown.shape)} and active "
            f"{tuple(active.shape)} must have one shape"
        )
    shown = shown & active
    values = values.float()
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    shown_values = torch.where(shown, values, zero)
    g = first_guess(guess, shown_values, shown, active, periodic=periodic)
    parts = [shown_values, shown.float(), active.float(), g]
    if n_context:
        ctx, ctx_shown = frames.context, frames.context_shown
        expected = (values.shape[0], n_context, *values.shape[1:])
        if ctx is None or ctx_shown is None or tuple(ctx.shape) != expected:
            got = None if ctx is None else tuple(ctx.shape)
            raise InputError(f"frames: context must have shape {expected}, got {got}")
        ctx_ok = ctx_shown.bool() & active.unsqueeze(1)
        ctx_values = torch.where(ctx_ok, ctx.float(), zero)
        for k in range(n_context):
            parts += [ctx_values[:, k], ctx_ok[:, k].float()]
    return torch.cat(parts, dim=1)
