"""Tensor directories: safetensors + JSON files, every one checksummed, written atomically.

A saved model ([`sparsediff.model`][sparsediff.model]) and a training checkpoint
([`sparsediff.training.checkpoint`][sparsediff.training.checkpoint]) are both a
directory of ``.safetensors`` tensor groups and JSON files, described by one
JSON *index* file (``config.json``, ``state.json``). This module is their one
writer and checker:

- [`write_tensor_dir`][write_tensor_dir] assembles the directory under a hidden
  temporary sibling and renames it into place
  ([`sparsediff.atomic.write_atomic`][sparsediff.atomic.write_atomic]), so no
  half-written directory ever sits at the target; every file written through
  its [`TensorDirWriter`][TensorDirWriter] is recorded with its SHA-256 under
  the index's ``"files"`` key, and the index is written last;
- [`verify_files`][verify_files] checks that record before anything is read:
  a truncated, corrupted or edited file is one clear
  [`CheckpointError`][sparsediff.errors.CheckpointError], not silently wrong
  numbers.

Tensors are written with ``safetensors.torch.save_file`` and never pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from sparsediff import atomic
from sparsediff.errors import CheckpointError

__all__ = ["TensorDirWriter", "sha256", "verify_files", "write_tensor_dir"]


def sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class TensorDirWriter:
    """Writes the files of one tensor directory under construction and records their checksums.

    Made by [`write_tensor_dir`][write_tensor_dir], which hands it to the
    caller's ``write`` function.

    Attributes
    ----------
    root
        The (temporary) directory being written.
    files
        File name -> SHA-256 of every file written or recorded so far.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, str] = {}

    def tensors(
        self,
        name: str,
        tensors: Mapping[str, torch.Tensor],
        metadata: dict[str, str] | None = None,
    ) -> Path:
        """Write one group of tensors as ``name`` (safetensors, CPU, contiguous) and record it.

        Parameters
        ----------
        name
            File name inside the directory (``<group>.safetensors``).
        tensors
            Tensor name -> tensor.
        metadata
            The file's safetensors text metadata.

        Returns
        -------
        pathlib.Path
            The written file.
        """
        cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        save_file(cpu, str(self.root / name), metadata=metadata)
        # safetensors creates its files owner-only (0600); give them the permissions
        # any other file gets under the umask, so a group sharing models can read them
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.root / name, 0o666 & ~umask)
        return self.record(name)

    def text(self, name: str, text: str) -> Path:
        """Write ``text`` (UTF-8) as the file ``name`` and record it."""
        (self.root / name).write_text(text)
        return self.record(name)

    def record(self, name: str) -> Path:
        """Record the checksum of ``name``, a file another writer put in the directory."""
        path = self.root / name
        self.files[name] = sha256(path)
        return path


def write_tensor_dir(
    target: str | os.PathLike[str],
    index: str,
    write: Callable[[TensorDirWriter], dict[str, Any]],
    *,
    indent: int = 2,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> Path:
    """Write a checksummed tensor directory atomically.

    Parameters
    ----------
    target
        The directory to create or replace (missing parents are created).
    index
        File name of the JSON index (``config.json``, ``state.json``).
    write
        Called with a [`TensorDirWriter`][TensorDirWriter] on a fresh
        temporary directory: it writes the files through it and returns the
        index document; its ``"files"`` key is set to the checksums of every
        file written.
    indent, sort_keys, default
        As for ``json.dumps`` of the index.

    Returns
    -------
    pathlib.Path
        ``target``.
    """

    def build(tmp: Path) -> None:
        tmp.mkdir()
        writer = TensorDirWriter(tmp)
        doc = write(writer)
        doc["files"] = dict(writer.files)
        # written last: it records the checksum of every other file
        text = json.dumps(doc, indent=indent, sort_keys=sort_keys, default=default)
        (tmp / index).write_text(text)

    atomic.write_atomic(target, build)
    return Path(target)


def verify_files(path: Path, index: str, files: Any, what: str) -> dict[str, str]:
    """The ``"files"`` record of a tensor directory's index, each file present and matching.

    Parameters
    ----------
    path
        The directory.
    index
        File name of its index (named in messages).
    files
        The index's ``"files"`` value.
    what
        The directory in words, for messages (``"model directory"``).

    Returns
    -------
    dict
        File name -> SHA-256, every file checked.

    Raises
    ------
    CheckpointError
        A malformed record, a name that is not a file of the directory, a
        missing file, or a file whose checksum differs (truncated, corrupted
        or modified after saving).
    """
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise CheckpointError(f"{path / index} has a malformed 'files' record")
    for fname, digest in files.items():
        if fname in ("", ".", "..", index) or Path(fname).name != fname:
            raise CheckpointError(f"{path / index} lists {fname!r}, not a file of the {what}")
        fpath = path / fname
        if not fpath.is_file():
            raise CheckpointError(f"{fpath} is missing")
        if sha256(fpath) != digest:
            raise CheckpointError(
                f"{fpath} does not match the checksum in {index} "
                "(truncated, corrupted or modified after saving)"
            )
    return files
