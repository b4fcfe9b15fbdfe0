"""Synthetic gap patterns: where to hide data.

Gap patterns serve two purposes:

* **holdout** for evaluation — hide a known share of the observed points with a
  realistic shape, fill, and score the fill on the hidden points;
* **hide and reconstruct** during training (DESIGN §3) — hide a further random
  share of the observed points from the encoder and still score them.

Every mask follows the package convention: ``True`` means **kept** (observed),
``False`` means hidden. Masks are plain `numpy.ndarray` of ``bool`` over
2 or 3 spatial dims; the fraction of ``False`` equals ``round(missing * size)``
points exactly, for every pattern, so a ``"boxes:0.3"`` holdout hides 30 % of
the points whatever the grid size.

Patterns ([`PATTERNS`][PATTERNS]):

``mcar``
    independent pixels ("missing completely at random").
``boxes``
    random axis-aligned boxes (rectangles in 2D, cuboids in 3D) of mixed sizes
    and aspect ratios.
``stripes``
    random full-length bands one or a few points wide across one axis: rows or
    columns in 2D, slabs (whole slices) in 3D — scan-line drop-outs, missing
    time steps, missing slices.
``swath``
    satellite-like slanted bands: the kept swaths alternate with slanted gaps
    between them; in 3D the swath position drifts along the first dim (orbits
    of successive days).
``cloud``
    thresholded smooth noise (FFT-filtered white noise with a power-law
    spectrum) — the shape of cloud cover over an infrared SST image.

The structured patterns build their shape until it covers the target count;
the last shape added is cut (in raster order) so that the count is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from sparsediff.errors import InputError

__all__ = ["PATTERNS", "gap_mask", "parse_pattern", "random_training_mask"]

PATTERNS: tuple[str, ...] = ("mcar", "boxes", "stripes", "swath", "cloud")
"""Names of the gap patterns, in the order used by `random_training_mask`."""


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(n) for n in shape)
    except TypeError as err:
        raise InputError(f"gap mask shape must be a sequence of ints, got {shape!r}") from err
    if len(out) not in (2, 3):
        raise InputError(f"gap mask shape must have 2 or 3 dims, got {out!r}")
    if any(n < 1 for n in out):
        raise InputError(f"gap mask shape must be positive in every dim, got {out!r}")
    return out


def _check_missing(missing: float) -> float:
    try:
        value = float(missing)
    except (TypeError, ValueError) as err:
        raise InputError(f"missing fraction must be a number, got {missing!r}") from err
    if not 0.0 <= value < 1.0:
        raise InputError(f"missing fraction must be in [0, 1), got {missing!r}")
    return value


def _log_uniform_int(rng: np.random.Generator, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]``, log-uniformly distributed (mixed small and large sizes)."""
    if hi <= lo:
        return lo
    value = math.exp(rng.uniform(math.log(lo), math.log(hi + 1)))
    return int(min(hi, max(lo, math.floor(value))))


def _random_free_point(hidden: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
    """A uniformly random point that is not hidden yet (rejection sampling)."""
    size = hidden.size
    flat = hidden.reshape(-1)
    while True:
        i = int(rng.integers(size))
        if not flat[i]:
            return tuple(int(c) for c in np.unravel_index(i, hidden.shape))


def _hide_shapes(
    shape: tuple[int, ...],
    k: int,
    rng: np.random.Generator,
    next_region: Callable[[tuple[int, ...]], tuple[slice, ...]],
) -> np.ndarray:
    """Hide shapes from ``next_region(hidden)`` until exactly ``k`` points are hidden.

    Each shape is placed around a random point not hidden yet, so every shape adds
    at least one point and the loop ends. The last shape is cut in raster order.
    """
    hidden = np.zeros(shape, dtype=bool)
    count = 0
    while count < k:
        region = next_region(_random_free_point(hidden, rng))
        view = hidden[region]
        new = ~view
        n_new = int(new.sum())
        if count + n_new <= k:
            view[...] = True
            count += n_new
        else:
            take = np.flatnonzero(new)[: k - count]
            view[np.unravel_index(take, view.shape)] = True  # the view may be strided
            count = k
    return hidden


def _boxes(shape: tuple[int, ...], k: int, rng: np.random.Generator) -> np.ndarray:
    def region(point: tuple[int, ...]) -> tuple[slice, ...]:
        out = []
        for n, c in zip(shape, point):
            side = _log_uniform_int(rng, max(1, n // 16), max(1, n // 3))
            start = int(np.clip(c - int(rng.integers(side)), 0, n - side))
            out.append(slice(start, start + side))
        return tuple(out)

    return _hide_shapes(shape, k, rng, region)


def _stripes(shape: tuple[int, ...], k: int, rng: np.random.Generator) -> np.ndarray:
    ndim = len(shape)
    # half of the masks have stripes across a single axis, half across all axes
    axes = [int(rng.integers(ndim))] if rng.random() < 0.5 else list(range(ndim))

    def region(point: tuple[int, ...]) -> tuple[slice, ...]:
        axis = axes[int(rng.integers(len(axes)))]
        n = shape[axis]
        width = _log_uniform_int(rng, 1, max(1, n // 8))
        start = int(np.clip(point[axis] - int(rng.integers(width)), 0, n - width))
        out = [slice(None)] * ndim
        out[axis] = slice(start, start + width)
        return tuple(out)

    return _hide_shapes(shape, k, rng, region)


def _hide_top(score: np.ndarray, k: int) -> np.ndarray:
    """Hide the ``k`` points of highest score (exact count, threshold at the quantile)."""
    hidden = np.zeros(score.shape, dtype=bool)
    if k > 0:
        flat = score.reshape(-1)
        top = np.argpartition(-flat, k - 1)[:k]
        hidden.reshape(-1)[top] = True
    return hidden


def _swath(shape: tuple[int, ...], k: int, rng: np.random.Generator) -> np.ndarray:
    ny, nx = shape[-2:]
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    y, x = grids[-2], grids[-1]
    if rng.random() < 0.5:  # along-track direction: either of the last two axes
        y, x = x, y
    angle = math.radians(rng.uniform(15.0, 60.0)) * (1 if rng.random() < 0.5 else -1)
    across = x * math.cos(angle) - y * math.sin(angle)
    # gentle curvature of the ground track
    scale = float(max(ny, nx))
    across += (
        rng.uniform(0.0, 0.05)
        * scale
        * np.sin(2 * math.pi * y / (scale * rng.uniform(1.0, 3.0)) + rng.uniform(0, 2 * math.pi))
    )
    short, long = float(min(ny, nx)), float(max(ny, nx))
    period = rng.uniform(max(4.0, short / 3.0), max(5.0, math.sqrt(short * long)))
    phase: float | np.ndarray = rng.uniform(0.0, period)
    if len(shape) == 3:  # successive slices (days, levels): the swaths drift
        phase = phase + grids[0] * rng.uniform(0.0, 0.25 * period)
    score = np.mod(across + phase, period)
    return _hide_top(score, k)


def _cloud(shape: tuple[int, ...], k: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(shape)
    freqs = [np.fft.fftfreq(n) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
    k2 = sum(
        f.reshape([-1 if i == j else 1 for j in range(len(shape))]) ** 2
        for i, f in enumerate(freqs)
    )
    # power-law slope; + (ndim - 2) keeps the roughness of 2D slices the same in 3D
    beta = rng.uniform(3.0, 4.5) + (len(shape) - 2)
    k0 = 1.0 / rng.uniform(max(4.0, min(shape) / 3.0), max(6.0, float(max(shape))))  # outer scale
    amplitude = (k2 + k0**2) ** (-beta / 4.0)
    field = np.fft.irfftn(np.fft.rfftn(noise) * amplitude, s=shape, axes=range(len(shape)))
    # a little white noise breaks ties on tiny grids and roughens the cloud edges
    field = field / (field.std() + 1e-12) + 1e-3 * rng.standard_normal(shape)
    return _hide_top(field, k)


def gap_mask(
    shape: Sequence[int],
    pattern: str,
    missing: float,
    *,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """A random gap mask of a given pattern and missing fraction.

    Parameters
    ----------
    shape
        2 or 3 spatial sizes.
    pattern
        One of [`PATTERNS`][PATTERNS].
    missing
        Target missing fraction in ``[0, 1)``; exactly ``round(missing * prod(shape))``
        points are hidden.
    rng
        Random generator to draw from (advanced by the call).
    seed
        Seed of a fresh generator when ``rng`` is not given; the same seed gives
        the same mask.

    Returns
    -------
    numpy.ndarray
        ``bool`` array of ``shape``: ``True`` = kept, ``False`` = hidden.

    Raises
    ------
    InputError
        For an unknown pattern, a fraction outside ``[0, 1)``, a shape that is not
        2D or 3D, or both ``rng`` and ``seed`` given.
    """
    dims = _check_shape(shape)
    fraction = _check_missing(missing)
    if pattern not in PATTERNS:
        raise InputError(f"unknown gap pattern {pattern!r}; expected one of {', '.join(PATTERNS)}")
    if rng is not None and seed is not None:
        raise InputError("give either rng or seed to gap_mask, not both")
    gen = rng if rng is not None else np.random.default_rng(seed)
    size = math.prod(dims)
    k = round(fraction * size)
    if k == 0:
        return np.ones(dims, dtype=bool)
    if pattern == "mcar":
        hidden = np.zeros(dims, dtype=bool)
        hidden.reshape(-1)[gen.choice(size, size=k, replace=False)] = True
    elif pattern == "boxes":
        hidden = _boxes(dims, k, gen)
    elif pattern == "stripes":
        hidden = _stripes(dims, k, gen)
    elif pattern == "swath":
        hidden = _swath(dims, k, gen)
    else:
        hidden = _cloud(dims, k, gen)
    return ~hidden


def parse_pattern(spec: str) -> tuple[str, float]:
    """Parse a gap-pattern spec string such as ``"mcar:0.5"`` or ``"boxes:0.3"``.

    Parameters
    ----------
    spec
        ``"<pattern>:<missing fraction>"``; the pattern is one of [`PATTERNS`][PATTERNS]
        (case-insensitive) and the fraction is in ``[0, 1)``.

    Returns
    -------
    tuple of (str, float)
        The pattern name and the missing fraction.

    Raises
    ------
    InputError
        If the spec is not of that form.
    """
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise InputError(
            f"bad gap pattern spec {spec!r}; expected '<pattern>:<fraction>' such as 'mcar:0.5'"
        )
    name, _, value = spec.partition(":")
    name = name.strip().lower()
    if name not in PATTERNS:
        raise InputError(
            f"unknown gap pattern {name!r} in {spec!r}; expected one of {', '.join(PATTERNS)}"
        )
    try:
        fraction = float(value.strip())
    except ValueError as err:
        raise InputError(f"bad missing fraction {value!r} in gap pattern spec {spec!r}") from err
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"missing fraction in gap pattern spec {spec!r} must be in [0, 1)")
    return name, fraction


def random_training_mask(
    shape: Sequence[int],
    rng: np.random.Generator,
    *,
    rate: tuple[float, float] | float = (0.1, 0.7),
    patterns: Sequence[str] = PATTERNS,
) -> np.ndarray:
    """The hide-and-reconstruct mask of one training sample.

    Draws a missing rate uniformly in ``rate`` and a pattern uniformly from
    ``patterns``, so that over many samples the encoder sees pixels, blocks,
    stripes, swaths and clouds at many rates.

    Parameters
    ----------
    shape
        2 or 3 spatial sizes of the training window.
    rng
        Random generator (advanced by the call; an int seeds a fresh one).
    rate
        ``(low, high)`` range of the hidden fraction, ``0 <= low <= high < 1``,
        or one fixed fraction.
    patterns
        Patterns to draw from; a subset of [`PATTERNS`][PATTERNS].

    Returns
    -------
    numpy.ndarray
        ``bool`` array of ``shape``: ``True`` = shown to the encoder, ``False`` = hidden.

    Raises
    ------
    InputError
        For a bad rate range or an unknown pattern.
    """
    if isinstance(rate, int | float):
        low = high = float(rate)
    else:
        try:
            low, high = (float(r) for r in rate)
        except (TypeError, ValueError) as err:
            raise InputError(f"training mask rate must be (low, high), got {rate!r}") from err
    if not 0.0 <= low <= high < 1.0:
        raise InputError(f"training mask rate must satisfy 0 <= low <= high < 1, got {rate!r}")
    names = tuple(patterns)
    if not names:
        raise InputError("training mask patterns must not be empty")
    unknown = [p for p in names if p not in PATTERNS]
    if unknown:
        raise InputError(
            f"unknown gap pattern(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(PATTERNS)}"
        )
    gen = np.random.default_rng(rng)
    fraction = float(gen.uniform(low, high)) if high > low else low
    pattern = names[int(gen.integers(len(names)))]
    return gap_mask(shape, pattern, fraction, rng=gen)
