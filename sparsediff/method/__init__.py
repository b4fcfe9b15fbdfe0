"""The method: one object per mode of model owns inputs, completion, training and calibration."""

from __future__ import annotations

from torch import nn

from sparsediff.errors import ConfigError
from sparsediff.method.base import Method
from sparsediff.method.latent import LatentMethod
from sparsediff.method.pixel import PixelMethod
from sparsediff.method.spec import ModelSpec

__all__ = ["DEFAULT_MODE", "METHODS", "Method", "build_method", "registered_mode"]

METHODS: dict[str, type[Method]] = {LatentMethod.mode: LatentMethod, PixelMethod.mode: PixelMethod}
"""Method classes by ``mode`` (the config's ``mode``, the spec's ``mode``).

The training config, the model spec, the trainer and model loading take
everything that differs between methods from here; a method registered here
(``METHODS[cls.mode] = cls``) is trained, saved, loaded and filled like the
built-in ones.
"""


DEFAULT_MODE = LatentMethod.mode
"""The mode of a training config that names none."""


def registered_mode(mode: str) -> str:
    """``mode`` if a method is registered under it, else a ValueError naming the known ones.

    The one check of a mode name, for the pydantic validators of the spec and the
    training config (they turn the ValueError into their validation error).
    """
    if mode not in METHODS:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(sorted(METHODS))}")
    return mode


def build_method(spec: ModelSpec, nets: dict[str, nn.Module] | None = None) -> Method:
    """The method object of a spec (with its networks, when given)."""
    try:
        cls = METHODS[spec.mode]
    except KeyError:
        raise ConfigError(f"unknown mode {spec.mode!r}; known: {sorted(METHODS)}") from None
    return cls(spec, nets)
