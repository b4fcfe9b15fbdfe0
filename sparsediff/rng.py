"""Keyed random numbers: every draw comes from a seed derived from integer keys.

Training and filling never rely on a global RNG state. A draw is keyed by what
it is for (global seed, stage, step, sample position, tile origin, member), so
it is the same whatever the batch composition, number of ranks or workers,
chunking, or whether the run was resumed.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["generator_for", "numpy_rng_for", "seed_for"]


def seed_for(*keys: int) -> int:
    """A 63-bit seed derived from integer keys (stable across runs and platforms)."""
    ss = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys] + [len(keys)])
    lo, hi = (int(v) for v in ss.generate_state(2, dtype=np.uint32))
    return ((hi << 32) | lo) >> 1


def generator_for(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded by :func:`seed_for` of ``keys``."""
    g = torch.Generator(device=device)
    g.manual_seed(seed_for(*keys))
    return g


def numpy_rng_for(*keys: int) -> np.random.Generator:
    """A numpy generator seeded by :func:`seed_for` of ``keys``."""
    return np.random.default_rng(seed_for(*keys))
