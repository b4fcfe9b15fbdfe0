"""Paths that cannot lead anywhere: a loop of symbolic links, said as such.

``a -> b -> a`` used to surface as "file not found" for an input, or as
``FileExistsError`` for an output (``Path.exists()`` is False on a loop, yet
the name is taken). [`check_loops`][check_loops] finds the link of a path (or of one
of its parents) that loops and names it in one line.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from sparsediff.errors import InputError

__all__ = ["check_loops"]


def _loops(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def check_loops(path: str | os.PathLike[str]) -> None:
    """Raise a one-line `InputError` if ``path`` runs into a loop of symbolic links.

    Parameters
    ----------
    path
        Any path (it need not exist).

    Raises
    ------
    InputError
        Resolving ``path`` loops; the message names the first looping link
        (``path`` itself or one of its parents).
    """
    path = Path(os.path.abspath(os.fspath(path)))
    if not _loops(path):
        return
    culprit = next((p for p in reversed(path.parents) if _loops(p)), path)
    raise InputError(
        f"{str(path)!r}: {str(culprit)!r} is a loop of symbolic links (it leads back to "
        "itself); point the link at a real file or directory"
    )
