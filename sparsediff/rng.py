"""Keyed random numbers: every draw comes from a seed derived from integer keys.

Training and filling never rely on a global RNG state. A draw is keyed by what
it is for (global seed, stage, step, sample position, tile origin, member), so
it is the same whatever the batch composition, number of ranks or workers,
chunking, or whether the run was resumed.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch

__all__ = ["Stream", "generator_for", "numpy_rng_for", "seed_for"]


class Stream(IntEnum):
    """Named random streams: the second key of every keyed draw after the seed.

    A draw is ``seed_for(seed, Stream.X, ...)``: two purposes never share
    numbers because their stream differs, and nobody has to remember which
    magic number means what. Values are part of the reproducibility contract
    (changing one changes results), so they never change once released.
    """

    #: training data: extra MCAR share punched into every window (experiments)
    EXTRA_MISSING = 7
    #: in-training evaluation: the fixed hide mask of a validation window
    EVAL_HIDE = 11
    #: network initialisation (plus the stage number)
    NET_INIT = 1000
    #: training: points hidden from the model in a sample (hide and reconstruct)
    HIDE = 20
    #: training: points hidden in the context frames of a sample
    CONTEXT_HIDE = 21
    #: training: whether a context frame is dropped whole
    CONTEXT_DROP = 22
    #: training: the reparameterisation noise of the latent
    LATENT_NOISE = 23
    #: training: whether the latent is dropped (regression) for a sample
    LATENT_DROP = 24
    #: training: diffusion noise level and noise of a sample
    DIFFUSION = 25
    #: training: whether the prior's condition is dropped for a sample
    COND_DROP = 26
    #: fill: the initial noise of a window's sample
    FILL_NOISE = 30
    #: fill: the per-step noise of the stochastic samplers, per window
    STEP_NOISE = 31
    #: calibration: the hide masks of the validation windows
    CALIBRATION = 40
    #: training data: the other step whose gaps a "real" hide mask copies
    DONOR = 50
    #: evaluation: held-out gaps
    HOLDOUT = 0x401D


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
