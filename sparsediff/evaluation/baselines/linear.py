"""Separable linear interpolation over the spatial dims."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.ndimage as ndi

from sparsediff.evaluation.baselines.base import Baseline

__all__ = ["LinearInterp"]


def _take(a: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, j, axis=-1)


def _axis_estimates(
    v: np.ndarray, obs: np.ndarray, inv: np.ndarray, axis: int, periodic: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """1-D linear estimates along ``axis`` for every point, as weighted sums.

    Returns ``(num2, den2, num1, den1)``: the two-sided (interpolation)
    estimate times its weight ``1/span`` and that weight, and the same for
    one-sided (nearest observed point on the line, weight ``1/distance``).
    A bracket is not used across an invalid point.
    """
    vv, oo, ii = (np.moveaxis(a, axis, -1) for a in (v, obs, inv))
    length = vv.shape[-1]
    if periodic:
        vv, oo, ii = (np.concatenate([a, a, a], axis=-1) for a in (vv, oo, ii))
    n = vv.shape[-1]
    pos = np.arange(n)
    prev = np.maximum.accumulate(np.where(oo, pos, -1), axis=-1)
    nxt = np.minimum.accumulate(np.where(oo, pos, n)[..., ::-1], axis=-1)[..., ::-1]
    pc, nc = prev.clip(0, n - 1), nxt.clip(0, n - 1)
    cinv = np.cumsum(ii, axis=-1)
    has_p = (prev >= 0) & (_take(cinv, pc) == cinv)
    has_n = (nxt < n) & (_take(cinv, nc) == cinv)
    vp = np.where(has_p, _take(vv, pc), 0.0)
    vn = np.where(has_n, _take(vv, nc), 0.0)
    both = has_p & has_n & (nxt > prev)
    span = np.where(both, nxt - prev, 1).astype(np.float64)
    w2 = np.where(both, 1.0 / span, 0.0)
    num2 = w2 * (vp + (vn - vp) * (pos - prev) / span)
    d_p = np.where(has_p & ~both, pos - prev, 0)
    d_n = np.where(has_n & ~both, nxt - pos, 0)
    dist = np.maximum(d_p + d_n, 1).astype(np.float64)
    w1 = np.where((has_p | has_n) & ~both, 1.0 / dist, 0.0)
    num1 = w1 * np.where(has_p, vp, vn)
    out = [num2, w2, num1, w1]
    if periodic:
        out = [a[..., length : 2 * length] for a in out]
    return tuple(np.moveaxis(a, -1, axis) for a in out)  # type: ignore[return-value]


class LinearInterp(Baseline):
    """Separable linear interpolation over the spatial dims.

    Along each spatial axis a gap point is interpolated linearly between the
    nearest observed points on either side of it on that grid line (in
    grid-index space); the estimates of the axes are then averaged with
    weights ``1/span`` (span = distance between the two bracketing points),
    so the tightest bracket counts most and a field linear in the grid
    indices is reproduced exactly. A bracket never reaches across an invalid
    point. Where no axis brackets the point (a gap touching the domain edge),
    the nearest observed point along each line is used (extrapolation by
    nearest value, weights ``1/distance``); where no line reaches an observed
    point, the nearest observed point of the slice (Euclidean, in grid
    indices). Works the same for 2-D and 3-D slices; a global longitude axis
    wraps around.

    Parameters
    ----------
    wrap_longitude
        Wrap a spatial dim that is a global longitude (named ``lon``/
        ``longitude``, or in ``degrees_east``, with a regular spacing that
        spans 360°). ``False``: never wrap.
    """

    name: ClassVar[str] = "linear"

    def __init__(self, wrap_longitude: bool = True) -> None:
        self.wrap_longitude = bool(wrap_longitude)

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        wrap = periodic if self.wrap_longitude else (False,) * len(periodic)
        inv = ~active
        sums = [np.zeros(values.shape) for _ in range(4)]
        for k, w in enumerate(wrap):
            for total, part in zip(
                sums, _axis_estimates(values, observed, inv, k + 1, w), strict=True
            ):
                total += part
        num2, den2, num1, den1 = sums
        with np.errstate(invalid="ignore", divide="ignore"):
            est = np.where(den2 > 0, num2 / den2, np.where(den1 > 0, num1 / den1, np.nan))
        gap = active & ~observed
        out = np.where(observed, values, np.nan)
        out[gap] = est[gap]
        for t in range(values.shape[0]):
            lost = gap[t] & np.isnan(out[t])
            if lost.any() and observed[t].any():
                _, nearest = ndi.distance_transform_edt(~observed[t], return_indices=True)
                out[t][lost] = values[t][tuple(ix[lost] for ix in nearest)]
        return out
