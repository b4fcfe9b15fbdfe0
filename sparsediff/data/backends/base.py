"""The interface every storage backend implements, and what backends share.

A backend is one format (NetCDF, Zarr, NIfTI). It says which paths are its
own ([`Backend.detect`][Backend.detect]), opens them as a CF-decoded
`xarray.Dataset` ([`Backend.open`][Backend.open]), fits a Dataset to the format
without touching the disk ([`Backend.prepare`][Backend.prepare]: encodings that fit,
attributes the format can store, or one clear [`InputError`][InputError]) and writes
it to a path ([`Backend.write`][Backend.write]). Atomicity, history lines and the choice
of backend live above, in [`sparsediff.data.io`][sparsediff.data.io].
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import xarray as xr

from sparsediff.errors import InputError

__all__ = [
    "CF_KEYS",
    "Backend",
    "Chunks",
    "OpenOptions",
    "WriteOptions",
    "check_attrs",
    "json_ready",
    "json_storable",
]

Chunks = Literal["auto"] | Mapping[str, int] | None

#: Encoding keys every format keeps (CF packing, fill values, time units).
CF_KEYS = frozenset(
    {"_FillValue", "missing_value", "dtype", "scale_factor", "add_offset", "units", "calendar"}
)


@dataclass(frozen=True)
class OpenOptions:
    """How to open.

    Attributes
    ----------
    chunks
        Dask chunks: ``"auto"``, ``{dim: size}`` or ``None`` (no dask).
    variable_name
        Name of the data variable of a format that stores one unnamed array (NIfTI).
    """

    chunks: Chunks = "auto"
    variable_name: str = "image"


@dataclass(frozen=True)
class WriteOptions:
    """How to write.

    Attributes
    ----------
    zarr_format
        Zarr format version (2 or 3); other formats ignore it.
    compute
        ``False``: write metadata and in-memory variables only, leaving
        dask-backed arrays to later region writes (formats with ``deferred``).
    run
        Keyword arguments of `dask.compute` (scheduler, pool).
    """

    zarr_format: int = 3
    compute: bool = True
    run: Mapping[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """One storage format."""

    #: Short name used in messages ("netcdf", "zarr", "nifti").
    name: ClassVar[str]
    #: Lower-case path suffixes of this format.
    suffixes: ClassVar[tuple[str, ...]]
    #: Whether `write` supports ``compute=False`` (region writes later).
    deferred: ClassVar[bool] = False

    def detect(self, path: Path) -> bool:
        """Whether ``path`` (by its suffix) is in this format."""
        return path.name.lower().rstrip("/").endswith(self.suffixes)

    @abstractmethod
    def open(self, paths: list[Path], options: OpenOptions) -> xr.Dataset:
        """Open existing ``paths`` (one, or several combined by coordinates)."""

    @abstractmethod
    def prepare(self, ds: xr.Dataset, options: WriteOptions) -> xr.Dataset:
        """A shallow copy of ``ds`` fitted to the format; raise InputError if it cannot be."""

    @abstractmethod
    def write(self, ds: xr.Dataset, path: Path, options: WriteOptions) -> None:
        """Write a prepared Dataset to ``path`` (which does not exist yet)."""


def json_ready(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into plain Python (for JSON)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    return value


def json_storable(value: Any) -> bool:
    """Whether an attribute value survives a JSON round trip (Zarr, NIfTI extension)."""
    try:
        json.dumps(json_ready(value))
    except (TypeError, ValueError):
        return False
    return True


def check_attrs(ds: xr.Dataset, fmt: str, storable: Callable[[Any], bool]) -> None:
    """Raise InputError for an attribute that format ``fmt`` cannot store."""
    owners: list[tuple[str, Mapping[Hashable, Any]]] = [("the dataset", ds.attrs)]
    owners += [(f"variable {str(n)!r}", v.attrs) for n, v in ds.variables.items()]
    for owner, attrs in owners:
        for key, value in attrs.items():
            if not isinstance(key, str) or not key:
                raise InputError(f"attribute name {key!r} of {owner} is not a non-empty string")
            if not storable(value):
                raise InputError(
                    f"attribute {key!r} of {owner} has a value of type "
                    f"{type(value).__name__} that {fmt} cannot store"
                )
