"""The model container: networks + typed spec + normalization stats (+ climatology, invalid mask).

A saved model is a directory (DESIGN §6)::

    model/
      config.json            format name + version, net configs, the ModelSpec, checksums
      stats.json             per-variable normalization stats (masked, see data.stats)
      provenance.json        how it was trained (config, data source, versions, steps, time)
      autoencoder.safetensors
      prior.safetensors      (absent for an autoencoder-only model)
      climatology.safetensors  per-point means on the training grid, with its coordinates
      eofs.safetensors         the first guess's EOFs on that grid (``data.eofs``; optional)
      invalid.safetensors    points invalid at every training step (land), with coordinates

Weights are only ever read with `safetensors.torch.load_file`; nothing is
pickled. The directory is written by the one writer of tensor directories
([`sparsediff.tensor_dir`][sparsediff.tensor_dir]): every file of it is
checksummed in ``config.json``, and the network configurations are bounded;
both are checked on load before anything is built (`sparsediff.model_files`,
whose public names are re-exported here).

[`load`][load] also accepts a run directory (``train --out``) that holds the
model in ``model/``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from safetensors import SafetensorError

from sparsediff.data.stats import Stats
from sparsediff.errors import CheckpointError, ConfigError, InputError, SparsediffError
from sparsediff.method import METHODS, Method, build_method
from sparsediff.method.spec import ModelSpec
from sparsediff.model_files import (
    _FIELD_FILES,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_PARAMETERS,
    MAX_WIDTH,
    _model_dir,
    _read_description,
    _read_weights,
    _verified_files,
    check_net_config,
)
from sparsediff.tensor_dir import TensorDirWriter, write_tensor_dir

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_PARAMETERS",
    "MAX_WIDTH",
    "Model",
    "as_model",
    "check_net_config",
    "load",
]

#: The network entries of ``config.json`` (format version 2): the stages of every method
#: are among them. Which class each may be is the model's method's
#: ([`Method.networks`][sparsediff.method.base.Method.networks]); nothing else is built.
_NET_NAMES = ("autoencoder", "prior")


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
    eofs
        Optional EOFs of the first guess's background (one DataArray per
        variable, dims ``("eof", *grid)``, unit patterns in normalized units on
        the training grid; the prior ratios are ``spec.eof_prior``;
        [`sparsediff.method.eof_guess`][sparsediff.method.eof_guess]).
    """

    spec: ModelSpec
    nets: dict[str, torch.nn.Module]
    stats: Stats
    provenance: dict[str, Any] = field(default_factory=dict)
    climatology: dict[str, xr.DataArray] | None = None
    invalid: dict[str, xr.DataArray] | None = None
    eofs: dict[str, xr.DataArray] | None = None

    def __post_init__(self) -> None:
        if self.spec.eof_prior and not self.eofs:
            raise ConfigError(
                "this model's first guess departs from EOFs (spec.eof_prior) but none were "
                "given (eofs.safetensors or Model(eofs=...))"
            )

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

        def write(out: TensorDirWriter) -> dict[str, Any]:
            nets: dict[str, Any] = {}
            for name in _NET_NAMES:
                net = self.nets.get(name)
                if net is None:
                    nets[name] = None
                    continue
                out.tensors(f"{name}.safetensors", net.state_dict(), {"format": FORMAT_NAME})
                nets[name] = {"class": type(net).__name__, "config": net.config}
            stored = (self.climatology, self.invalid, self.eofs)
            for fname, fields in zip(_FIELD_FILES, stored, strict=True):
                if fields:
                    out.tensors(fname, *_field_tensors(fields))
            self.stats.save(out.root / "stats.json")
            out.record("stats.json")
            out.text(
                "provenance.json",
                json.dumps(self.provenance, indent=2, sort_keys=True, default=str),
            )
            return {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                **nets,
                "model": self.spec.model_dump(mode="json"),
            }

        return write_tensor_dir(path, "config.json", write, indent=2, sort_keys=True)

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
        doc, spec = _read_description(path)
        files = _verified_files(path, doc)
        nets = _read_nets(path, doc, files, map_location, spec)
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
            eofs=fields["eofs.safetensors"],
        )


def _build_net(
    name: str,
    entry: Any,
    state: dict[str, torch.Tensor],
    where: tuple[Path, Path],
    spec: ModelSpec,
) -> torch.nn.Module:
    """Build network ``name`` from its ``config.json`` entry and load its weights.

    The class must be the one the model's method declares for ``name``
    ([`Method.networks`][sparsediff.method.base.Method.networks]); ``where`` is
    ``(config.json, weights file)``.

    Raises
    ------
    CheckpointError
        A class other than the method's, a config it cannot be built from, or
        weights that do not fit.
    """
    cfg_path, fpath = where
    cls_name = entry.get("class") if isinstance(entry, dict) else None
    cls = METHODS[spec.mode].networks[name]
    if cls_name != getattr(cls, "__name__", None):
        raise CheckpointError(
            f"{cfg_path}: network {name!r} has unknown class {cls_name!r} "
            f"(the {name} of a {spec.mode} model is {getattr(cls, '__name__', cls)})"
        )
    try:
        net: torch.nn.Module = cls.from_config(entry["config"])
    except (SparsediffError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(
            f"{cfg_path}: network {name!r} cannot be built from its config: {e}"
        ) from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        line = str(e).splitlines()[0]
        raise CheckpointError(f"weights in {fpath} do not fit the saved config: {line}") from None
    return net


def _read_nets(
    path: Path, doc: dict[str, Any], files: dict[str, str], map_location: str, spec: ModelSpec
) -> dict[str, torch.nn.Module]:
    """Every network ``config.json`` names: checked against the method, then read and built.

    Raises
    ------
    CheckpointError
        A network the model's method does not have, or one whose config is
        refused by [`check_net_config`][check_net_config] (all before any is read).
    """
    cfg_path = path / "config.json"
    networks = METHODS[spec.mode].networks
    for name in _NET_NAMES:
        entry = doc.get(name)
        if entry is None:
            continue
        if name not in networks:
            raise CheckpointError(
                f"{cfg_path}: a {spec.mode} model has no {name!r} network "
                f"(its networks: {', '.join(networks)})"
            )
        check_net_config(entry, f"{cfg_path}: network {name!r}")
    nets: dict[str, torch.nn.Module] = {}
    for name in _NET_NAMES:
        entry = doc.get(name)
        if entry is None:
            continue
        fpath = path / f"{name}.safetensors"
        state = _read_weights(fpath, files, map_location)
        net = _build_net(name, entry, state, (cfg_path, fpath), spec)
        nets[name] = net.to(map_location).eval()
    return nets


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
