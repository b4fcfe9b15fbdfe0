"""Exceptions and warnings raised by sparsediff.

Every error a user can cause by bad input is a [`SparsediffError`][SparsediffError]
subclass with a one-line message that names the problem (the file, the
variable, the dim, the key). The CLI prints that line and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CompatibilityError",
    "ConfigError",
    "InputError",
    "NothingToFitError",
    "SparsediffError",
    "SparsediffWarning",
    "TrainingError",
]


class SparsediffError(Exception):
    """Base class of every error sparsediff raises on purpose."""


class InputError(SparsediffError, ValueError):
    """Bad input data: a missing file, an unknown format, a dim that is not there,
    a non-numeric or all-NaN variable, a mask of the wrong shape."""


class ConfigError(SparsediffError, ValueError):
    """An invalid configuration: unknown key, wrong type, impossible sizes."""


class NothingToFitError(ConfigError):
    """A model cannot be adapted or calibrated on this input: it records no training
    config, or no window of the input has enough observed points."""


class CompatibilityError(SparsediffError, ValueError):
    """A model and a dataset (or a saved model and this version) do not fit together."""


class CheckpointError(SparsediffError, OSError):
    """A saved model or checkpoint that cannot be read: wrong format version,
    truncated or tampered weights, missing files."""


class TrainingError(SparsediffError, RuntimeError):
    """Training cannot go on (for example a NaN/Inf loss)."""


class SparsediffWarning(UserWarning):
    """Warnings sparsediff issues on purpose (e.g. grid spacing far from training)."""
