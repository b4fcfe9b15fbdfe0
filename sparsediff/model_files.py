"""Reading and verifying a model directory, before anything is built from it.

A model directory (see [`sparsediff.model`][sparsediff.model]) records in ``config.json``
its format name and version and the SHA-256 of every other file of the
directory; they are checked here, so a truncated or tampered file is a clear
[`CheckpointError`][sparsediff.errors.CheckpointError] rather than silently wrong numbers. A
model file that ``config.json`` does not record is refused too.

The network configurations are checked before any network is built
([`check_net_config`][check_net_config]): widths and channel counts of at most
`MAX_WIDTH`, a sane depth and a rough parameter count, so a damaged or
hostile ``config.json`` cannot ask for a 150 GB allocation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file

from sparsediff.errors import CheckpointError
from sparsediff.method.spec import ModelSpec
from sparsediff.paths import check_loops
from sparsediff.tensor_dir import verify_files

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_BLOCKS",
    "MAX_LEVELS",
    "MAX_PARAMETERS",
    "MAX_WIDTH",
    "check_net_config",
]

FORMAT_NAME = "sparsediff-model"
#: Bumped whenever the on-disk layout or a net's meaning changes incompatibly.
#: Version 2: the v2 method (asymmetric autoencoder, first guess, typed spec).
FORMAT_VERSION = 2

#: Model files read on load; each must be recorded (with its checksum) in config.json.
_FIELD_FILES = ("climatology.safetensors", "invalid.safetensors", "eofs.safetensors")

#: Largest width or channel count a saved network may declare.
MAX_WIDTH = 4096
#: Largest number of levels (widths per list) a saved network may declare.
MAX_LEVELS = 8
#: Largest ``blocks_per_level`` a saved network may declare.
MAX_BLOCKS = 16
#: Largest rough parameter count a saved network may declare (4 GB of float32).
MAX_PARAMETERS = 1_000_000_000


def _model_dir(path: Path) -> Path:
    """``path`` if it is a model directory, its ``model/`` if it is a run directory.

    Raises
    ------
    CheckpointError
        Neither; the message names a model directory found below ``path``, if
        any, or the directory of ``path`` when ``path`` is a file in a model
        directory (its ``config.json``).
    """
    check_loops(path)
    if (path / "config.json").is_file():
        return path
    if path.is_file() and (path.parent / "config.json").is_file():
        raise CheckpointError(
            f"{path} is a file; a model is the directory that holds config.json and the "
            f"weights: pass {str(path.parent)!r}"
        )
    if (path / "model" / "config.json").is_file():
        return path / "model"  # a run directory (train --out)
    hint = ""
    if path.is_dir():
        candidates = sorted(path.glob("*/config.json")) + sorted(path.glob("*/*/config.json"))
        found = [c.parent for c in candidates if _is_model_config(c)]
        if found:
            hint = f"; did you mean {str(found[0])!r}?"
    raise CheckpointError(f"{path} is not a sparsediff model directory (no config.json){hint}")


def _is_model_config(path: Path) -> bool:
    """Whether ``path`` is the ``config.json`` of a sparsediff model."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT_NAME


def _verified_files(path: Path, doc: dict[str, Any]) -> dict[str, str]:
    """The ``files`` record of ``config.json``, each file present and matching its SHA-256."""
    files = verify_files(path, "config.json", doc.get("files", {}), "model directory")
    unchecked = [f for f in ("stats.json", "provenance.json") if f not in files]
    unchecked += [f for f in _FIELD_FILES if f not in files and (path / f).exists()]
    if unchecked:
        raise CheckpointError(
            f"{path / 'config.json'} records no checksum of {', '.join(unchecked)} "
            "(every file of a model directory is checksummed; was it edited by hand?)"
        )
    return files


def _read_description(path: Path) -> tuple[dict[str, Any], ModelSpec]:
    """The checked ``config.json`` of a model directory, and its model spec.

    Raises
    ------
    CheckpointError
        Not JSON, not a sparsediff model, another format version, or an invalid spec.
    """
    cfg_path = path / "config.json"
    try:
        doc = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise CheckpointError(
            f"{cfg_path} holds a JSON {type(doc).__name__}, not a sparsediff model description"
        )
    if doc.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{cfg_path} is not a sparsediff model (format={doc.get('format')!r})"
        )
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has model format version {version}; this sparsediff reads version "
            f"{FORMAT_VERSION} (re-train, or use the sparsediff release that wrote it)"
        )
    try:
        spec = ModelSpec.model_validate(doc.get("model"))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "model"
        raise CheckpointError(
            f"{cfg_path} holds an invalid model spec ({where}: {first['msg']})"
        ) from None
    return doc, spec


def _read_weights(fpath: Path, files: dict[str, str], map_location: str) -> dict[str, torch.Tensor]:
    """The tensors of one weights file, after checking it is there and was verified.

    Raises
    ------
    CheckpointError
        The file is missing, failed its checksum, or cannot be read.
    """
    if not fpath.is_file():
        raise CheckpointError(f"{fpath} is missing")
    if fpath.name not in files:
        raise CheckpointError(
            f"{fpath} does not match the checksum in config.json "
            "(truncated, corrupted or modified after saving)"
        )
    try:
        return load_file(str(fpath), device=map_location)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read weights {fpath}: {e}") from None


def check_net_config(entry: Any, what: str) -> None:
    """Refuse a saved network description that no sane model has, before building it.

    Parameters
    ----------
    entry
        The ``{"class": ..., "config": {...}}`` record of one network in ``config.json``.
    what
        The network in words, for messages.

    Raises
    ------
    CheckpointError
        A record that is not an object; a width, channel count or embedding
        size that is not an integer in ``[0, MAX_WIDTH]``; more than
        ``MAX_LEVELS`` levels or ``MAX_BLOCKS`` blocks per level; or a rough
        parameter count above ``MAX_PARAMETERS``.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise CheckpointError(f"{what} is not described by an object with a 'config' object")
    estimate = 0.0

    def count(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CheckpointError(f"{what}: {key} must be an integer, got {value!r}")
        if not 0 <= value <= MAX_WIDTH:
            raise CheckpointError(
                f"{what}: {key} = {value} is outside [0, {MAX_WIDTH}] (a damaged config.json?)"
            )
        return value

    def walk(cfg: dict[str, Any], where: str) -> None:
        nonlocal estimate
        dims = cfg.get("spatial_dims", 2)
        kernel = 3 ** (dims if dims in (1, 2, 3) else 3)
        blocks = cfg.get("blocks_per_level", 1)
        if isinstance(blocks, int) and not isinstance(blocks, bool):
            if not 0 <= blocks <= MAX_BLOCKS:
                raise CheckpointError(
                    f"{what}: {where}blocks_per_level = {blocks} is outside [0, {MAX_BLOCKS}]"
                )
        else:
            blocks = 1
        for key, value in cfg.items():
            name = f"{where}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}.")
            elif key.endswith("widths"):
                if not isinstance(value, list) or not 1 <= len(value) <= MAX_LEVELS:
                    raise CheckpointError(
                        f"{what}: {name} must be a list of 1 to {MAX_LEVELS} widths, got {value!r}"
                    )
                widths = [count(w, name) for w in value]
                if min(widths) < 1:
                    raise CheckpointError(f"{what}: {name} holds a width of 0")
                estimate += sum(w * w for w in widths) * kernel * 2 * (blocks + 1)
            elif value is not None and (
                key.endswith("channels") or key in ("n_vars", "n_inputs", "emb_dim")
            ):
                count(value, name)

    walk(entry["config"], "")
    if estimate > MAX_PARAMETERS:
        raise CheckpointError(
            f"{what} declares about {estimate:.2g} parameters, more than {MAX_PARAMETERS:.0e} "
            "(a damaged config.json?)"
        )
