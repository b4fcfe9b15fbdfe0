"""Reading and writing gridded data: NetCDF, Zarr (v2 and v3) and NIfTI.

[`open`][open] returns a CF-decoded `xarray.Dataset` (dask-backed for
NetCDF and Zarr); [`write`][write] writes one back, keeping attributes and
encodings, appending one line to the ``history`` attribute, and never leaving
a half-written file behind ([`sparsediff.atomic`][sparsediff.atomic]): the data go to a hidden
temporary sibling that is renamed into place only once it is complete.

The formats themselves live in [`sparsediff.data.backends`][sparsediff.data.backends], one module
each; this module picks the backend by suffix and adds what every format
shares. NIfTI volumes become a Dataset with one variable on dims
``("z", "y", "x")`` (see [`sparsediff.data.backends.nifti`][sparsediff.data.backends.nifti]).
"""

from __future__ import annotations

import dataclasses
import errno
import glob
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import dask.base
import dask.system
import dask.threaded
import xarray as xr

from sparsediff import atomic
from sparsediff.data.backends import Backend, OpenOptions, WriteOptions, backend_for
from sparsediff.data.backends.base import Chunks
from sparsediff.data.backends.nifti import nifti_dataset
from sparsediff.data.selection import as_dataset, numeric_variables, validate_dims
from sparsediff.data.urls import as_local, is_url, open_url, write_url
from sparsediff.errors import InputError
from sparsediff.lock import hold
from sparsediff.paths import check_loops

__all__ = [
    "append_history",
    "nifti_dataset",
    "numeric_variables",
    "open",
    "validate_dims",
    "write",
]

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- history


def _package_version() -> str:
    try:
        return version("sparsediff")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def _history_line(message: str | None) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = " ".join((message or "write").split())  # exactly one line
    return f"{stamp} sparsediff {_package_version()}: {text}"


def append_history(existing: Any, message: str | None) -> str:
    """``existing`` history text plus one timestamped ``sparsediff`` line for ``message``."""
    line = _history_line(message)
    if existing is None:
        return line
    if isinstance(existing, bytes):
        existing = existing.decode("utf-8", "replace")
    existing = str(existing).rstrip("\n")
    return f"{existing}\n{line}" if existing else line


# --------------------------------------------------------------------------- open


def _expand_paths(path_or_paths: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(path_or_paths, str | os.PathLike):
        text = os.fspath(path_or_paths)
        if any(c in text for c in "*?[") and not Path(text).exists():
            found = sorted(glob.glob(os.path.expanduser(text)))
            if not found:
                raise InputError(f"no file matches {text!r}")
            return [Path(p) for p in found]
        return [Path(text).expanduser()]
    paths = [Path(os.fspath(p)).expanduser() for p in path_or_paths]
    if not paths:
        raise InputError("empty list of paths: nothing to open")
    return paths


def open(
    path_or_paths: PathLike | Sequence[PathLike],
    *,
    chunks: Chunks = "auto",
    variable_name: str = "image",
) -> xr.Dataset:
    """Open NetCDF, Zarr or NIfTI data as a CF-decoded `xarray.Dataset`.

    Parameters
    ----------
    path_or_paths
        A path, a glob pattern, a list of paths, or a URL: ``file://`` URLs
        are local paths; a Zarr store at any other URL (``s3://``,
        ``gs://``, ``memory://`` ...) is read through fsspec
        ([`sparsediff.data.urls`][sparsediff.data.urls]). The format follows the
        suffix: ``.nc``/``.nc4``/``.netcdf`` (NetCDF; several files are
        combined by coordinates), ``.zarr`` (a Zarr v2 or v3 store, consolidated
        or not) or ``.nii``/``.nii.gz`` (NIfTI).
    chunks
        Dask chunks for NetCDF and Zarr: ``"auto"`` (default), a mapping
        ``{dim: size}``, or ``None`` for lazily-indexed NumPy arrays. NIfTI
        volumes are read into memory; a mapping chunks them afterwards.
    variable_name
        Name of the data variable of a NIfTI volume.

    Returns
    -------
    xarray.Dataset
        For NIfTI: one variable on dims ``("z", "y", "x")`` (``("t", "z", "y",
        "x")`` in 4D) with integer index coordinates and the affine in
        ``attrs["nifti_affine"]`` (16 floats, row-major).

    Raises
    ------
    InputError
        A missing file, an unknown suffix, an empty list of paths, mixed
        formats, or a file that cannot be read in its format.
    """
    path_or_paths = as_local(path_or_paths)  # file:// URLs are local paths
    if is_url(path_or_paths):  # s3://, gs://, memory://, ...: through fsspec
        return open_url(str(path_or_paths), chunks)
    paths = _expand_paths(path_or_paths)
    for p in paths:
        check_loops(p)
    backends = {backend_for(p).name: backend_for(p) for p in paths}
    if len(backends) > 1:
        raise InputError(
            f"cannot open files of different formats together: {', '.join(map(str, paths))}"
        )
    backend: Backend = next(iter(backends.values()))
    for p in paths:
        if not p.exists():
            raise InputError(f"file not found: {str(p)!r}")
    options = OpenOptions(chunks=chunks, variable_name=variable_name)
    try:
        with warnings.catch_warnings():
            # chunks chosen for the data variables often split the stored chunks of
            # small auxiliary variables (time bounds); that costs nothing worth a warning
            warnings.filterwarnings("ignore", message="The specified chunks separate")
            return backend.open(paths, options)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files"
        raise InputError(f"cannot read {where!r} as {backend.name}: {err}") from err


# --------------------------------------------------------------------------- write


def write(
    ds: xr.Dataset | xr.DataArray,
    path: PathLike,
    *,
    mode: Literal["w", "w-"] = "w-",
    zarr_format: Literal[2, 3] | None = None,
    history: str | None = None,
    compute: bool = True,
) -> Path | str:
    """Write a Dataset (or DataArray) to NetCDF, Zarr or NIfTI, atomically.

    Parameters
    ----------
    ds
        The data. A DataArray is written as a Dataset with one variable.
    path
        Target path; the suffix picks the format as in [`open`][open].
        Missing parent directories are created. A URL: ``file://`` is a
        local path; a Zarr store at any other URL is written through fsspec,
        not atomically ([`sparsediff.data.urls`][sparsediff.data.urls]).
    mode
        ``"w-"`` (default) refuses an existing ``path``; ``"w"`` replaces it,
        only once the new file is complete.
    zarr_format
        2 or 3 for Zarr; ``None`` keeps the format the data were read from
        ([`open`][open] records it) or uses 3.
    history
        Text of the line appended to the ``history`` attribute (default
        ``"write"``). The line is ``"<UTC time> sparsediff <version>: <text>"``.
    compute
        Zarr only: ``False`` writes the store's metadata and non-dask
        variables and leaves dask-backed arrays to later region writes.

    Returns
    -------
    pathlib.Path or str
        The path written (the URL, for a URL other than ``file://``).

    Raises
    ------
    InputError
        Unknown suffix, existing target with ``mode="w-"``, a bad ``mode`` or
        ``zarr_format``, an attribute the format cannot store, a target
        directory that is not writable, a loop of symbolic links, a target
        another run is writing ([`sparsediff.lock`][sparsediff.lock]), or a full disk.
        Nothing is written in these cases.

    Notes
    -----
    Attributes and CF encodings (``_FillValue``, ``dtype``,
    ``scale_factor``/``add_offset``, ``units``/``calendar``) are kept; chunk
    and compressor settings that do not fit the data or the target format are
    dropped, and dimension coordinates get no ``_FillValue`` (CF). Zarr stores
    carry consolidated metadata. Data go to a hidden sibling
    (``.tmp-<id>-<name>``) that is renamed to ``path`` when complete; on any
    error it is removed and ``path`` is left untouched.
    """
    data = as_dataset(ds)
    path = as_local(path)
    if is_url(path):
        return _write_url(data, str(path), mode, zarr_format, history)
    target = Path(os.fspath(path)).expanduser()
    check_loops(target)
    backend = backend_for(target)
    _check_write_args(target, backend, mode, zarr_format, compute)
    zfmt = int(zarr_format or data.encoding.get("zarr_format", 3))
    options = WriteOptions(zarr_format=zfmt, compute=compute)
    out = backend.prepare(data, options)
    out.attrs = dict(data.attrs)
    out.attrs["history"] = append_history(data.attrs.get("history"), history)
    atomic.check_writable(target.parent)
    _write_local(out, target, backend, options, mode)
    return target


def _check_write_args(
    target: Path, backend: Backend, mode: str, zarr_format: int | None, compute: bool
) -> None:
    """Refuse a bad ``mode`` or ``zarr_format``, an existing target, a deferred non-Zarr write."""
    if mode not in ("w", "w-"):
        raise InputError(f"mode must be 'w' or 'w-', got {mode!r}")
    if zarr_format not in (None, 2, 3):
        raise InputError(f"zarr_format must be 2, 3 or None, got {zarr_format!r}")
    if mode == "w-" and (target.exists() or target.is_symlink()):
        raise InputError(f"{str(target)!r} already exists; pass mode='w' to overwrite it")
    if not compute and not backend.deferred:
        raise InputError("compute=False is only supported when writing Zarr")


def _write_local(
    out: xr.Dataset, target: Path, backend: Backend, options: WriteOptions, mode: str
) -> None:
    """Write the prepared ``out`` to a temporary sibling of ``target``, then rename it.

    On any error the temporary is removed (after the chunks in flight are done)
    and a full disk becomes an [`InputError`][sparsediff.errors.InputError].
    """
    # With the local threaded scheduler the write runs on a pool of our own, so that
    # after a failure we can wait for chunks still in flight before removing the temp.
    local = dask.base.get_scheduler() in (None, dask.threaded.get)
    pool = ThreadPoolExecutor(max_workers=dask.system.CPU_COUNT) if local else None
    run: dict[str, Any] = {"scheduler": "threads", "pool": pool} if pool is not None else {}
    options = dataclasses.replace(options, run=run)
    temps: list[Path] = []

    def put(tmp: Path) -> None:
        temps.append(tmp)
        try:
            backend.write(out, tmp, options)
        finally:
            if pool is not None:  # returns once every chunk in flight is done
                pool.shutdown(wait=True, cancel_futures=True)

    try:
        with hold(target):  # one writer per target (re-entrant: a CLI fill holds it already)
            if mode == "w-" and (target.exists() or target.is_symlink()):  # written meanwhile
                raise InputError(f"{str(target)!r} already exists; pass mode='w' to overwrite it")
            atomic.write_atomic(target, put)
    except BaseException as err:
        if pool is None:  # a distributed cluster may still finish a chunk or two
            for _ in range(3):
                time.sleep(0.2)
                for tmp in temps:
                    atomic.remove(tmp)
        full = _disk_full(err, target, out.nbytes)
        if full is not None:
            raise full from err
        raise


def _write_url(
    data: xr.Dataset, url: str, mode: str, zarr_format: int | None, history: str | None
) -> str:
    """[`write`][write] to a URL other than ``file://`` (Zarr only, not atomic)."""
    if mode not in ("w", "w-"):
        raise InputError(f"mode must be 'w' or 'w-', got {mode!r}")
    zfmt = int(zarr_format or data.encoding.get("zarr_format", 3))
    backend = backend_for(Path(url.rstrip("/").rsplit("/", 1)[-1]))
    out = backend.prepare(data, WriteOptions(zarr_format=zfmt))
    out.attrs = dict(data.attrs)
    out.attrs["history"] = append_history(data.attrs.get("history"), history)
    return write_url(out, url, mode=mode, zarr_format=zfmt)


def _disk_full(err: BaseException, target: Path, nbytes: int) -> InputError | None:
    """A one-line "disk full" error for ``err``, or ``None`` if it is something else.

    Zarr says ``ENOSPC`` (or ``EDQUOT``, a quota); netCDF-C only says "NetCDF: HDF
    error", so that one counts as a full disk when the device has less room than
    the data's size (the partial file is removed by then).
    """
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        cause = "no space left (or the quota is used up)"
    elif isinstance(err, RuntimeError) and "HDF error" in str(err):
        try:
            free = shutil.disk_usage(target.parent).free
        except OSError:
            return None
        if free >= nbytes:
            return None
        cause = f"the data need about {nbytes / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free"
    else:
        return None
    return InputError(
        f"cannot write {str(target)!r}: the disk is full ({cause}); nothing was written. "
        "Free some space or write elsewhere"
    )
