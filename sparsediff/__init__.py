"""sparsediff: fill gaps in gridded scientific data with latent diffusion.

``import sparsediff`` registers the ``.sparsediff`` accessor on
`xarray.Dataset` and `xarray.DataArray`.

Public names (DESIGN §6): [`open`][open], [`write`][write], [`train`][train],
[`load`][load], [`fill`][fill], [`evaluate`][evaluate], [`Model`][Model]; and
``FillOptions`` (how ``fill`` and ``evaluate`` sample,
[`sparsediff.method.options.FillOptions`][sparsediff.method.options.FillOptions]). The
torch-side names are imported on first use, so ``import sparsediff`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sparsediff import accessor as _accessor  # noqa: F401  (registers .sparsediff)
from sparsediff.data.io import open, write

try:
    __version__ = version("sparsediff")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_LAZY = {
    "train": "sparsediff.training.trainer",
    "load": "sparsediff.model",
    "Model": "sparsediff.model",
    "fill": "sparsediff.filling.fill",
    "evaluate": "sparsediff.evaluation.evaluate",
    "FillOptions": "sparsediff.method.options",
}

__all__ = [
    "FillOptions",
    "Model",
    "__version__",
    "evaluate",
    "fill",
    "load",
    "open",
    "train",
    "write",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sparsediff' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
