"""Holding out point observations for scoring: single points, or whole platforms.

``points:F`` hides ``round(F * n)`` of the ``n`` observations, drawn at random;
``platforms:F`` hides ``round(F * p)`` of the ``p`` platforms (stations, floats,
tracks) whole, so that no observation of a hidden platform is shown. The draw
depends only on the seed and the data (its own random stream), never on a
global random state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sparsediff.errors import InputError

if TYPE_CHECKING:
    from sparsediff.data.observations import Observations

__all__ = ["HOLDOUT_KINDS", "held_out"]

#: Kinds of holdout: single observations, or whole platforms.
HOLDOUT_KINDS = ("points", "platforms")
#: Key of the holdout's random stream (mixed with the seed).
_HOLDOUT_STREAM = 1601


def held_out(obs: Observations, spec: str, seed: int = 0) -> np.ndarray:
    """Which observations ``spec`` (``"points:F"`` or ``"platforms:F"``) hides.

    Parameters
    ----------
    obs
        The observations.
    spec
        ``"points:F"`` or ``"platforms:F"`` with ``0 < F < 1``.
    seed
        The seed of the draw.

    Returns
    -------
    numpy.ndarray
        A boolean array, ``True`` for a hidden observation.

    Raises
    ------
    InputError
        A malformed spec, a fraction outside (0, 1), ``platforms`` without
        platform ids, or a split that leaves either side empty.
    """
    kind, _, frac_text = spec.partition(":")
    try:
        frac = float(frac_text)
    except ValueError:
        frac = float("nan")
    if kind not in HOLDOUT_KINDS or not 0.0 < frac < 1.0:
        raise InputError(f"holdout {spec!r}: expected 'points:F' or 'platforms:F' with 0 < F < 1")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([_HOLDOUT_STREAM, int(seed)])
    if kind == "points":
        held = np.zeros(len(obs), dtype=bool)
        held[rng.permutation(len(obs))[: round(frac * len(obs))]] = True
    else:
        if obs.platform is None:
            raise InputError(f"holdout {spec!r}: the observations have no platform ids")
        ids, inverse = np.unique(obs.platform, return_inverse=True)
        hidden = rng.permutation(ids.size)[: round(frac * ids.size)]
        held = np.isin(inverse, hidden)
    if held.all() or not held.any():
        raise InputError(f"holdout {spec!r} of {len(obs)} observations leaves one side empty")
    return held
