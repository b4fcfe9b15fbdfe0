"""The conditioning inputs of the v2 networks, built the same way in training and fill.

A batch of **frames** (whole fields at fill time, crops around a window in
training) in normalized units becomes input channels, in this order::

    shown values (C) | shown mask (C) | active mask (C) | first guess (C)
    | distance to the nearest shown point (C)
    | for each context frame: its shown values (C) | its shown mask (C)

with ``C`` the number of variables. The first guess is computed here, over
the whole frame, from the shown points only (`.first_guess`), so a gap
at a window edge is estimated from data beyond the window. Windows are cut
from the channels afterwards; [`guess_of`][guess_of] finds the guess in them.

With context frames and ``use_context``, and a guess that
[follows context][sparsediff.method.first_guess.FirstGuess] (every built-in
one but ``"zero"``), the first guess is a space-time one: each context
frame that has shown points is filled on its own (same guess), their mean
is the *base*, and the guess is the base plus the guess of the frame's
departure from the base at its shown points. Near the data it is
the frame's own interpolation; deep in a large gap it follows the
neighbouring steps instead of flattening out (measured on OSTIA cloud gaps:
0.34 K against 1.0 K for the spatial Laplace fill, see the results page).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsediff.errors import InputError
from sparsediff.method.eof_guess import eof_background
from sparsediff.method.first_guess import first_guess, get_first_guess
from sparsediff.method.spec import SpreadCovariate

__all__ = [
    "DISTANCE_CAP",
    "Frames",
    "build_inputs",
    "centre_inputs",
    "distance_of",
    "distance_to_shown",
    "guess_of",
    "local_distance_of",
    "n_inputs",
    "spread_covariate",
]

#: Distances to the nearest shown point are counted up to this many grid steps.
DISTANCE_CAP = 64


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
    basis
        ``(N, C, M, *S)``: the model's EOFs over the frames' points, for an EOF
        background of the first guess ([`sparsediff.method.eof_guess`][sparsediff.method.eof_guess];
        ``None``: none).
    eof_prior
        ``(C, M)``: ``σ²/λ`` per variable and mode (with ``basis``).
    outside
        The sums ``Σ e eᵀ`` ``(N, 1 + K, C, M, M)`` and ``Σ e x`` ``(N, 1 + K, C, M)``
        over the field's observed points outside each frame (index 0) and
        its context frames (1..K): a training crop's; ``None`` for whole fields.
    """

    values: Tensor
    shown: Tensor
    active: Tensor
    context: Tensor | None = None
    context_shown: Tensor | None = None
    basis: Tensor | None = None
    eof_prior: Tensor | None = None
    outside: tuple[Tensor, Tensor] | None = None


def n_inputs(n_vars: int, n_context: int) -> int:
    """Number of input channels for ``n_vars`` variables and ``n_context`` frames."""
    return 5 * n_vars + 2 * n_vars * n_context


def guess_of(inputs: Tensor, n_vars: int) -> Tensor:
    """The first-guess channels of an input tensor ``(N, n_inputs, *S)``."""
    return inputs[:, 3 * n_vars : 4 * n_vars]


def centre_inputs(inputs: Tensor, n_vars: int, n_context: int) -> tuple[Tensor, Tensor]:
    """What the networks see: the value channels relative to the window's mean guess.

    The shown values, the first guess and the context values of each window
    (per variable) are shifted by the mean of the first guess over the
    window's active points; masks and distances are unchanged. The networks
    predict a departure from the guess, which does not depend on that shift,
    so they never see the absolute level of the data: a warmer climate than
    the training years (A1B's last decades lie 2-3 training standard
    deviations above the training mean) is not a new input distribution.

    Returns
    -------
    centred, offset
        The shifted inputs and the shift, ``(N, C, 1, ...)``.
    """
    c = n_vars
    dims = tuple(range(2, inputs.ndim))
    shown = inputs[:, c : 2 * c] > 0
    active = inputs[:, 2 * c : 3 * c] > 0
    guess = inputs[:, 3 * c : 4 * c]
    count = active.sum(dims, keepdim=True).clamp_min(1)
    offset = torch.where(active, guess, torch.zeros_like(guess)).sum(dims, keepdim=True) / count
    zero = torch.zeros((), dtype=inputs.dtype, device=inputs.device)
    parts = [
        torch.where(shown, inputs[:, :c] - offset, zero),
        inputs[:, c : 3 * c],
        torch.where(active, guess - offset, zero),
        inputs[:, 4 * c : 5 * c],
    ]
    base = 5 * c
    for k in range(n_context):
        v = inputs[:, base + 2 * c * k : base + 2 * c * k + c]
        m = inputs[:, base + 2 * c * k + c : base + 2 * c * (k + 1)]
        parts += [torch.where(m > 0, v - offset, zero), m]
    return torch.cat(parts, dim=1), offset


def distance_of(inputs: Tensor, n_vars: int) -> Tensor:
    """Distance (grid steps, capped at `DISTANCE_CAP`) to the nearest shown point."""
    scaled = inputs[:, 4 * n_vars : 5 * n_vars]
    return torch.expm1(scaled * math.log1p(DISTANCE_CAP)).round()  # whole steps, exactly


def local_distance_of(inputs: Tensor, n_vars: int) -> Tensor:
    """Mean of [`distance_of`][distance_of] over each point's 3×3 (3×3×3) neighbourhood.

    It tells a lone hidden point among shown ones (small: its neighbours are
    mostly shown, distance 0) from a point at the edge of a large gap (about 1
    or more: its neighbours further in are 2, 3 steps from the data), which
    the distance alone puts in the same place (both are 1 step from the
    data); deep inside a gap it is the distance. Window edges repeat the edge
    values.
    """
    d = distance_of(inputs, n_vars)
    nd = d.ndim - 2
    pool = F.avg_pool2d if nd == 2 else F.avg_pool3d
    return pool(F.pad(d, [1, 1] * nd, mode="replicate"), 3, stride=1)


SPREAD_COVARIATES: tuple[str, ...] = get_args(SpreadCovariate)
"""What the spread factors of a latent model are binned by (see `spread_covariate`)."""


def spread_covariate(inputs: Tensor, n_vars: int, name: str) -> Tensor:
    """The quantity the spread factors are binned by, at every point of the windows.

    ``"distance"``: [`distance_of`][distance_of]; ``"local_distance"``:
    [`local_distance_of`][local_distance_of].
    """
    if name == "distance":
        return distance_of(inputs, n_vars)
    if name == "local_distance":
        return local_distance_of(inputs, n_vars)
    raise InputError(f"unknown spread covariate {name!r}; expected one of {SPREAD_COVARIATES}")


def distance_to_shown(
    shown: Tensor, periodic: Sequence[bool] | None = None, cap: int = DISTANCE_CAP
) -> Tensor:
    """Chessboard distance (grid steps) from every point to the nearest shown point.

    Grown one step at a time by max-pooling the shown mask (a periodic dim
    wraps), so it is exact for the chessboard metric and capped at ``cap``
    (also where nothing is shown).
    """
    nd = shown.ndim - 2
    wrap = (False,) * nd if periodic is None else tuple(bool(p) for p in periodic)
    pool = F.max_pool2d if nd == 2 else F.max_pool3d
    reached = shown.float()
    dist = torch.where(shown.bool(), 0.0, float(cap)).to(torch.float32)
    for step in range(1, cap):
        if bool((reached > 0).all()):
            break
        h = reached
        for ax in range(nd):  # pad the last dims first (F.pad order)
            dim = 2 + ax
            if wrap[ax] and h.shape[dim] > 1:
                h = torch.cat([h.narrow(dim, h.shape[dim] - 1, 1), h, h.narrow(dim, 0, 1)], dim)
            else:
                zero = torch.zeros_like(h.narrow(dim, 0, 1))
                h = torch.cat([zero, h, zero], dim)
        grown = pool(h, kernel_size=3, stride=1)
        dist = torch.where((grown > 0) & (reached == 0), float(step), dist)
        reached = grown
    return dist


def _context_base(
    frames: Frames, guess: str, periodic: Sequence[bool] | None, shown_ctx: Tensor
) -> Tensor:
    """Mean of the context frames' own first guesses (0 where no frame has data)."""
    ctx = frames.context
    assert ctx is not None
    n, k = ctx.shape[:2]
    rest = ctx.shape[2:]
    active = frames.active.bool().unsqueeze(1).expand(n, k, *rest)
    flat = first_guess(
        guess,
        ctx.float().reshape(n * k, *rest),
        shown_ctx.reshape(n * k, *rest),
        active.reshape(n * k, *rest),
        periodic=periodic,
    ).reshape(n, k, *rest)
    dims = tuple(range(3, ctx.ndim))
    has = shown_ctx.any(dim=dims, keepdim=True).to(flat.dtype)  # (N, K, C, 1...)
    return (flat * has).sum(1) / has.sum(1).clamp_min(1.0)


def _backgrounds(
    frames: Frames, shown_values: Tensor, shown: Tensor, ctx: Tensor | None, ctx_ok: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """The EOF background of each frame and of each of its context frames."""
    basis, prior, outside = frames.basis, frames.eof_prior, frames.outside
    assert basis is not None
    if prior is None:
        raise InputError("frames: an EOF basis needs its eof_prior")

    def part(k: int) -> tuple[Tensor, Tensor] | None:
        return None if outside is None else (outside[0][:, k], outside[1][:, k])

    bg = eof_background(shown_values, shown, basis, prior, part(0))
    if ctx is None or ctx_ok is None:
        return bg, None
    ctx_bg = [
        eof_background(ctx[:, k], ctx_ok[:, k], basis, prior, part(1 + k))
        for k in range(ctx.shape[1])
    ]
    return bg, torch.stack(ctx_bg, dim=1)


def build_inputs(
    frames: Frames,
    *,
    guess: str,
    n_context: int,
    periodic: Sequence[bool] | None = None,
    use_context: bool = True,
    context_weight: float = 1.0,
) -> Tensor:
    """Input channels of a batch of frames.

    Parameters
    ----------
    frames
        The frames; ``context`` must hold ``n_context`` frames when
        ``n_context > 0`` (missing neighbours are all-unshown frames).
    guess
        A name of [`FIRST_GUESSES`][sparsediff.method.first_guess.FIRST_GUESSES].
    n_context
        Context frames the model expects.
    periodic
        Per spatial dim, whether the frames wrap around (global longitude).
    use_context
        Make the first guess a space-time one from the context frames (see
        the module docstring); ignored by a guess that does not follow context.
    context_weight
        Weight ``w`` of the neighbouring steps in that guess: ``w * base +
        guess(shown - w * base)``; 1 follows them fully, 0 is the spatial
        guess (see [`sparsediff.method.context_weight`][sparsediff.method.context_weight]).

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
    ctx_values = ctx_ok = None
    if n_context:
        ctx, ctx_shown = frames.context, frames.context_shown
        expected = (values.shape[0], n_context, *values.shape[1:])
        if ctx is None or ctx_shown is None or tuple(ctx.shape) != expected:
            got = None if ctx is None else tuple(ctx.shape)
            raise InputError(f"frames: context must have shape {expected}, got {got}")
        ctx_ok = ctx_shown.bool() & active.unsqueeze(1)
        ctx_values = torch.where(ctx_ok, ctx.float(), zero)
    bg, shown_res, ctx_res = None, shown_values, ctx_values
    if frames.basis is not None:  # the guess of the departures from the EOF background
        bg, ctx_bg = _backgrounds(frames, shown_values, shown, ctx_values, ctx_ok)
        shown_res = torch.where(shown, shown_values - bg, zero)
        if ctx_bg is not None and ctx_ok is not None and ctx_values is not None:
            ctx_res = torch.where(ctx_ok, ctx_values - ctx_bg, zero)
    spacetime = bool(n_context and use_context and get_first_guess(guess).follows_context)
    if spacetime:
        assert ctx_res is not None
        assert ctx_ok is not None
        frames = Frames(values, shown, active, ctx_res, ctx_ok)
        base = _context_base(frames, guess, periodic, ctx_ok)
        if context_weight != 1.0:  # 1: exactly the guess of models before the weight
            base = base * context_weight
        g = base + first_guess(guess, shown_res - base, shown, active, periodic=periodic)
    else:
        g = first_guess(guess, shown_res, shown, active, periodic=periodic)
    if bg is not None:
        g = g + bg
    if bg is not None or spacetime:
        g = torch.where(shown, shown_values, torch.where(active, g, zero))
    dist = distance_to_shown(shown, periodic)
    scaled = torch.log1p(dist) / math.log1p(DISTANCE_CAP)
    parts = [shown_values, shown.float(), active.float(), g, scaled.to(values.dtype)]
    if ctx_values is not None and ctx_ok is not None:
        for k in range(n_context):
            parts += [ctx_values[:, k], ctx_ok[:, k].float()]
    return torch.cat(parts, dim=1)
