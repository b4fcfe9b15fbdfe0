"""Out-of-core fill: stream a lazy fill into a Zarr store, region by region.

The store is built under a hidden sibling name (``.NAME.partial``) and renamed
to the final path only once every region is written, so an interrupted job
never leaves a store that looks complete. Finished regions are recorded in
``.NAME.progress.json`` beside it; ``resume=True`` skips them. Each
region's numbers depend only on the global seed and positions, so a resumed
job writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xarray as xr
from tqdm.auto import tqdm

from sparsediff import atomic
from sparsediff.data.io import append_history
from sparsediff.errors import InputError
from sparsediff.filling.api import fill
from sparsediff.model import Model

__all__ = ["fill_to_zarr", "partial_path", "progress_path"]


def partial_path(output: str | os.PathLike[str]) -> Path:
    """Where an unfinished fill of ``output`` is assembled."""
    output = Path(output)
    return output.with_name(f".{output.name}.partial")


def progress_path(output: str | os.PathLike[str]) -> Path:
    """Where an unfinished fill of ``output`` records its finished regions."""
    output = Path(output)
    return output.with_name(f".{output.name}.progress.json")


def fill_to_zarr(
    ds: xr.Dataset,
    model: Model,
    output: str | os.PathLike[str],
    *,
    region_dim: str | None = None,
    region_size: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    history: str = "fill",
    on_region: Callable[[int], None] | None = None,
    **fill_kw: Any,
) -> Path:
    """Fill ``ds`` and write the result to a Zarr store without loading it whole.

    Parameters
    ----------
    ds
        Input data (opened lazily, e.g. with :func:`sparsediff.open`).
    model
        Trained model.
    output
        Target ``.zarr`` path.
    region_dim
        Batch dim along which regions are cut (default: the first non-spatial dim).
    region_size
        Positions of ``region_dim`` per region (also the Zarr chunk along it).
    resume
        Continue an interrupted job for the same output (skips finished regions).
    overwrite
        Replace an existing complete store at ``output``.
    progress
        Progress bar over regions.
    history
        Text of the ``history`` line added to the output.
    on_region
        Called with each region index after it is written.
    **fill_kw
        Passed to :func:`sparsediff.fill` (members, steps, seed, ...).

    Returns
    -------
    pathlib.Path
        The final store path.
    """
    output = Path(output)
    if output.suffix != ".zarr":
        raise InputError(f"streamed fills write Zarr stores; {output} does not end in .zarr")
    if output.exists() and not overwrite:
        raise InputError(f"{output} already exists (use overwrite to replace it)")
    spatial = list(model.dims)
    var0 = ds.get(model.variables[0], None)
    batch_dims = [d for d in (var0.dims if var0 is not None else ()) if d not in spatial]
    if region_dim is None:
        region_dim = batch_dims[0] if batch_dims else None
    if region_dim is not None and region_dim not in batch_dims:
        raise InputError(
            f"region_dim {region_dim!r} must be one of the batch dims {batch_dims} "
            "(spatial dims are filled whole)"
        )
    chunks: dict[str, int] = {d: -1 for d in ds.dims}
    if region_dim is not None:
        chunks[region_dim] = region_size
    ds = ds.chunk(chunks)
    filled = fill(ds, model, **fill_kw)
    for v in filled.variables:
        filled[v].encoding.pop("chunks", None)
        filled[v].encoding.pop("preferred_chunks", None)
    filled.attrs["history"] = append_history(filled.attrs.get("history"), history)

    tmp = partial_path(output)
    record = progress_path(output)
    done: set[int] = set()
    if resume and record.is_file() and tmp.exists():
        done = set(json.loads(record.read_text())["done"])
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        filled.to_zarr(tmp, mode="w-", compute=False, consolidated=False)
        atomic.write_text(record, json.dumps({"done": []}))

    n = filled.sizes[region_dim] if region_dim is not None else 1
    regions = list(range(0, n, region_size))
    to_write = [
        name
        for name in filled.data_vars
        if region_dim is not None and region_dim in filled[name].dims
    ]
    bar = tqdm(total=len(regions), initial=len(done), desc="regions", disable=not progress)
    for r, start in enumerate(regions):
        if r in done:
            continue
        if region_dim is None:
            filled.to_zarr(tmp, mode="a", consolidated=False)
        else:
            sl = slice(start, min(start + region_size, n))
            part = filled[to_write].isel({region_dim: sl})
            part = part.drop_vars([c for c in part.coords])
            part.to_zarr(tmp, region={region_dim: sl}, mode="r+", consolidated=False)
        done.add(r)
        atomic.write_text(record, json.dumps({"done": sorted(done)}))
        bar.update(1)
        if on_region is not None:
            on_region(r)
    bar.close()
    atomic.replace(tmp, output)
    record.unlink()
    return output
