"""The model container: networks + typed spec + normalization stats (+ climatology, invalid mask).

A saved model is a directory (DESIGN §6)::

    model/
      config.json            format name + version, net configs, the ModelSpec, checksums
      stats.json             per-variable normalization stats (masked, see data.stats)
      provenance.json        how it was trained (config, data source, versions, steps, time)
      autoencoder.safetensors
      prior.safetensors      (absent for an autoencoder-only model)
      climatology.safetensors  per-point means on the training grid, with its coordinates
      invalid.safetensors    points invalid at every training step (land), with coordinates

Weights are only ever read with `safetensors.torch.load_file`; nothing is
pickled. The SHA-256 of every other file of the directory (weights,
climatology, invalid mask, ``stats.json``, ``provenance.json``) is recorded in
``config.json`` and checked on load, so a truncated or tampered file is a clear
[`CheckpointError`][CheckpointError] rather than silently wrong numbers. A model file that
``config.json`` does not record is refused too, rather than silently ignored.

The network configurations are checked before any network is built
([`check_net_config`][check_net_config]): widths and channel counts of at most
`MAX_WIDTH`, a sane depth and a rough parameter count, so a damaged or
hostile ``config.json`` cannot ask for a 150 GB allocation.

[`load`][load] also accepts a run directory (``train --out``) that holds the
model in ``model/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sparsediff import atomic
from sparsediff.data.stats import Stats
from sparsediff.errors import CheckpointError, InputError, SparsediffError
from sparsediff.method import Method, build_method
from sparsediff.method.spec import ModelSpec
from sparsediff.networks.completion import CompletionAutoencoder
from sparsediff.networks.precond import EDMPrecond
from sparsediff.paths import check_loops

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_PARAMETERS",
    "MAX_WIDTH",
    "NET_CLASSES",
    "Model",
    "as_model",
    "check_net_config",
    "load",
]

FORMAT_NAME = "sparsediff-model"
#: Bumped whenever the on-disk layout or a net's meaning changes incompatibly.
#: Version 2: the v2 method (asymmetric autoencoder, first guess, typed spec).
FORMAT_VERSION = 2

#: Network classes a model directory may name (nothing else is ever built).
NET_CLASSES: dict[str, Any] = {
    "CompletionAutoencoder": CompletionAutoencoder,
    "EDMPrecond": EDMPrecond,
}
_NET_NAMES = ("autoencoder", "prior")
#: Model files read on load; each must be recorded (with its checksum) in config.json.
_FIELD_FILES = ("climatology.safetensors", "invalid.safetensors")

#: Largest width or channel count a saved network may declare.
MAX_WIDTH = 4096
#: Largest number of levels (widths per list) a saved network may declare.
MAX_LEVELS = 8
#: Largest ``blocks_per_level`` a saved network may declare.
MAX_BLOCKS = 16
#: Largest rough parameter count a saved network may declare (4 GB of float32).
MAX_PARAMETERS = 1_000_000_000


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Model:
    """A trained sparsediff model.

    Parameters
    ----------
    spec
        What the model fills and how ([`ModelSpec`][sparsediff.method.spec.ModelSpec]).
    nets
        The trained networks by stage name (``"autoencoder"``, ``"prior"``);
        a missing one is an untrained stage.
    stats
        Per-variable normalization statistics computed on observed points.
    provenance
        How the model was made (training config, data source, versions, steps).
    climatology
        Optional per-point mean fields (one DataArray per variable, on the grid
        the model was trained on); when present the model learns and fills
        anomalies from them.
    invalid
        Optional invalid mask of the training grid (one boolean DataArray per
        variable, ``True`` = invalid at every training step, with the grid's
        coordinates); [`sparsediff.fill`][sparsediff.filling.fill.fill] uses it on the same grid.
    """

    spec: ModelSpec
    nets: dict[str, torch.nn.Module]
    stats: Stats
    provenance: dict[str, Any] = field(default_factory=dict)
    climatology: dict[str, xr.DataArray] | None = None
    invalid: dict[str, xr.DataArray] | None = None

    @property
    def variables(self) -> list[str]:
        """Names of the variables the model fills, in channel order."""
        return list(self.spec.variables)

    @property
    def dims(self) -> tuple[str, ...]:
        """The spatial dims the model works over (2 or 3)."""
        return tuple(self.spec.dims)

    @property
    def method(self) -> Method:
        """The method object (inputs, completion) over this model's networks."""
        return build_method(self.spec, self.nets)

    @property
    def autoencoder(self) -> torch.nn.Module | None:
        """The stage-1 network (``None`` for a pixel model or before stage 1)."""
        return self.nets.get("autoencoder")

    @property
    def prior(self) -> torch.nn.Module | None:
        """The diffusion prior (``None`` before it is trained)."""
        return self.nets.get("prior")

    def to(self, device: str | torch.device) -> Model:
        """Move the networks to ``device`` (in place) and return ``self``."""
        for net in self.nets.values():
            net.to(device)
        return self

    def eval(self) -> Model:
        """Put the networks in evaluation mode (in place) and return ``self``."""
        for net in self.nets.values():
            net.eval()
        return self

    # ------------------------------------------------------------------ save
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the model directory atomically.

        The directory is assembled under a temporary sibling name and renamed into
        place, so no half-written model ever sits at ``path``.

        Parameters
        ----------
        path
            Target directory.
        overwrite
            Replace an existing directory at ``path`` (after the new one is complete).

        Returns
        -------
        pathlib.Path
            The written directory.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise CheckpointError(f"{path} already exists (pass overwrite=True to replace it)")

        def build(tmp: Path) -> None:
            tmp.mkdir()
            nets: dict[str, Any] = {}
            files: dict[str, str] = {}
            for name in _NET_NAMES:
                net = self.nets.get(name)
                if net is None:
                    nets[name] = None
                    continue
                fname = f"{name}.safetensors"
                tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
                save_file(tensors, str(tmp / fname), metadata={"format": FORMAT_NAME})
                files[fname] = _sha256(tmp / fname)
                nets[name] = {"class": type(net).__name__, "config": net.config}
            doc = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                **nets,
                "model": self.spec.model_dump(mode="json"),
                "files": files,
            }
            for fname, fields in zip(_FIELD_FILES, (self.climatology, self.invalid), strict=True):
                if fields:
                    tensors, meta = _field_tensors(fields)
                    save_file(tensors, str(tmp / fname), metadata=meta)
                    files[fname] = _sha256(tmp / fname)
            self.stats.save(tmp / "stats.json")
            (tmp / "provenance.json").write_text(
                json.dumps(self.provenance, indent=2, sort_keys=True, default=str)
            )
            for fname in ("stats.json", "provenance.json"):
                files[fname] = _sha256(tmp / fname)
            # written last: it records the checksum of every other file
            (tmp / "config.json").write_text(json.dumps(doc, indent=2, sort_keys=True))

        atomic.write_atomic(path, build)
        return path

    # ------------------------------------------------------------------ load
    @classmethod
    def load(cls, path: str | os.PathLike[str], *, map_location: str = "cpu") -> Model:
        """Read a model directory written by [`save`][save].

        Raises
        ------
        CheckpointError
            The directory or a file is missing, the format version is not this
            version's, or a weights file is truncated or does not match its checksum.
        """
        path = _model_dir(Path(path))
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
        files = _verified_files(path, doc)
        for name in _NET_NAMES:
            entry = doc.get(name)
            if entry is not None:
                check_net_config(entry, f"{cfg_path}: network {name!r}")
        nets: dict[str, torch.nn.Module] = {}
        for name in _NET_NAMES:
            entry = doc.get(name)
            if entry is None:
                continue
            fname = f"{name}.safetensors"
            fpath = path / fname
            if not fpath.is_file():
                raise CheckpointError(f"{fpath} is missing")
            if fname not in files:
                raise CheckpointError(
                    f"{fpath} does not match the checksum in config.json "
                    "(truncated, corrupted or modified after saving)"
                )
            try:
                state = load_file(str(fpath), device=map_location)
            except (SafetensorError, OSError, ValueError) as e:
                raise CheckpointError(f"cannot read weights {fpath}: {e}") from None
            cls_name = entry.get("class") if isinstance(entry, dict) else None
            if cls_name not in NET_CLASSES:
                raise CheckpointError(
                    f"{cfg_path}: network {name!r} has unknown class {cls_name!r} "
                    f"(known: {sorted(NET_CLASSES)})"
                )
            try:
                net: torch.nn.Module = NET_CLASSES[cls_name].from_config(entry["config"])
            except (SparsediffError, TypeError, ValueError, KeyError, AttributeError) as e:
                raise CheckpointError(
                    f"{cfg_path}: network {name!r} cannot be built from its config: {e}"
                ) from None
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as e:
                line = str(e).splitlines()[0]
                raise CheckpointError(
                    f"weights in {fpath} do not fit the saved config: {line}"
                ) from None
            nets[name] = net.to(map_location).eval()
        fields = {
            fname: _fields_from(path / fname) if fname in files else None  # verified
            for fname in _FIELD_FILES
        }
        climatology = fields["climatology.safetensors"]
        invalid = fields["invalid.safetensors"]
        if invalid is not None:
            invalid = {v: m.astype(bool) for v, m in invalid.items()}
        stats = Stats.load(path / "stats.json")
        prov_path = path / "provenance.json"
        try:
            provenance = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{prov_path} is not valid JSON: {e}") from None
        return cls(
            spec=spec,
            nets=nets,
            stats=stats,
            provenance=provenance,
            climatology=climatology,
            invalid=invalid,
        )


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
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT_NAME


def _verified_files(path: Path, doc: dict[str, Any]) -> dict[str, str]:
    """The ``files`` record of ``config.json``, each file present and matching its SHA-256."""
    files = doc.get("files", {})
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise CheckpointError(f"{path / 'config.json'} has a malformed 'files' record")
    for fname, digest in files.items():
        if fname in ("", ".", "..", "config.json") or Path(fname).name != fname:
            raise CheckpointError(
                f"{path / 'config.json'} lists {fname!r}, not a file of the model directory"
            )
        fpath = path / fname
        if not fpath.is_file():
            raise CheckpointError(f"{fpath} is missing")
        if _sha256(fpath) != digest:
            raise CheckpointError(
                f"{fpath} does not match the checksum in config.json "
                "(truncated, corrupted or modified after saving)"
            )
    unchecked = [f for f in ("stats.json", "provenance.json") if f not in files]
    unchecked += [f for f in _FIELD_FILES if f not in files and (path / f).exists()]
    if unchecked:
        raise CheckpointError(
            f"{path / 'config.json'} records no checksum of {', '.join(unchecked)} "
            "(every file of a model directory is checksummed; was it edited by hand?)"
        )
    return files


def _field_tensors(
    fields: dict[str, xr.DataArray],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Fields on the training grid as safetensors tensors + metadata, coordinates included.

    Numeric values are stored as float64 (booleans as uint8, flagged in the
    metadata). Coordinates of the fields' dims are stored as float64 when
    numeric, as int64 nanoseconds when they are times, and as JSON text
    otherwise, so that a fill can match the data to the field by coordinates.
    """
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {}
    for v, da in fields.items():
        if da.dtype == np.bool_:
            tensors[f"var/{v}"] = torch.from_numpy(np.array(da.values, dtype=np.uint8))
            meta[f"dtype/{v}"] = "bool"
        else:
            tensors[f"var/{v}"] = torch.tensor(np.array(da.values, dtype=np.float64))
        meta[f"dims/{v}"] = json.dumps([str(d) for d in da.dims])
        for d in da.dims:
            if d not in da.coords or da[d].dims != (d,):
                continue
            values = np.asarray(da[d].values)
            if values.dtype.kind == "M":
                ns = values.astype("datetime64[ns]").astype(np.int64)
                tensors[f"coord/{d}"] = torch.from_numpy(ns)
                meta[f"coord_kind/{d}"] = "datetime64[ns]"
            elif np.issubdtype(values.dtype, np.number):
                tensors[f"coord/{d}"] = torch.tensor(np.array(values, dtype=np.float64))
            else:
                meta[f"coord_json/{d}"] = json.dumps([str(x) for x in values.tolist()])
    return tensors, meta


def _fields_from(path: Path) -> dict[str, xr.DataArray]:
    """Read fields written by [`_field_tensors`][_field_tensors]."""
    from safetensors import safe_open

    out = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            keys = list(f.keys())
            coords: dict[str, Any] = {}
            for k in keys:
                if k.startswith("coord/"):
                    d = k.split("/", 1)[1]
                    values = f.get_tensor(k).numpy()
                    if meta.get(f"coord_kind/{d}") == "datetime64[ns]":
                        values = values.astype("datetime64[ns]")
                    coords[d] = values
            for k, text in meta.items():
                if k.startswith("coord_json/"):
                    coords[k.split("/", 1)[1]] = np.array(json.loads(text), dtype=object)
            for k in keys:
                if k.startswith("var/"):
                    v = k.split("/", 1)[1]
                    dims = json.loads(meta[f"dims/{v}"])
                    values = f.get_tensor(k).numpy()
                    if meta.get(f"dtype/{v}") == "bool":
                        values = values.astype(bool)
                    out[v] = xr.DataArray(
                        values,
                        dims=dims,
                        coords={d: coords[d] for d in dims if d in coords},
                        name=v,
                    )
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    return out


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


def load(path: str | os.PathLike[str], *, map_location: str = "cpu") -> Model:
    """Load a saved model directory (``sparsediff.load``). See [`Model.load`][Model.load]."""
    return Model.load(path, map_location=map_location)


def as_model(model: Model | str | os.PathLike[str], *, map_location: str = "cpu") -> Model:
    """A [`Model`][Model], loading it first when given the path of a model (or run) directory.

    Raises
    ------
    InputError
        ``model`` is neither a model nor a path.
    CheckpointError
        As [`load`][load].
    """
    if isinstance(model, Model):
        return model
    if isinstance(model, str | os.PathLike):
        return Model.load(model, map_location=map_location)
    raise InputError(
        f"model must be a sparsediff Model or the path of a model directory, "
        f"got {type(model).__name__}"
    )
