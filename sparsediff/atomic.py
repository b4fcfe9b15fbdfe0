"""Atomic writes: build a file or directory under a hidden sibling name, then rename it.

The writers of sparsediff's results go through this module: local data
files ([`sparsediff.data.io.write`][sparsediff.data.io.write]), model
directories, checkpoints, statistics, the resume records and the final rename
of a streamed Zarr fill, and the figures of [`sparsediff.plotting`][sparsediff.plotting]
and of the spectra ([`save_figure`][save_figure]), and the table and figures
of [`sparsediff.evaluate`][sparsediff.evaluation.evaluate.evaluate]. They all behave the same on
failure: an exception at any point, in the writer or in a rename, leaves the
target as it was before (the old file or directory, or nothing) or as the
complete new one, never a mix, and removes the temporary sibling.

Writes that do not go through it, on purpose or not yet:

- the training and adaptation logs (``metrics.jsonl``, ``metrics.csv``,
  TensorBoard events) are appended to a line at a time: a crash loses at most
  the line being written;
- a streamed Zarr fill writes its regions into a hidden partial store in
  place (that is how it resumes); only the finished store is renamed atomically;
- a store at a URL other than ``file://`` is written in place (an object store
  has no rename; [`sparsediff.data.urls`][sparsediff.data.urls]).

A file replaces a file with one `os.replace`, which is atomic on POSIX
and Windows. A directory cannot be swapped in one call: the old one is first
renamed aside (``.old-<id>-<name>``), the new one is renamed into place, and
the old one is deleted; if the second rename fails the old directory is moved
back. Only a hard kill (SIGKILL, power loss) between these two renames can
leave the target absent, with the old directory beside it under its ``.old-``
name.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sparsediff.errors import InputError

__all__ = [
    "check_writable",
    "denied",
    "make_dirs",
    "remove",
    "replace",
    "save_figure",
    "temp_sibling",
    "write_atomic",
    "write_bytes",
    "write_text",
]

T = TypeVar("T")
PathLike = str | os.PathLike[str]


def temp_sibling(target: PathLike, tag: str = "tmp") -> Path:
    """A fresh hidden path beside ``target``: ``.<tag>-<12 hex>-<name>``.

    In the same directory, hence on the same file system, so renaming it onto
    ``target`` is a rename and not a copy.
    """
    target = Path(target)
    return target.with_name(f".{tag}-{uuid.uuid4().hex[:12]}-{target.name}")


def remove(path: PathLike) -> None:
    """Delete a file, a symlink or a directory tree at ``path``; no error if absent."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable where the OS allows it (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace(src: PathLike, target: PathLike) -> None:
    """Move ``src`` (a file or a directory) onto ``target``, replacing what is there.

    On failure ``target`` is left as it was and ``src`` stays where it is.

    Parameters
    ----------
    src
        The complete new file or directory (on the same file system).
    target
        Where it goes; an existing file or directory there is replaced.
    """
    src, target = Path(src), Path(target)
    exists = target.exists() or target.is_symlink()
    if not exists or (not src.is_dir() and not target.is_dir()):
        os.replace(src, target)
        _fsync_dir(target.parent)
        return
    backup = temp_sibling(target, "old")
    os.replace(target, backup)
    try:
        os.replace(src, target)
    except BaseException:
        os.replace(backup, target)
        raise
    _fsync_dir(target.parent)
    remove(backup)


_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _not_writable(directory: Path) -> InputError:
    return InputError(f"cannot write into {str(directory)!r}: the directory is not writable")


def check_writable(directory: PathLike) -> None:
    """Raise a one-line [`InputError`][InputError] unless files can be created in ``directory``.

    A missing directory is checked at its nearest existing ancestor (the one
    that the missing levels would be created in). Nothing is created.
    """
    directory = Path(directory).absolute()
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"cannot write into {str(directory)!r}: {str(probe)!r} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise _not_writable(directory)


def make_dirs(directory: PathLike) -> None:
    """Create ``directory`` and its parents; a refusal is a one-line [`InputError`][InputError]."""
    directory = Path(directory)
    check_writable(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.errno in _DENIED:
            raise _not_writable(directory) from err
        raise


def denied(err: BaseException, tmp: PathLike) -> InputError | None:
    """A "not writable" error for ``err`` if it is a refusal to create ``tmp``, else None.

    Writers call it on an exception from their first write, to turn a
    permission error (read-only directory or file system) into one clear line.
    """
    tmp = Path(tmp)
    if isinstance(err, OSError) and err.errno in _DENIED and not tmp.exists():
        return _not_writable(tmp.parent)
    return None


def write_atomic(target: PathLike, write: Callable[[Path], T]) -> T:
    """Create ``target`` by calling ``write(tmp)`` and renaming ``tmp`` onto it.

    Parameters
    ----------
    target
        The file or directory to create or replace. Missing parent
        directories are created.
    write
        Called with a fresh hidden sibling path that does not exist yet; it
        must create a file or a directory there. It must not return before
        everything it started is finished (so that nothing is written into the
        temporary path after a failure).

    Returns
    -------
    Whatever ``write`` returns.

    Raises
    ------
    InputError
        The parent directory is not writable (nothing is created).
    Exception
        Whatever ``write`` or a rename raised; the temporary path is removed
        and ``target`` is as it was.
    """
    target = Path(target)
    make_dirs(target.parent)
    tmp = temp_sibling(target)
    try:
        result = write(tmp)
        if not (tmp.exists() or tmp.is_symlink()):
            raise RuntimeError(f"the writer of {str(target)!r} created nothing")
        replace(tmp, target)
    except BaseException as err:
        remove(tmp)
        clear = denied(err, tmp)
        if clear is not None:
            raise clear from err
        raise
    return result


def write_bytes(target: PathLike, data: bytes) -> Path:
    """Write ``data`` to the file ``target`` atomically (flushed to disk before the rename)."""

    def put(tmp: Path) -> None:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    write_atomic(target, put)
    return Path(target)


def write_text(target: PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to the file ``target`` atomically (see [`write_bytes`][write_bytes])."""
    return write_bytes(target, text.encode(encoding))


class _Figure(Protocol):
    """What [`save_figure`][save_figure] needs of a figure (a matplotlib ``Figure``)."""

    def savefig(self, fname: Any, **kwargs: Any) -> Any: ...


def save_figure(fig: _Figure, target: PathLike, *, dpi: float = 110) -> Path:
    """Save a matplotlib figure to the file ``target`` atomically.

    The figure is rendered into memory first, in the format that the suffix of
    ``target`` names (``.png``, ``.pdf``, ``.svg``, ...; matplotlib's default,
    PNG, when it has none), then written with [`write_bytes`][write_bytes]: a
    failed render leaves ``target`` as it was, and the file is written at
    ``target`` exactly (no suffix is added).

    Parameters
    ----------
    fig
        A figure with matplotlib's ``savefig``.
    target
        The file to create or replace.
    dpi
        Resolution of raster formats.

    Returns
    -------
    Path
        ``target``.
    """
    fmt = Path(target).suffix.lstrip(".").lower() or None
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return write_bytes(target, buf.getvalue())
