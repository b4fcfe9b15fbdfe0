"""NetCDF-4 files (``.nc``, ``.nc4``, ``.netcdf``) through xarray's netCDF4 engine."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from numbers import Number
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
)
from sparsediff.data.cf import align_bounds_encoding, no_fill_on_coordinates, typed_attributes

__all__ = ["NetCDFBackend"]

# Encoding keys kept on write; everything else is dropped.
_KEYS = CF_KEYS | {
    "zlib",
    "complevel",
    "shuffle",
    "fletcher32",
    "contiguous",
    "chunksizes",
    "compression",
    "szip_coding",
    "szip_pixels_per_block",
    "blosc_shuffle",
    "significant_digits",
    "quantize_mode",
    "least_significant_digit",
    "endian",
    "coordinates",
}


def _storable(value: Any) -> bool:
    """Whether a NetCDF attribute can hold ``value`` (strings, numbers, 1-D arrays)."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, str | bytes | Number | np.number):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim <= 1 and (value.dtype.kind in "iufSU")
    if isinstance(value, list | tuple):
        return all(isinstance(v, str) for v in value) or all(
            isinstance(v, Number | np.number) and not isinstance(v, bool | np.bool_) for v in value
        )
    return False


def _encoding(var: xr.Variable) -> dict[str, Any]:
    enc = {k: v for k, v in var.encoding.items() if k in _KEYS}
    chunks = enc.get("chunksizes")
    if chunks is None and isinstance(var.encoding.get("chunks"), Sequence):
        chunks = var.encoding["chunks"]
    if chunks is not None:
        fits = len(chunks) == var.ndim and all(
            0 < int(c) <= max(n, 1) for c, n in zip(chunks, var.shape)
        )
        if fits and not enc.get("contiguous", False):
            enc["chunksizes"] = tuple(int(c) for c in chunks)
        else:
            enc.pop("chunksizes", None)
    if "dtype" in enc:
        try:
            dtype = np.dtype(enc["dtype"])
        except TypeError:
            dtype = None
        if dtype is not None and dtype.isnative and dtype.byteorder in "<>":
            enc["dtype"] = dtype.newbyteorder("=")
    if enc.get("contiguous") and var.ndim == 0:
        enc.pop("contiguous")
    return enc


class NetCDFBackend(Backend):
    """NetCDF-4 (HDF5) files; several files open as one Dataset combined by coordinates."""

    name: ClassVar[str] = "netcdf"
    suffixes: ClassVar[tuple[str, ...]] = (".nc", ".nc4", ".netcdf")

    def open(self, paths: list[Path], options: OpenOptions) -> xr.Dataset:
        """Open one file, or several combined by coordinates (dask-backed by default)."""
        chunks = dict(options.chunks) if isinstance(options.chunks, Mapping) else options.chunks
        if len(paths) == 1:
            return xr.open_dataset(paths[0], engine="netcdf4", chunks=chunks)
        return xr.open_mfdataset(paths, engine="netcdf4", combine="by_coords", chunks=chunks)

    def prepare(self, ds: xr.Dataset, options: WriteOptions) -> xr.Dataset:
        """Encodings NetCDF-4 accepts; attributes it can store."""
        out = ds.copy(deep=False)
        for var in out.variables.values():
            var.encoding = _encoding(var)
        no_fill_on_coordinates(out)
        align_bounds_encoding(out)
        typed_attributes(out)
        check_attrs(out, self.name, _storable)
        return out

    def write(self, ds: xr.Dataset, path: Path, options: WriteOptions) -> None:
        """Write a NETCDF4 file, computing dask arrays with ``options.run``."""
        try:  # numpy-backed variables are written by to_netcdf itself, dask ones by compute
            pending = ds.to_netcdf(path, engine="netcdf4", format="NETCDF4", compute=False)
            dask.compute(pending, **options.run)
        except BaseException:
            _close(path)
            raise


def _close(path: Path) -> None:
    """Close the file a failed write left open (xarray's file cache holds it).

    Otherwise the removed file keeps its blocks (a full disk stays full) until
    the cache drops it.
    """
    with contextlib.suppress(OSError):
        os.truncate(path, 0)  # frees the blocks, so that the close below can flush
    cache = xr.backends.file_manager.FILE_CACHE
    for key, handle in list(cache.items()):
        with contextlib.suppress(Exception):
            if getattr(handle, "filepath", lambda: None)() == str(path):
                cache.pop(key, None)
                handle.close()
