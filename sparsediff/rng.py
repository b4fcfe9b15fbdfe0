"""Keyed random numbers: draws seeded from integer keys, never from the order of events.

A draw of training or filling is keyed by what it is for (global seed, stage,
step, sample position, tile origin, member), so it is the same whatever the
batch composition, number of ranks or workers, chunking, or whether the run was
resumed.

Torch's global RNG is used in two places only, both in training:

- the trainer seeds it with ``seed_for(run.seed, Stream.NET_INIT + stage)``
  (stage 1: the autoencoder, 2: the prior) right before it builds the network
  of a stage, because torch's layer initialisers draw from the global RNG and
  take no generator. The initial weights therefore depend on the seed and the
  stage alone; the call also resets the global RNG state of the calling
  process;
- dropout in the residual blocks of the prior (``prior.dropout`` > 0;
  off by default) draws from the global RNG during training, so with dropout
  on, a resumed run does not repeat the draws of an uninterrupted one.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import numpy as np
import torch

from sparsediff.errors import InputError

__all__ = ["Stream", "check_seed", "generator_for", "numpy_rng_for", "seed_for"]

_WORD = 0xFFFFFFFF
#: First entropy word of the wide form (keys outside [0, 2**32)); see [`seed_for`][seed_for].
_WIDE = 0x5EED_3264


def _wide_words(key: int) -> list[int]:
    """``[sign, n, w0, ..., w(n-1)]``: ``|key|`` as n little-endian 32-bit words."""
    magnitude = -key if key < 0 else key
    words = []
    while True:
        words.append(magnitude & _WORD)
        magnitude >>= 32
        if not magnitude:
            break
    return [int(key < 0), len(words), *words]


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
    #: training: the points hidden to fit the context weight of the first guess
    CONTEXT_WEIGHT = 41
    #: training data: the other step whose gaps a "real" hide mask copies
    DONOR = 50
    #: training data: the field-scale gaps around a crop for its EOF background
    EOF_FIELD_HIDE = 51
    #: adaptation to the data being filled: the points hidden in a sample
    ADAPT_HIDE = 60
    #: calibration on the data being filled: which of its windows are used
    INPUT_WINDOWS = 61
    #: calibration on point observations: the platforms hidden whole, per step
    PLATFORM_HIDE = 62
    #: evaluation: held-out gaps
    HOLDOUT = 0x401D
    #: evaluation at held-out point observations: the observation error drawn
    #: onto each ensemble member (observation perturbation)
    OBS_ERROR = 0x401E


def seed_for(*keys: int) -> int:
    """A 63-bit seed derived from integer keys (stable across runs and platforms).

    Distinct key tuples give distinct inputs to `numpy.random.SeedSequence`
    (so, but for hash collisions, distinct seeds), for integers of any size and
    sign:

    - all keys in ``[0, 2**32)``: the entropy is ``[*keys, len(keys)]``, as it
      has always been, so existing seeds do not change;
    - otherwise it is ``[WIDE, sign, n, words... (per key), len(keys)]``, each key
      written whole as 32-bit words. Such a list is longer than ``len(keys) + 1``
      while ending in ``len(keys)``, so it never equals a list of the first form,
      and the per-key ``(sign, n)`` headers make the wide form unambiguous.
    """
    ints = [int(k) for k in keys]
    if all(0 <= k <= _WORD for k in ints):
        entropy = [*ints, len(ints)]
    else:
        entropy = [_WIDE, *(w for k in ints for w in _wide_words(k)), len(ints)]
    ss = np.random.SeedSequence(entropy)
    lo, hi = (int(v) for v in ss.generate_state(2, dtype=np.uint32))
    return ((hi << 32) | lo) >> 1


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an int, or a one-line [`InputError`][InputError] unless it is an integer >= 0.

    Any size is fine: [`seed_for`][seed_for] uses the whole value.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputError(f"{name} must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise InputError(f"{name} must be a non-negative integer, got {seed}")
    return int(seed)


def generator_for(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded by [`seed_for`][seed_for] of ``keys``."""
    g = torch.Generator(device=device)
    g.manual_seed(seed_for(*keys))
    return g


def numpy_rng_for(*keys: int) -> np.random.Generator:
    """A numpy generator seeded by [`seed_for`][seed_for] of ``keys``."""
    return np.random.default_rng(seed_for(*keys))
