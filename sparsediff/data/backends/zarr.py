"""Zarr stores (``.zarr`` directories), format 2 or 3, with consolidated metadata.

Stores written here carry consolidated metadata (also in format 3, where
zarr-python calls it an extension), so that plain ``xarray.open_zarr(path)``
opens them without a warning and with one metadata read.
"""

from __future__ import annotations

import builtins
import json
import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import dask
import numpy as np
import xarray as xr

from sparsediff.data.backends.base import (
    CF_KEYS,
    Backend,
    OpenOptions,
    WriteOptions,
    check_attrs,
    json_storable,
)
from sparsediff.data.cf import align_bounds_encoding, no_fill_on_coordinates, typed_attributes
from sparsediff.errors import InputError

__all__ = ["ZarrBackend", "consolidate", "zarr_layout"]

# Encoding keys kept on write; everything else is dropped.
_KEYS = CF_KEYS | {"chunks", "compressors", "compressor", "filters", "serializer", "coordinates"}

#: zarr-python's note that consolidated metadata is not (yet) part of the v3 spec.
_V3_CONSOLIDATED_NOTE = "Consolidated metadata is currently not part"


def zarr_layout(path: Path) -> tuple[int, bool]:
    """Return ``(zarr_format, consolidated)`` of the store at ``path``.

    Raises
    ------
    InputError
        ``path`` holds no Zarr group or array metadata.
    """
    meta = path / "zarr.json"
    if meta.is_file():
        with builtins.open(meta, encoding="utf-8") as f:
            group = json.load(f)
        return 3, group.get("consolidated_metadata") is not None
    if (path / ".zgroup").is_file() or (path / ".zarray").is_file():
        return 2, (path / ".zmetadata").is_file()
    raise InputError(f"{str(path)!r} is not a Zarr store (no zarr.json or .zgroup in it)")


def consolidate(path: Path) -> None:
    """(Re)write the consolidated metadata of the store at ``path``.

    Call it after changing metadata (attributes, new arrays) of a store
    written with [`ZarrBackend`][ZarrBackend]; region writes of data do not need it.
    """
    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_V3_CONSOLIDATED_NOTE)
        zarr.consolidate_metadata(str(path))


def _typed_fill_values(ds: xr.Dataset) -> xr.Dataset:
    """Give ``_FillValue`` encodings the on-disk dtype (Zarr v3 stores them as JSON numbers)."""
    for var in ds.variables.values():
        fill, dtype = var.encoding.get("_FillValue"), var.encoding.get("dtype")
        if isinstance(fill, int | float) and dtype is not None and np.dtype(dtype).kind in "iuf":
            try:
                with np.errstate(all="ignore"):
                    typed = np.dtype(dtype).type(fill)
            except (OverflowError, ValueError):
                continue
            if float(typed) == float(fill) or (np.isnan(typed) and np.isnan(fill)):
                var.encoding["_FillValue"] = typed
    return ds


def _chunks_fit_dask(enc_chunks: Sequence[int], var: xr.Variable) -> bool:
    if len(enc_chunks) != var.ndim or any(int(c) <= 0 for c in enc_chunks):
        return False
    if var.chunks is None:
        return True
    for zc, dchunks in zip(enc_chunks, var.chunks):
        if any(c % int(zc) for c in dchunks[:-1]):
            return False
        if len(dchunks) > 1 and dchunks[-1] > dchunks[0]:
            return False
    return True


def _codecs_fit(value: Any, zarr_format: int, kind: str) -> bool:
    import numcodecs.abc
    from zarr.abc import codec as zcodec

    items = value if isinstance(value, list | tuple) else [value]
    if value is None:
        return True
    if zarr_format == 2:
        return kind in ("compressors", "compressor", "filters") and all(
            isinstance(c, numcodecs.abc.Codec) for c in items
        )
    wanted = {
        "compressors": zcodec.BytesBytesCodec,
        "filters": zcodec.ArrayArrayCodec,
        "serializer": zcodec.ArrayBytesCodec,
    }.get(kind)
    return wanted is not None and all(isinstance(c, wanted) for c in items)


def _encoding(var: xr.Variable, zarr_format: int) -> dict[str, Any]:
    enc = {k: v for k, v in var.encoding.items() if k in _KEYS}
    if "chunks" not in enc and "chunksizes" in var.encoding:
        enc["chunks"] = var.encoding["chunksizes"]
    if enc.get("chunks") is not None:
        chunks = enc["chunks"]
        if not isinstance(chunks, Sequence) or not _chunks_fit_dask(chunks, var):
            del enc["chunks"]
        else:
            enc["chunks"] = tuple(int(c) for c in chunks)
    elif "chunks" in enc:
        del enc["chunks"]
    for key in ("compressors", "compressor", "filters", "serializer"):
        if key in enc and not _codecs_fit(enc[key], zarr_format, key):
            del enc[key]
    return enc


def _regular_chunks(var: xr.Variable) -> dict[Hashable, int] | None:
    """Chunk sizes making ``var``'s dask chunks regular, or None if already regular."""
    if var.chunks is None:
        return None
    fix: dict[Hashable, int] = {}
    for dim, c in zip(var.dims, var.chunks):
        if len(c) > 1 and (len(set(c[:-1])) > 1 or c[-1] > c[0]):
            fix[dim] = max(c)
    return fix or None


class ZarrBackend(Backend):
    """Zarr v2 and v3 stores (consolidated or not on read; consolidated on write)."""

    name: ClassVar[str] = "zarr"
    suffixes: ClassVar[tuple[str, ...]] = (".zarr",)
    deferred: ClassVar[bool] = True

    def open(self, paths: list[Path], options: OpenOptions) -> xr.Dataset:
        """Open one store (its format recorded in ``ds.encoding["zarr_format"]``) or several."""
        chunks = dict(options.chunks) if isinstance(options.chunks, Mapping) else options.chunks
        layouts = {zarr_layout(p) for p in paths}
        if len(paths) == 1:
            zarr_format, consolidated = layouts.pop()
            ds = xr.open_zarr(
                paths[0], consolidated=consolidated, zarr_format=zarr_format, chunks=chunks
            )
            ds.encoding["zarr_format"] = zarr_format
            typed_attributes(ds)
            return _typed_fill_values(ds)
        consolidated = all(c for _, c in layouts)
        return xr.open_mfdataset(
            paths, engine="zarr", combine="by_coords", consolidated=consolidated, chunks=chunks
        )

    def prepare(self, ds: xr.Dataset, options: WriteOptions) -> xr.Dataset:
        """Regular dask chunks, encodings that fit them and the format, JSON attributes."""
        out = ds.copy(deep=False)
        fixes: dict[Hashable, int] = {}
        for var in out.variables.values():
            for dim, size in (_regular_chunks(var) or {}).items():
                fixes[dim] = max(size, fixes.get(dim, 0))
        if fixes:
            out = out.chunk(fixes)
        for var in out.variables.values():
            var.encoding = _encoding(var, options.zarr_format)
        no_fill_on_coordinates(out)
        align_bounds_encoding(out)
        typed_attributes(out)
        check_attrs(out, self.name, json_storable)
        return out

    def write(self, ds: xr.Dataset, path: Path, options: WriteOptions) -> None:
        """Write a new store with consolidated metadata (data too unless ``compute=False``)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_V3_CONSOLIDATED_NOTE)
            pending = ds.to_zarr(
                path,
                mode="w-",
                zarr_format=options.zarr_format,
                consolidated=True,
                compute=False,
            )
        if options.compute:
            dask.compute(pending, **options.run)
