"""Training checkpoints: safetensors + JSON, written atomically, never pickled.

A checkpoint is a directory ``<out>/checkpoints/<stage>-<step:08d>/`` holding

- ``state.json``: stage, step, EMA update count, optimizer hyper-parameters and
  the JSON part of its state, plus free-form ``extra`` (completed stages,
  latent scale, ...);
- ``<name>.safetensors`` for each tensor group (net weights, EMA weights,
  optimizer moments, frozen nets of earlier stages).

It is a tensor directory ([`sparsediff.tensor_dir`][sparsediff.tensor_dir], the
writer of model directories too): ``state.json`` records the SHA-256 of every
other file under ``"files"``, and [`load_checkpoint`][load_checkpoint] checks
them before reading, so a truncated or corrupted checkpoint is refused in one
line rather than resumed from. Checkpoints written before the checksums were
recorded (no ``"files"``) load unchecked.

``<out>/checkpoints/latest.json`` names the newest complete checkpoint; it is
replaced atomically only after the checkpoint directory is complete, so a run
killed at any moment leaves the previous checkpoint as ``latest``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from sparsediff import atomic
from sparsediff.errors import CheckpointError
from sparsediff.tensor_dir import TensorDirWriter, verify_files, write_tensor_dir

__all__ = [
    "TrainState",
    "check_state_fits",
    "flatten_optimizer",
    "latest_checkpoint",
    "load_checkpoint",
    "load_state",
    "save_checkpoint",
    "unflatten_optimizer",
]


@dataclass
class TrainState:
    """What a checkpoint holds besides tensors."""

    stage: str
    step: int
    ema_updates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for k, v in pstate.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}/{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of [`flatten_optimizer`][flatten_optimizer]."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, k = key.split("/", 1)
        state.setdefault(int(pid), {})[k] = v
    for pid, d in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(d)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    out: str | os.PathLike[str],
    state: TrainState,
    tensors: dict[str, dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    keep: int = 2,
) -> Path:
    """Write a checkpoint atomically and point ``latest.json`` at it.

    Parameters
    ----------
    out
        The run directory (checkpoints go to ``out/checkpoints``).
    state
        Stage, step and JSON-able extras.
    tensors
        Named groups of tensors, e.g. ``{"net": ..., "ema": ..., "autoencoder": ...}``.
    optimizer
        Its state is saved as ``optim.safetensors`` + JSON in ``state.json``.
    keep
        How many most recent checkpoints to keep.

    Returns
    -------
    pathlib.Path
        The checkpoint directory.
    """
    root = Path(out) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"{state.stage}-{state.step:08d}"
    final = root / name

    def write(out: TensorDirWriter) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "stage": state.stage,
            "step": state.step,
            "ema_updates": state.ema_updates,
            "extra": state.extra,
            "groups": sorted(tensors),
        }
        for group, tens in tensors.items():
            out.tensors(f"{group}.safetensors", tens)
        if optimizer is not None:
            opt_t, opt_meta = flatten_optimizer(optimizer.state_dict())
            out.tensors("optim.safetensors", opt_t)
            doc["optimizer"] = opt_meta
        return doc

    write_tensor_dir(final, "state.json", write, indent=1, default=float)
    atomic.write_text(root / "latest.json", json.dumps({"checkpoint": name}))
    done = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    done = [p for p in done if p.name.startswith(f"{state.stage}-")]
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(out: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint of a run directory, or ``None``.

    Raises
    ------
    CheckpointError
        ``latest.json`` is unreadable, names a checkpoint outside
        ``<out>/checkpoints`` (a path, ``..``, or a symlink leading out), or an
        incomplete checkpoint.
    """
    root = Path(out) / "checkpoints"
    pointer = root / "latest.json"
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{pointer} is not a checkpoint pointer: {e}") from None
    inside = (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not name.startswith(".")
        and Path(name).name == name
        and (root / name).resolve().parent == root.resolve()
    )
    if not inside:
        raise CheckpointError(
            f"{pointer} names {name!r}, which is not a checkpoint directory inside {root}"
        )
    path = root / name
    if not (path / "state.json").is_file():
        raise CheckpointError(f"{pointer} points at {path}, which is incomplete or missing")
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[TrainState, dict[str, dict[str, torch.Tensor]], dict[str, Any] | None]:
    """Read a checkpoint directory.

    Returns
    -------
    state, tensors, optimizer_state
        ``optimizer_state`` is ready for ``optimizer.load_state_dict`` (or ``None``).

    Raises
    ------
    CheckpointError
        ``state.json`` is unreadable, a file is missing, fails its checksum
        or is not covered by it, or a tensor file cannot be read.
    """
    path = Path(path)
    try:
        doc = json.loads((path / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"cannot read checkpoint {path}: state.json is not a JSON object")
    _verify(path, doc)
    try:
        tensors = {g: load_file(str(path / f"{g}.safetensors")) for g in doc["groups"]}
        opt = None
        if "optimizer" in doc:
            opt = unflatten_optimizer(load_file(str(path / "optim.safetensors")), doc["optimizer"])
    except (OSError, KeyError, TypeError, SafetensorError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    state = TrainState(doc["stage"], doc["step"], doc.get("ema_updates", 0), doc.get("extra", {}))
    return state, tensors, opt


def _verify(path: Path, doc: dict[str, Any]) -> None:
    """Check the checksums ``state.json`` records (checkpoints written before them have none).

    Raises
    ------
    CheckpointError
        A file that fails its checksum or is missing, or a tensor file that
        the record does not cover.
    """
    if "files" not in doc:
        return  # written before checkpoints were checksummed: read as before
    files = verify_files(path, "state.json", doc["files"], "checkpoint")
    groups = doc.get("groups", [])
    needed = [f"{g}.safetensors" for g in groups if isinstance(g, str)]
    needed += ["optim.safetensors"] if "optimizer" in doc else []
    unchecked = [f for f in needed if f not in files]
    if unchecked:
        raise CheckpointError(
            f"{path / 'state.json'} records no checksum of {', '.join(unchecked)} "
            "(every file of a checkpoint is checksummed; was it edited by hand?)"
        )


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def check_state_fits(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Refuse, in one line, a saved ``state`` that does not fit ``module``.

    Parameters
    ----------
    module
        The network built from the current config.
    state
        Its saved ``state_dict`` (from a checkpoint).
    what
        Name of the state in the message (e.g. ``"autoencoder weights"``).

    Raises
    ------
    CheckpointError
        Keys missing from or unexpected in ``state``, or tensors of other
        shapes; the message counts each kind and names the first of each
        (the usual cause: widths or depths changed in the config since the
        checkpoint was written).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(
            f"{len(shapes)} tensor(s) of another shape (first {k!r}: {_shape(state[k])} "
            f"in the checkpoint, {_shape(own[k])} now)"
        )
    if missing:
        parts.append(f"{len(missing)} key(s) missing (first {missing[0]!r})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) (first {unexpected[0]!r})")
    if parts:
        raise CheckpointError(
            f"the checkpoint's {what} do not fit the network of this config: "
            f"{'; '.join(parts)}; was the architecture changed since it was written?"
        )


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``module.load_state_dict(state)`` after `check_state_fits` (one-line errors)."""
    check_state_fits(module, state, what)
    module.load_state_dict(state)
