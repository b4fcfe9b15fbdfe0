"""Inference tiling: cut a large domain into training-sized windows and blend them back.

A [`TilePlan`][TilePlan] covers an N-dimensional spatial domain (N = 2 or 3; the
spatial dims are always the **last** N dims of the arrays it handles) with
windows of the training size that overlap by ``overlap`` points:

* along an ordinary dim the tiles start every ``window - overlap`` points and
  the last tile is aligned to the end of the dim, so the domain is covered
  without padding (the last overlap may be larger);
* along a **periodic** dim (the longitude of a global grid) tile indices wrap
  around modulo the size, and the stride is shortened so that the tiles are
  spread evenly around the circle with at least ``overlap`` points shared by
  neighbours — there is no seam at the date line;
* a non-periodic dim shorter than the window is padded (``reflect`` or
  ``edge``) on both sides; the padding is recorded in the tile and cropped on
  stitching. A periodic dim shorter than the window simply wraps.

[`TilePlan.accumulator`][TilePlan.accumulator] (an [`Accumulator`][Accumulator], fed tile by tile)
blends
the tile outputs with smooth weights ([`blend_weights`][blend_weights]: cosine ramps over the
overlap, 1 in the centre, positive everywhere) normalised per point. Where all
tiles covering a point agree bit-for-bit, the result is that value exactly, so
stitching the extracted tiles themselves returns the input unchanged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from sparsediff.errors import InputError

__all__ = [
    "Accumulator",
    "Tile",
    "TilePlan",
    "blend_weights",
    "plan_tiles",
    "window_starts",
]

PadMode = Literal["reflect", "edge"]

# (window slice, global slice) runs of one tile along one dim
_Segments = tuple[tuple[slice, slice], ...]


@dataclass(frozen=True, eq=False)
class Tile:
    """One window of a [`TilePlan`][TilePlan].

    Attributes
    ----------
    index
        Position of the tile in the plan (its order in `TilePlan.tiles`).
    origin
        Global index of the tile's first point along each spatial dim (in
        ``[0, size)``; 0 along a padded dim, which has a single tile). Unique per
        tile; used to derive per-tile random seeds.
    indices
        Per spatial dim, the global index that each window position reads
        (wrapped for periodic dims, reflected/clamped in the padding).
    segments
        Per spatial dim, the ``(window slice, global slice)`` runs that are pasted
        back on stitching (the padding is left out; a wrapped tile has two or more).
    pad
        Per spatial dim, the ``(before, after)`` padding of the window.
    """

    index: int
    origin: tuple[int, ...]
    indices: tuple[np.ndarray, ...] = field(repr=False)
    segments: tuple[_Segments, ...] = field(repr=False)
    pad: tuple[tuple[int, int], ...]


@dataclass(frozen=True, eq=False)
class _Span:
    """The placement of a window along one dim."""

    origin: int
    indices: np.ndarray
    segments: _Segments
    pad: tuple[int, int]
    contiguous: bool  # indices are origin, origin + 1, ... (extract by slicing)


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start indices of windows along one non-periodic dim.

    Windows start every ``stride`` points; if the last one does not end at
    ``size``, one more window aligned to the end is added, so a stride not larger
    than the window covers the whole dim.

    Parameters
    ----------
    size
        Length of the dim.
    window
        Window length, ``1 <= window <= size``.
    stride
        Distance between window starts, ``>= 1``.

    Returns
    -------
    list of int
        Increasing start indices; the last one is ``size - window``.
    """
    if not 1 <= window <= size or stride < 1:
        raise InputError(f"bad window {window} / stride {stride} for a dim of size {size}")
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _reflect(g: np.ndarray, n: int, mode: str) -> np.ndarray:
    if mode == "edge" or n == 1:
        return np.clip(g, 0, n - 1)
    period = 2 * (n - 1)
    r = np.mod(g, period)
    return np.where(r >= n, period - r, r)


def _spans(n: int, w: int, o: int, periodic: bool, pad_mode: str) -> list[_Span]:
    positions = np.arange(w)
    if periodic:
        count = math.ceil(n / (w - o))
        spans = []
        for start in [(i * n) // count for i in range(count)]:
            segs: list[tuple[slice, slice]] = []
            pos, g = 0, start
            while pos < w:
                run = min(w - pos, n - g)
                segs.append((slice(pos, pos + run), slice(g, g + run)))
                pos, g = pos + run, 0
            spans.append(_Span(start, (start + positions) % n, tuple(segs), (0, 0), len(segs) == 1))
        return spans
    if n < w:
        before = (w - n) // 2
        indices = _reflect(positions - before, n, pad_mode)
        one: _Segments = ((slice(before, before + n), slice(0, n)),)
        return [_Span(0, indices, one, (before, w - n - before), False)]
    return [
        _Span(s, s + positions, ((slice(0, w), slice(s, s + w)),), (0, 0), True)
        for s in window_starts(n, w, w - o)
    ]


def _ramp(w: int, o: int) -> np.ndarray:
    if o <= 0:
        return np.ones(w)
    t = np.minimum((np.arange(w) + 0.5) / o, 1.0)
    up = np.sin(0.5 * np.pi * t) ** 2
    return np.minimum(up, up[::-1])


def blend_weights(window: Sequence[int] | int, overlap: Sequence[int] | int) -> np.ndarray:
    """Smooth blending weights of one window.

    The outer product over dims of 1D profiles that rise as ``sin²`` over the
    first ``overlap`` points, are 1 in the centre, and fall symmetrically at the
    end. Two neighbours shifted by ``window - overlap`` sum to exactly 1 in their
    overlap (a partition of unity), and every weight is strictly positive.

    Parameters
    ----------
    window
        Window size per dim (an int is one dim).
    overlap
        Ramp length per dim (an int applies to every dim), ``0 <= overlap <= window``.

    Returns
    -------
    numpy.ndarray
        ``float64`` array of shape ``window`` with values in ``(0, 1]``.
    """
    win = (int(window),) if isinstance(window, int | np.integer) else tuple(map(int, window))
    ov = _per_dim(overlap, len(win), "overlap")
    if any(w < 1 for w in win) or any(not 0 <= o <= w for o, w in zip(ov, win)):
        raise InputError(f"bad blend window {win} / overlap {ov}")
    out = np.ones((), dtype=np.float64)
    for w, o in zip(win, ov):
        out = np.multiply.outer(out, _ramp(w, o))
    return out


def _per_dim(value: Any, ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int | np.integer):
        return (int(value),) * ndim
    out = tuple(int(v) for v in value)
    if len(out) != ndim:
        raise InputError(f"{name} has {len(out)} values for {ndim} spatial dims: {out}")
    return out


class TilePlan:
    """Tiles covering a spatial domain; build one with [`plan_tiles`][plan_tiles].

    Attributes
    ----------
    shape, window, overlap, periodic, pad_mode
        The plan's parameters (per spatial dim).
    tiles
        All tiles, in C order over the per-dim tile grid.
    grid
        Number of tiles along each spatial dim.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        window: tuple[int, ...],
        overlap: tuple[int, ...],
        periodic: tuple[bool, ...],
        pad_mode: PadMode,
    ) -> None:
        self.shape = shape
        self.window = window
        self.overlap = overlap
        self.periodic = periodic
        self.pad_mode = pad_mode
        self._spans = [
            _spans(n, w, o, p, pad_mode) for n, w, o, p in zip(shape, window, overlap, periodic)
        ]
        self.grid = tuple(len(s) for s in self._spans)
        self.tiles: list[Tile] = []
        for i, combo in enumerate(itertools.product(*self._spans)):
            self.tiles.append(
                Tile(
                    index=i,
                    origin=tuple(s.origin for s in combo),
                    indices=tuple(s.indices for s in combo),
                    segments=tuple(s.segments for s in combo),
                    pad=tuple(s.pad for s in combo),
                )
            )
        self._weights = blend_weights(window, overlap)

    @property
    def ndim(self) -> int:
        """Number of spatial dims."""
        return len(self.shape)

    @property
    def weights(self) -> np.ndarray:
        """Default blending weights, [`blend_weights`][blend_weights] of the window and overlap."""
        return self._weights

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)

    def __getitem__(self, index: int) -> Tile:
        return self.tiles[index]

    def __repr__(self) -> str:
        return (
            f"TilePlan(shape={self.shape}, window={self.window}, overlap={self.overlap}, "
            f"periodic={self.periodic}, tiles={len(self)})"
        )

    def _check_spatial(self, array_shape: tuple[int, ...], expected: tuple[int, ...], what: str):
        if len(array_shape) < self.ndim or tuple(array_shape[-self.ndim :]) != expected:
            raise InputError(
                f"{what} has shape {tuple(array_shape)}; its last {self.ndim} dims must be "
                f"{expected}"
            )

    def extract(self, array: Any, tile: Tile) -> Any:
        """Cut one tile out of an array.

        Parameters
        ----------
        array
            Array (numpy, or anything supporting slicing and `numpy.take`,
            such as dask) of shape ``(..., *shape)``.
        tile
            A tile of this plan.

        Returns
        -------
        array
            Shape ``(..., *window)``; leading dims untouched. A view of ``array``
            when the tile neither wraps nor is padded.
        """
        self._check_spatial(tuple(array.shape), self.shape, "array")
        lead = array.ndim - self.ndim
        out = array
        for d, span_idx in enumerate(tile.indices):
            axis = lead + d
            segs = tile.segments[d]
            if len(segs) == 1 and tile.pad[d] == (0, 0):
                index: list[Any] = [slice(None)] * out.ndim
                index[axis] = segs[0][1]
                out = out[tuple(index)]
            else:
                out = np.take(out, span_idx, axis=axis)
        return out

    def accumulator(
        self, weights: np.ndarray | None = None, *, variance_preserving: bool = False
    ) -> Accumulator:
        """An empty [`Accumulator`][Accumulator] for stitching tiles incrementally.

        Parameters
        ----------
        weights
            Blending weights of shape ``window`` (default [`weights`][weights]).
        variance_preserving
            Blend independent zero-mean outputs keeping their variance (see
            [`Accumulator`][Accumulator]).
        """
        return Accumulator(self, weights, variance_preserving=variance_preserving)


class Accumulator:
    """Incremental weighted blending of tile outputs (see `TilePlan.accumulator`).

    Sums ``weight * output`` and ``weight`` per point in ``float64``, and remembers
    whether every contribution to a point was bit-identical; [`result`][result] returns
    that common value where they were, the weighted mean elsewhere, and NaN where
    no tile was added. NaN in any contribution gives NaN.

    Parameters
    ----------
    plan
        The tile plan.
    weights
        Blending weights of shape ``plan.window``, all finite and positive
        (default ``plan.weights``).
    variance_preserving
        Divide by ``sqrt(sum(weight**2))`` instead of ``sum(weight)``: for
        zero-mean outputs that are independent between tiles (the random part
        of ensemble members), the blend then keeps their variance in the
        overlaps instead of shrinking it there (a plain average of two
        independent samples halves the variance: visible bands of low spread
        at tile edges). No identical-contribution shortcut in this mode.
    """

    def __init__(
        self,
        plan: TilePlan,
        weights: np.ndarray | None = None,
        *,
        variance_preserving: bool = False,
    ) -> None:
        self.plan = plan
        self.variance_preserving = bool(variance_preserving)
        self._weights = self._check_weights(weights)
        self.shape = plan.shape
        self._wsum = np.zeros(self.shape, dtype=np.float64)
        self._w2sum = np.zeros(self.shape, dtype=np.float64)
        # (sum of weight * output in float64, first output, all outputs identical so far)
        self._state: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _check_weights(self, weights: np.ndarray | None) -> np.ndarray:
        if weights is None:
            return self.plan.weights
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != self.plan.window:
            raise InputError(f"blend weights have shape {w.shape}, expected {self.plan.window}")
        if not (np.isfinite(w).all() and (w > 0).all()):
            raise InputError("blend weights must be finite and strictly positive")
        return w

    def add(self, tile: Tile, output: np.ndarray, weight: np.ndarray | None = None) -> None:
        """Blend in the output of one tile.

        Parameters
        ----------
        tile
            The tile of the plan the output belongs to.
        output
            Array of shape ``(..., *window)``; the leading dims must be the same for
            every tile.
        weight
            Weights for this tile only (shape ``window``); default the accumulator's.
        """
        out = np.asarray(output)
        self.plan._check_spatial(out.shape, self.plan.window, "tile output")
        wts = self._weights if weight is None else self._check_weights(weight)
        lead = out.shape[: out.ndim - self.plan.ndim]
        if self._state is None:
            dtype = out.dtype if np.issubdtype(out.dtype, np.floating) else np.dtype(np.float64)
            self._state = (
                np.zeros(lead + self.shape, dtype=np.float64),
                np.zeros(lead + self.shape, dtype=dtype),
                np.ones(lead + self.shape, dtype=bool),
            )
        total, first_all, same = self._state
        if total.shape[: total.ndim - self.plan.ndim] != lead:
            raise InputError(
                f"tile output leading dims {lead} differ from earlier tiles' "
                f"{total.shape[: total.ndim - self.plan.ndim]}"
            )
        for combo in itertools.product(*tile.segments):
            wsl: tuple[slice, ...] = tuple(w for w, _ in combo)
            gsl: tuple[slice, ...] = tuple(g for _, g in combo)
            full_w: tuple[Any, ...] = (Ellipsis, *wsl)
            full_g: tuple[Any, ...] = (Ellipsis, *gsl)
            values = out[full_w]
            weight_part = wts[wsl]
            first = first_all[full_g]
            np.copyto(first, values, where=np.broadcast_to(self._wsum[gsl] == 0, first.shape))
            same[full_g] &= values == first
            total[full_g] += values * weight_part
            self._wsum[gsl] += weight_part
            self._w2sum[gsl] += weight_part**2

    def result(self) -> np.ndarray:
        """The blended array, shape ``(..., *plan.shape)``.

        The dtype is that of the tile outputs (``float64`` for integer outputs).
        Points no tile reached are NaN.
        """
        if self._state is None:
            raise InputError("no tile output was added to the accumulator")
        total, first, same = self._state
        covered = self._wsum > 0
        if self.variance_preserving:
            with np.errstate(invalid="ignore", divide="ignore"):
                out = total / np.where(covered, np.sqrt(self._w2sum), np.nan)
            return out.astype(first.dtype, copy=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / np.where(covered, self._wsum, np.nan)
        out = np.where(same & covered, first, mean)
        return out.astype(first.dtype, copy=False)


def plan_tiles(
    shape: Sequence[int],
    window: Sequence[int] | int,
    *,
    overlap: Sequence[int] | int | None = None,
    periodic: Sequence[bool] | bool | None = None,
    pad_mode: PadMode = "reflect",
) -> TilePlan:
    """Plan the tiles that cover a spatial domain.

    Parameters
    ----------
    shape
        Size of each spatial dim (2 or 3 dims).
    window
        Tile size per dim (an int applies to every dim), usually the training
        window.
    overlap
        Points shared by neighbouring tiles per dim, ``0 <= overlap < window``;
        default ``window // 4``.
    periodic
        Per dim, whether the dim wraps around (the longitude of a global grid);
        default none.
    pad_mode
        How a non-periodic dim shorter than the window is padded: ``"reflect"``
        (mirror without repeating the edge) or ``"edge"`` (repeat the edge value).

    Returns
    -------
    TilePlan

    Raises
    ------
    InputError
        For sizes that do not fit (non-positive sizes, overlap not below the window,
        mismatched lengths).
    """
    try:
        dims = tuple(int(n) for n in shape)
    except TypeError as err:
        raise InputError(f"tile plan shape must be a sequence of ints, got {shape!r}") from err
    if not dims or any(n < 1 for n in dims):
        raise InputError(f"tile plan shape must be non-empty and positive, got {dims}")
    win = _per_dim(window, len(dims), "window")
    if any(w < 1 for w in win):
        raise InputError(f"tile window must be positive, got {win}")
    ov = tuple(w // 4 for w in win) if overlap is None else _per_dim(overlap, len(dims), "overlap")
    for o, w in zip(ov, win):
        if not 0 <= o < w:
            raise InputError(f"tile overlap {ov} must be >= 0 and smaller than the window {win}")
    if periodic is None or isinstance(periodic, bool | np.bool_):
        per = (bool(periodic),) * len(dims)
    else:
        per = tuple(bool(p) for p in periodic)
        if len(per) != len(dims):
            raise InputError(f"periodic has {len(per)} values for {len(dims)} spatial dims")
    if pad_mode not in ("reflect", "edge"):
        raise InputError(f"pad_mode must be 'reflect' or 'edge', got {pad_mode!r}")
    return TilePlan(dims, win, ov, per, pad_mode)
