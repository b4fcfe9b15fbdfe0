"""The method: one object per kind of model owns inputs, completion and training objectives."""

from __future__ import annotations

from torch import nn

from sparsediff.errors import ConfigError
from sparsediff.method.base import Method
from sparsediff.method.latent import LatentMethod
from sparsediff.method.pixel import PixelMethod
from sparsediff.method.spec import ModelSpec

__all__ = ["METHODS", "Method", "build_method"]

METHODS: dict[str, type[Method]] = {LatentMethod.kind: LatentMethod, PixelMethod.kind: PixelMethod}
"""Method classes by kind."""


def build_method(spec: ModelSpec, nets: dict[str, nn.Module] | None = None) -> Method:
    """The method object of a spec (with its networks, when given)."""
    try:
        cls = METHODS[spec.kind]
    except KeyError:
        raise ConfigError(f"unknown method kind {spec.kind!r}; known: {sorted(METHODS)}") from None
    return cls(spec, nets)
