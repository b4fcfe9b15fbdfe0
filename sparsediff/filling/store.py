"""Out-of-core fill: stream a lazy fill into a Zarr store, region by region.

The store is built under a hidden sibling name (``.NAME.partial``) and renamed
to the final path only once every region is written, so an interrupted job
never leaves a store that looks complete. Finished regions are recorded in
``.NAME.progress.json`` beside it; ``resume=True`` skips them. Each
region's numbers depend only on the global seed and positions, so a resumed
job writes the same bytes as an uninterrupted one.

The progress record also holds a **fingerprint** of the job: a digest of the
model (weights, statistics, climatology, invalid mask, spec), the input's identity (sizes,
dtypes, coordinate values and a chunk-wise SHA-256 of every data variable),
every option of [`sparsediff.fill`][sparsediff.filling.fill.fill] (defaults included) and the region
layout. A resume whose fingerprint differs in any field is refused with one
line naming that field, so a resumed store never mixes two inputs, two seeds or
two models.

Everything else of the output — coordinates (also non-dimension ones such as
``forecast_reference_time``) and variables without the region dim — is
written when the store is created; the store carries consolidated metadata.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from sparsediff import atomic
from sparsediff.data.backends import WriteOptions
from sparsediff.data.backends.zarr import ZarrBackend, consolidate
from sparsediff.data.io import append_history
from sparsediff.errors import InputError
from sparsediff.filling.arguments import FillArguments, fill_arguments
from sparsediff.filling.fill import fill
from sparsediff.lock import hold
from sparsediff.method.options import FillOptions
from sparsediff.model import Model, as_model
from sparsediff.paths import check_loops

__all__ = [
    "Job",
    "fill_to_zarr",
    "fingerprint",
    "partial_path",
    "prepare_job",
    "progress_path",
]

#: Version of the progress record's layout (3: the options gained sigma_min and sigma_max).
RECORD_VERSION = 3
#: Options of [`sparsediff.fill`][sparsediff.filling.fill.fill] that do not change the numbers.
_NOT_FINGERPRINTED = frozenset(
    {
        "ds",
        "model",
        "progress",
        "check_values",
        "persist",
        "min_observed_share",
        "options",  # recorded field by field (FillOptions.record), as the keywords were
        "keywords",
    }
)
#: zarr-python's note that consolidated metadata is not (yet) part of the v3 spec.
_V3_CONSOLIDATED_NOTE = "Consolidated metadata is currently not part"


def partial_path(output: str | os.PathLike[str]) -> Path:
    """Where an unfinished fill of ``output`` is assembled."""
    output = Path(output)
    return output.with_name(f".{output.name}.partial")


def progress_path(output: str | os.PathLike[str]) -> Path:
    """Where an unfinished fill of ``output`` records its finished regions."""
    output = Path(output)
    return output.with_name(f".{output.name}.progress.json")


# --------------------------------------------------------------------------- fingerprint


def _array_digest(values: Any) -> str:
    """SHA-256 of an array's dtype, shape and bytes (object arrays by their repr)."""
    arr = np.asarray(values)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    if arr.dtype.kind == "O":
        h.update(repr(arr.tolist()).encode())
    else:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _variable_digest(var: xr.Variable) -> str:
    """SHA-256 over the digests of a variable's chunks, in C order (memory stays flat)."""
    data = var.data
    h = hashlib.sha256(f"{var.dims}{var.shape}{var.dtype.str}".encode())
    if isinstance(data, da.Array):
        blocks = data.to_delayed().ravel()
        digests = dask.compute(*[dask.delayed(_array_digest)(b) for b in blocks])
    else:
        digests = (_array_digest(data),)
    for d in digests:
        h.update(d.encode())
    return h.hexdigest()


def _model_digest(model: Model) -> str:
    """SHA-256 of what makes a model's numbers: weights, stats, climatology, invalid mask, spec.

    Computed from the content, so it is the same for a model in memory and the
    same model saved and loaded (the model files' checksums hash the same bytes).
    """
    h = hashlib.sha256()
    # a model's spec as before spread_steps existed when it holds that field's old 16
    # (the steps every fill then took), so a job started before resumes
    old = model.spec.spread_steps == 16
    h.update(model.spec.model_dump_json(exclude={"spread_steps"} if old else None).encode())
    h.update(json.dumps(model.stats.to_dict(), sort_keys=True).encode())
    for name, net in (("autoencoder", model.autoencoder), ("prior", model.prior)):
        h.update(name.encode())
        if net is None:
            continue
        for key, tensor in sorted(net.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{key}{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for v, clim in sorted((model.climatology or {}).items()):
        h.update(f"{v}{clim.dims}".encode())
        h.update(_array_digest(clim.values).encode())
    for v, mask in sorted((model.invalid or {}).items()):
        h.update(f"invalid{v}{mask.dims}".encode())
        h.update(_array_digest(mask.values).encode())
    return h.hexdigest()


def _canonical(value: Any) -> Any:
    """A JSON-ready stand-in for an option value (arrays by their digest)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, xr.DataArray | xr.Dataset):
        obj = value.to_dataset(name="_") if isinstance(value, xr.DataArray) else value
        return {"sha256": {str(k): _variable_digest(v) for k, v in sorted(obj.variables.items())}}
    if isinstance(value, np.ndarray):
        return {"sha256": _array_digest(value)}
    return repr(value)


def fingerprint(
    ds: xr.Dataset,
    model: Model,
    fill_kw: Mapping[str, Any],
    *,
    region_dim: Hashable | None,
    region_size: int,
) -> dict[str, Any]:
    """The identity of a streamed fill job, as recorded in its progress file.

    Parameters
    ----------
    ds
        The input, chunked as the fill reads it.
    model
        The model.
    fill_kw
        Keywords of [`sparsediff.fill`][sparsediff.filling.fill.fill]: ``options`` or the
        option fields, and the others (defaults are filled in).
    region_dim, region_size
        The region layout.

    Returns
    -------
    dict
        JSON-ready: ``model`` (a digest), ``input`` (``sizes``, ``dtypes``,
        ``coords`` and ``values`` digests per name), ``options`` and ``layout``.
    """
    kw = fill_arguments(fill_kw)
    opts: FillOptions = kw.pop("options")
    bound = inspect.signature(fill).bind_partial(**kw)
    bound.apply_defaults()
    options = {k: v for k, v in bound.arguments.items() if k not in _NOT_FINGERPRINTED}
    # the same flat record as before FillOptions was one argument, with the steps resolved
    options |= opts.at_steps(as_model(model).spec.spread_steps).record()
    if options.get("calibrate") == "auto":  # on a grid: the model's own (as before "auto")
        options["calibrate"] = "validation"
    if options.get("device") == "auto":  # what "auto" means here decides the numbers
        options["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    doc = {
        "version": RECORD_VERSION,
        "model": _model_digest(model),
        "input": {
            "sizes": {str(k): int(v) for k, v in ds.sizes.items()},
            "dtypes": {str(k): v.dtype.str for k, v in ds.data_vars.items()},
            "coords": {str(k): _variable_digest(ds[k].variable) for k in ds.coords},
            "values": {str(k): _variable_digest(v.variable) for k, v in ds.data_vars.items()},
        },
        "options": _canonical(options),
        "layout": {"region_dim": region_dim, "region_size": int(region_size)},
    }
    return json.loads(json.dumps(doc))


def _first_difference(old: Any, new: Any, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(new) + [k for k in old if k not in new]:
            if key not in old or key not in new:
                return (*path, key)
            found = _first_difference(old[key], new[key], (*path, key))
            if found is not None:
                return found
        return None
    return None if old == new else path


def _describe(path: tuple[str, ...], old: Any, new: Any) -> str:
    """The field at ``path`` in words, with both values when they are readable."""

    def get(doc: Any) -> Any:
        for key in path:
            doc = doc.get(key, "(absent)") if isinstance(doc, dict) else "(absent)"
        return doc

    before, now = get(old), get(new)
    values = f" ({before!r} there, {now!r} now)"
    match path:
        case ("model",):
            return "the model (weights, statistics, climatology, invalid mask or spec)"
        case ("input", "sizes", *_):
            return f"the input's sizes ({old['input']['sizes']} there, {new['input']['sizes']} now)"
        case ("input", "dtypes", name):
            return f"the dtype of input variable {name!r}{values}"
        case ("input", "coords", name):
            return f"the input's coordinate {name!r}"
        case ("input", "values", name):
            return f"the input's values of {name!r}"
        case ("input", "coords" | "values" | "dtypes"):
            return "the input's variables"
        case ("options", name, *_):
            return f"fill option {name!r}{values if not isinstance(now, dict) else ''}"
        case ("layout", name):
            return f"{name}{values}"
    return ".".join(path)


def _check_resumable(
    record: dict[str, Any], current: dict[str, Any], output: Path, *, task: bool = False
) -> None:
    """Refuse a resume (``task``: an array-job task) whose job differs from the record's."""
    old = record.get("fingerprint")
    if not isinstance(old, dict) or old.get("version") != RECORD_VERSION:
        raise InputError(
            f"cannot {'fill a region of' if task else 'resume'} {output}: it was started by "
            "another sparsediff version and cannot be checked; start again"
        )
    # the layout first: the input's digests are per chunk, and its chunks follow the layout
    order = ("version", "layout", "options", "model", "input")
    path = _first_difference({k: old.get(k) for k in order}, {k: current.get(k) for k in order})
    if path is not None and task:
        raise InputError(
            f"cannot fill a region of {output}: {_describe(path, old, current)} differs from "
            "the init step's; give every task the model, input and options of the init"
        )
    if path is not None:
        raise InputError(
            f"cannot resume {output}: {_describe(path, old, current)} differs from the "
            "interrupted run's; start again without resuming, or resume with the same "
            "model, input and options"
        )


# --------------------------------------------------------------------------- writing


def _create(prepared: xr.Dataset, tmp: Path, static: list[Hashable], zarr_format: int) -> None:
    """Create the partial store: metadata, in-memory arrays, then every static variable."""
    atomic.remove(tmp)
    atomic.make_dirs(tmp.parent)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_V3_CONSOLIDATED_NOTE)
            prepared.to_zarr(
                tmp, mode="w-", compute=False, consolidated=True, zarr_format=zarr_format
            )
    except OSError as err:
        clear = atomic.denied(err, tmp)
        if clear is not None:
            atomic.remove(tmp)
            raise clear from err
        raise
    lazy = [n for n in static if prepared[n].chunks is not None]
    if lazy:  # coordinates and variables without the region dim: written once, now
        part = prepared[[n for n in lazy if n in prepared.data_vars]]
        part = part.assign_coords({n: prepared[n] for n in lazy if n in prepared.coords})
        drop = [c for c in part.coords if c not in lazy]
        part.drop_vars(drop).to_zarr(tmp, mode="r+", consolidated=False)


@dataclass(frozen=True)
class Job:
    """A streamed fill, ready to write: the lazy result and its region layout.

    Attributes
    ----------
    ds, model
        The input (chunked along the region dim) and the model.
    prepared
        The lazy filled dataset, prepared for Zarr (encodings, attributes).
    region_dim, region_size, n
        The region layout: ``n`` positions of ``region_dim`` in regions of
        ``region_size`` (``region_dim`` ``None``: one region).
    sliced, static
        Variables with and without the region dim.
    fingerprint
        The job's identity (`fingerprint`).
    """

    ds: xr.Dataset
    model: Model
    prepared: xr.Dataset
    region_dim: str | None
    region_size: int
    n: int
    sliced: list[Hashable]
    static: list[Hashable]
    fingerprint: dict[str, Any]

    def write(self, store: Path, sl: slice) -> None:
        """Compute the region ``sl`` of the region dim and write it into ``store``."""
        prepared = self.prepared
        if self.region_dim is None:
            prepared.to_zarr(store, mode="r+", consolidated=False)
            return
        to_write = [name for name in self.sliced if name not in prepared.indexes]
        part = prepared[[v for v in to_write if v in prepared.data_vars]]
        part = part.assign_coords({c: prepared[c] for c in to_write if c in prepared.coords})
        part = part.isel({self.region_dim: sl})
        part = part.drop_vars([c for c in part.coords if c not in to_write])
        part.to_zarr(store, region={self.region_dim: sl}, mode="r+", consolidated=False)


def prepare_job(
    ds: xr.Dataset,
    model: Model | str | os.PathLike[str],
    output: Path,
    region_dim: str | None,
    region_size: int,
    history: str,
    fill_kw: Mapping[str, Any],
) -> Job:
    """Check the options, build the lazy fill and its region layout (computes nothing big).

    Raises
    ------
    InputError
        A bad ``region_size`` or ``region_dim``, an unwritable directory, and
        whatever `sparsediff.fill` refuses.
    """
    model = as_model(model)
    if isinstance(region_size, bool) or not isinstance(region_size, int | np.integer):
        raise InputError(f"region_size must be a positive integer, got {region_size!r}")
    if region_size < 1:
        raise InputError(f"region_size must be a positive integer, got {region_size}")
    region_size = int(region_size)
    fill_kw = fill_arguments(fill_kw)  # bad options: before the directory is checked
    atomic.check_writable(output.parent)
    spatial = list(model.dims)
    var0 = ds.get(model.variables[0], None)
    batch_dims = [d for d in (var0.dims if var0 is not None else ()) if d not in spatial]
    if region_dim is None and batch_dims:
        region_dim = str(batch_dims[0])  # Zarr dim names are strings (others cannot be written)
    if region_dim is not None and region_dim not in batch_dims:
        raise InputError(
            f"region_dim {region_dim!r} must be one of the batch dims {batch_dims} "
            "(spatial dims are filled whole)"
        )
    chunks: dict[Hashable, int] = {d: -1 for d in ds.dims}
    if region_dim is not None:
        chunks[region_dim] = region_size
    ds = ds.chunk(chunks)
    # checks model, data and options; computes nothing (regions are computed one by one)
    filled = fill(ds, model, **{**fill_kw, "persist": False})
    for v in filled.variables:
        filled[v].encoding.pop("chunks", None)
        filled[v].encoding.pop("preferred_chunks", None)
    filled.attrs["history"] = append_history(filled.attrs.get("history"), history)
    prepared = ZarrBackend().prepare(filled, WriteOptions(zarr_format=3))
    prepared.attrs = dict(filled.attrs)
    n = prepared.sizes[region_dim] if region_dim is not None else 1
    sliced = [
        name
        for name in prepared.variables
        if region_dim is not None and region_dim in prepared[name].dims
    ]
    static = [name for name in prepared.variables if name not in sliced]
    current = fingerprint(ds, model, fill_kw, region_dim=region_dim, region_size=region_size)
    return Job(ds, model, prepared, region_dim, region_size, n, sliced, static, current)


def fill_to_zarr(
    ds: xr.Dataset,
    model: Model | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: FillOptions | None = None,
    region_dim: str | None = None,
    region_size: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    history: str = "fill",
    on_region: Callable[[int], None] | None = None,
    **fill_kw: Unpack[FillArguments],
) -> Path:
    """Fill ``ds`` and write the result to a Zarr store without loading it whole.

    Parameters
    ----------
    ds
        Input data (opened lazily, e.g. with [`sparsediff.open`][sparsediff.data.io.open]).
    model
        Trained model, or the path of a model directory (loaded).
    output
        Target ``.zarr`` path.
    options
        How to sample ([`FillOptions`][sparsediff.method.options.FillOptions]), or
        ``None``: from the option fields among ``fill_kw``.
    region_dim
        Batch dim along which regions are cut (default: the first non-spatial dim).
    region_size
        Positions of ``region_dim`` per region (also the Zarr chunk along it), >= 1.
    resume
        Continue an interrupted job for the same output (skips finished regions).
        Refused, naming the field, when the model, the input, a fill option or
        the region layout differs from the interrupted job's.
    overwrite
        Replace an existing complete store at ``output`` (once the new one is complete).
    progress
        Progress bar over regions.
    history
        Text of the ``history`` line added to the output.
    on_region
        Called with each region index after it is written.
    **fill_kw
        The other keywords of [`sparsediff.fill`][sparsediff.filling.fill.fill] (``device``,
        ``invalid``, ...), and the option fields (``members``, ``seed``, ...) when
        ``options`` is not given
        ([`FillArguments`][sparsediff.filling.arguments.FillArguments]).

    Returns
    -------
    pathlib.Path
        The final store path.

    Raises
    ------
    InputError
        A target that is not ``.zarr``, exists (without ``overwrite``), is
        being written by another run ([`sparsediff.lock`][sparsediff.lock]) or lies in
        a directory that is not writable; a bad ``region_dim`` or
        ``region_size``; a resume that does not match. Nothing is written then.
    """
    output = Path(output)
    if output.suffix != ".zarr":
        raise InputError(f"streamed fills write Zarr stores; {output} does not end in .zarr")
    check_loops(output)
    with hold(output):  # one writer per store for the whole run
        return _stream(
            ds,
            model,
            output,
            region_dim,
            region_size,
            resume,
            overwrite,
            progress,
            history,
            on_region,
            {**fill_kw, "options": options},
        )


def _stream(
    ds: xr.Dataset,
    model: Model | str | os.PathLike[str],
    output: Path,
    region_dim: str | None,
    region_size: int,
    resume: bool,
    overwrite: bool,
    progress: bool,
    history: str,
    on_region: Callable[[int], None] | None,
    fill_kw: dict[str, Any],
) -> Path:
    """[`fill_to_zarr`][fill_to_zarr] once the store's lock is held."""
    if output.exists() and not overwrite:
        raise InputError(f"{output} already exists (pass overwrite=True to replace it)")
    job = prepare_job(ds, model, output, region_dim, region_size, history, fill_kw)
    prepared, region_size, n, current = job.prepared, job.region_size, job.n, job.fingerprint
    regions = list(range(0, n, region_size))
    zarr_format = 3

    tmp = partial_path(output)
    record = progress_path(output)
    done: set[int] = set()
    if resume and record.is_file() and tmp.exists():
        try:
            saved = json.loads(record.read_text())
        except (OSError, ValueError) as err:
            raise InputError(f"cannot resume {output}: unreadable {record}: {err}") from None
        _check_resumable(saved if isinstance(saved, dict) else {}, current, output)
        done = set(saved["done"])
    else:
        _create(prepared, tmp, job.static, zarr_format)
        atomic.write_text(record, json.dumps({"done": [], "fingerprint": current}))

    bar = tqdm(total=len(regions), initial=len(done), desc="regions", disable=not progress)
    for r, start in enumerate(regions):
        if r in done:
            continue
        job.write(tmp, slice(start, min(start + region_size, n)))
        done.add(r)
        atomic.write_text(record, json.dumps({"done": sorted(done), "fingerprint": current}))
        bar.update(1)
        if on_region is not None:
            on_region(r)
    bar.close()
    consolidate(tmp)
    atomic.replace(tmp, output)
    record.unlink()
    return output
