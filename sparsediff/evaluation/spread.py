"""Spread and skill by distance to the data: is the ensemble's spread right where it matters?

Near the observations a fill is good and its spread small; far from them both
grow. [`by_distance`][sparsediff.evaluation.spread.by_distance] tabulates, per
bin of chessboard distance (grid steps) to the nearest shown point, the
hidden points, the ensemble mean's RMSE, the RMS member spread and the
spread/skill ratio ``sqrt((K + 1) / K) * spread / RMSE`` (1 for a calibrated
K-member ensemble). The distance is the model's own
([`distance_to_shown`][sparsediff.method.inputs.distance_to_shown]).
Unweighted (no cos-latitude weights).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from sparsediff.method.inputs import distance_to_shown

__all__ = ["BINS", "by_distance", "distance_field"]

#: Lower edges of the distance bins (grid steps); the last is open.
BINS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)


def distance_field(
    shown: np.ndarray, spatial_axes: Sequence[int], periodic: Sequence[bool] | None = None
) -> np.ndarray:
    """Chessboard distance (grid steps) of every point to the nearest shown point.

    Measured over ``spatial_axes`` of ``shown`` separately for every index of
    the other axes, with the model's own [`distance_to_shown`][distance_to_shown].
    """
    axes = list(spatial_axes)
    rest = [a for a in range(shown.ndim) if a not in axes]
    order = rest + axes
    moved = np.transpose(shown, order)
    flat = moved.reshape(-1, 1, *moved.shape[len(rest) :])
    dist = distance_to_shown(torch.from_numpy(np.ascontiguousarray(flat)), periodic).numpy()
    return np.transpose(dist.reshape(moved.shape), np.argsort(order))


def by_distance(
    truth: np.ndarray, shown: np.ndarray, members: np.ndarray, dist: np.ndarray
) -> pd.DataFrame:
    """Spread/skill of an ensemble at the hidden points, per bin of distance to the data.

    Parameters
    ----------
    truth
        The field with its truth at the hidden points (NaN where never observed).
    shown
        Bool, same shape: the points the filler was given.
    members
        The ensemble, members first: ``(K, *truth.shape)``.
    dist
        Same shape as ``truth``: distance to the nearest shown point
        ([`distance_field`][distance_field]).

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin of `BINS` and one ``all`` row:
        ``bin``, ``points``, ``rmse``, ``spread`` (RMS member standard
        deviation) and ``spread_skill``.
    """
    hidden = np.isfinite(truth) & ~shown
    k = members.shape[0]
    err2 = (members.mean(0) - truth) ** 2
    var = members.var(0, ddof=1)
    rows = []
    edges = [*BINS, np.inf]
    for lo, hi in [*itertools.pairwise(edges), (BINS[0], np.inf)]:
        sel = hidden & (dist >= lo) & (dist < hi)
        n = int(sel.sum())
        if n == 0:
            continue
        rmse = float(np.sqrt(err2[sel].mean()))
        spread = float(np.sqrt(var[sel].mean()))
        name = "all" if (lo, hi) == (BINS[0], np.inf) else f"{lo}-{hi - 1:g}"
        ratio = np.sqrt((k + 1) / k) * spread / rmse if rmse > 0 else float("nan")
        rows.append({"bin": name, "points": n, "rmse": rmse, "spread": spread,
                     "spread_skill": float(ratio)})  # fmt: skip
    return pd.DataFrame(rows)
