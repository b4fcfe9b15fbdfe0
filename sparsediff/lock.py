"""One writer per output: an exclusive lock on a fill's target for the whole run.

Two fills to the same ``OUT.nc`` (or ``OUT.zarr``) at once used to both
report success while one result was lost. [`hold`][hold] takes an exclusive,
non-blocking lock on a hidden sibling ``.NAME.lock`` before anything is
read or written, records the holder in it (pid, host, start time) and keeps
it until the run ends; a second run refuses at once, in one line naming the
holder.

It uses `fcntl.flock` from the standard library rather than the
``filelock`` package: ``filelock`` truncates the lock file each time it opens
it, so a refused run would erase the holder's record it needs to name. The
kernel drops a ``flock`` when its holder exits, even by SIGKILL, so a
crashed run never leaves a stale lock. On NFS, Linux maps ``flock`` onto
POSIX (``lockd``) locks, which work across hosts; a file system without lock
support (Lustre mounted without ``flock``) gives a warning and the run goes
on unlocked. On systems without ``fcntl`` (Windows) there is no lock.

The lock file is removed when the run ends, while still locked; a run that
then finds its open lock file unlinked or replaced tries again, so two runs
can never both hold a lock on two different files of one name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sparsediff.errors import InputError, SparsediffWarning

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["hold", "lock_path"]

#: Locks this process holds: path -> (file descriptor, how many times entered).
_HELD: dict[Path, list[int]] = {}
_GUARD = threading.Lock()
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of ``target``: ``.NAME.lock`` beside it."""
    target = Path(os.path.abspath(os.fspath(target)))
    return target.with_name(f".{target.name}.lock")


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "another process (it has not recorded itself yet)"


def _acquire(path: Path, target: Path) -> int | None:
    """Lock ``path``; the open descriptor, or ``None`` where locks are not supported."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None  # a directory we cannot write into: the writer says so in one line
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in _BUSY:
                raise InputError(
                    f"{target} is being written by another run ({_holder(path)}); wait for "
                    f"it to finish, or write elsewhere (lock: {path})"
                ) from None
            warnings.warn(
                f"cannot lock {path} ({os.strerror(err.errno or 0)}): a second fill to "
                f"{target} at the same time would not be noticed",
                SparsediffWarning,
                stacklevel=4,
            )
            return None
        try:  # the file we locked must still be the one at `path`
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()} since {stamp}".encode())
            return fd
        os.close(fd)  # its holder removed it as we opened it: try the new one
        time.sleep(0.01)


@contextlib.contextmanager
def hold(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive lock of ``target`` (re-entrant within this process).

    Parameters
    ----------
    target
        The output path (a file or a directory such as a Zarr store).

    Yields
    ------
    pathlib.Path
        The lock file.

    Raises
    ------
    InputError
        Another process holds the lock; the message names it (pid, host,
        start time). Nothing is changed then.
    """
    path = lock_path(target)
    with _GUARD:
        held = _HELD.get(path)
        if held is not None:
            held[1] += 1
        elif fcntl is not None and path.parent.is_dir():
            fd = _acquire(path, Path(target))
            if fd is not None:
                _HELD[path] = [fd, 1]
    try:
        yield path
    finally:
        with _GUARD:
            held = _HELD.get(path)
            if held is not None:
                held[1] -= 1
                if held[1] == 0:
                    del _HELD[path]
                    with contextlib.suppress(OSError):
                        path.unlink()  # still locked: a waiting run sees it gone and retries
                    os.close(held[0])
