"""Storage URLs (``s3://``, ``gs://``, ``memory://``, ``file://`` ...) for open and write.

A URL is passed through to xarray and fsspec instead of being taken for a
local path (``Path("s3://b/x.zarr")`` would mangle it to ``s3:/b/x.zarr``):

- ``file://`` URLs are local paths: they take the ordinary route (atomic
  writes included);
- Zarr stores (``.zarr``) at any other URL are read and written by
  ``xarray.open_zarr`` / ``Dataset.to_zarr`` through fsspec (``s3://`` needs
  ``s3fs``, ``gs://`` needs ``gcsfs``, as fsspec says). Object stores have no
  rename, so a URL write is not atomic: an interrupted write leaves a partial
  store (write to a local path, or stream with ``fill_to_zarr``, when that
  matters);
- NetCDF at a non-file URL is refused with one clear line (the netCDF4
  engine reads local files only).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import xarray as xr

from sparsediff.errors import InputError

__all__ = ["as_local", "is_url", "local_path", "open_url", "write_url"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL with a scheme (``s3://...``), not a local path."""
    return isinstance(path, str) and bool(_SCHEME.match(path))


def local_path(url: str) -> Path | None:
    """The local path of a ``file://`` URL, ``None`` for any other URL."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.netloc + parsed.path))


def _zarr_only(url: str) -> None:
    if not url.rstrip("/").endswith(".zarr"):
        raise InputError(
            f"cannot use {url!r}: at a URL only Zarr stores (.zarr) are supported; "
            "copy NetCDF or NIfTI files to a local path first"
        )


def open_url(url: str, chunks: Any) -> xr.Dataset:
    """Open the Zarr store at ``url`` (not ``file://``) through fsspec, lazily.

    Raises
    ------
    InputError
        Not a Zarr store, or a store that cannot be read (missing, no access,
        no fsspec implementation of the scheme).
    """
    _zarr_only(url)
    chunks = dict(chunks) if isinstance(chunks, dict) else chunks
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The specified chunks separate")
            return xr.open_zarr(url, chunks=chunks)
    except (OSError, ValueError, KeyError, ImportError) as err:
        raise InputError(f"cannot read {url!r} as zarr: {type(err).__name__}: {err}") from err


def write_url(ds: xr.Dataset, url: str, *, mode: str, zarr_format: int) -> str:
    """Write ``ds`` (prepared for Zarr) to the store at ``url`` (not atomic).

    Raises
    ------
    InputError
        Not a Zarr target, an existing store with ``mode="w-"``, or a store
        that cannot be written.
    """
    _zarr_only(url)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not")
            ds.to_zarr(url, mode=mode, zarr_format=zarr_format, consolidated=True)  # type: ignore[call-overload]
    except FileExistsError:
        raise InputError(f"{url!r} already exists; pass mode='w' to overwrite it") from None
    except (OSError, ValueError, ImportError) as err:
        if "already exists" in str(err) or "contains a group" in str(err):
            raise InputError(f"{url!r} already exists; pass mode='w' to overwrite it") from None
        raise InputError(f"cannot write {url!r}: {type(err).__name__}: {err}") from err
    return url


def as_local(path: Any) -> Any:
    """``path`` with a ``file://`` URL turned into its local path (other values as given)."""
    if is_url(path):
        local = local_path(path)
        if local is not None:
            return os.fspath(local)
    return path
