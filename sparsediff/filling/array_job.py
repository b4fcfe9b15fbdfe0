"""HPC array jobs: one Zarr store filled by many processes, each its own range of steps.

The pattern of a SLURM job array (``#SBATCH --array=0-N``):

1. **init**, once: [`init_store`][init_store] (CLI ``sparsediff fill MODEL IN OUT.zarr
   --init``) creates ``OUT.zarr`` with every array's metadata, the
   coordinates and the variables without the region dim, and records the job
   (the fingerprint of [`sparsediff.filling.store`][sparsediff.filling.store]: model, input, every
   fill option, region layout) in ``.OUT.zarr.job.json``. The filled arrays
   are left unwritten (they read as NaN until their region is written).
2. **tasks**, concurrently: [`fill_region`][fill_region] (CLI ``... --region
   time=A:B``) fills the steps ``A:B`` and writes them into the store with a
   Zarr region write. A task refuses, naming the field, a model, input or
   option that differs from the init's, and a range that does not start and
   end on a region boundary (``--region-size``: the Zarr chunk), since two
   tasks sharing a chunk would overwrite each other's part. Two tasks of the
   same range at once: the second refuses (a lock per range,
   [`sparsediff.lock`][sparsediff.lock]).

Every number depends only on the global seed and the position (the lazy fill
of the **whole** input is built in each task, and only the task's range of it
computed), so the store the tasks write holds the bytes of one single
``fill_to_zarr`` of the whole input with the same options. Each task reads the
whole input once for the job's fingerprint and the checks of the fill.

A finished range is recorded as ``.OUT.zarr.job.d/A-B``; [`missing_ranges`][missing_ranges]
lists the ranges still to write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Unpack

import xarray as xr

from sparsediff import atomic
from sparsediff.data.backends.zarr import consolidate
from sparsediff.errors import InputError
from sparsediff.filling.arguments import FillArguments
from sparsediff.filling.store import _check_resumable, _create, partial_path, prepare_job
from sparsediff.lock import hold
from sparsediff.method.options import FillOptions
from sparsediff.model import Model
from sparsediff.paths import check_loops

__all__ = ["fill_region", "init_store", "job_path", "missing_ranges"]


def job_path(output: str | os.PathLike[str]) -> Path:
    """The job record of an array-job store: ``.NAME.job.json`` beside it."""
    output = Path(output)
    return output.with_name(f".{output.name}.job.json")


def _done_dir(output: Path) -> Path:
    return output.with_name(f".{output.name}.job.d")


def _zarr_target(output: str | os.PathLike[str]) -> Path:
    output = Path(output)
    check_loops(output)
    if output.suffix != ".zarr":
        raise InputError(f"array jobs write Zarr stores; {output} does not end in .zarr")
    return output


def init_store(
    ds: xr.Dataset,
    model: Model | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: FillOptions | None = None,
    region_dim: str | None = None,
    region_size: int = 1,
    overwrite: bool = False,
    history: str = "fill",
    **fill_kw: Unpack[FillArguments],
) -> Path:
    """Create the store of an array job (step 1 of the module docstring).

    Parameters
    ----------
    ds, model, options, region_dim, region_size, history, **fill_kw
        As for [`fill_to_zarr`][sparsediff.filling.store.fill_to_zarr]; the tasks must
        pass the same.
    output
        The ``.zarr`` store to create.
    overwrite
        Replace an existing store (and its job record).

    Returns
    -------
    pathlib.Path
        The store.

    Raises
    ------
    InputError
        As [`fill_to_zarr`][sparsediff.filling.store.fill_to_zarr]. Nothing is written then.
    """
    output = _zarr_target(output)
    with hold(output):
        if output.exists() and not overwrite:
            raise InputError(f"{output} already exists (pass overwrite=True to replace it)")
        job = prepare_job(
            ds, model, output, region_dim, region_size, history, {**fill_kw, "options": options}
        )
        tmp = partial_path(output)
        _create(job.prepared, tmp, job.static, 3)
        consolidate(tmp)
        atomic.remove(_done_dir(output))
        atomic.write_text(
            job_path(output),
            json.dumps({"fingerprint": job.fingerprint, "n": job.n, "region_dim": job.region_dim}),
        )
        atomic.replace(tmp, output)
    return output


def _record(output: Path) -> dict[str, Any]:
    path = job_path(output)
    if not output.exists() or not path.is_file():
        raise InputError(
            f"{output} is not an initialised array-job store (no {path.name}); run the init "
            "step first (CLI: sparsediff fill MODEL INPUT OUTPUT --init)"
        )
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"unreadable job record {path}: {err}") from None
    if not isinstance(record, dict):
        raise InputError(f"unreadable job record {path}: not a JSON object")
    return record


def _check_range(start: int | None, stop: int | None, n: int, size: int, dim: Hashable) -> slice:
    a = 0 if start is None else int(start)
    b = n if stop is None else min(int(stop), n)
    if not 0 <= a < b:
        raise InputError(f"--region {dim}={start}:{stop} is empty or outside 0:{n}")
    if a % size or (b % size and b != n):
        raise InputError(
            f"--region {dim}={a}:{b} does not start and end on region boundaries (multiples "
            f"of --region-size {size}, or {n}); tasks sharing a Zarr chunk would overwrite "
            "each other"
        )
    return slice(a, b)


def fill_region(
    ds: xr.Dataset,
    model: Model | str | os.PathLike[str],
    output: str | os.PathLike[str],
    region: slice,
    *,
    options: FillOptions | None = None,
    region_dim: str | None = None,
    region_size: int = 1,
    history: str = "fill",
    **fill_kw: Unpack[FillArguments],
) -> Path:
    """Fill the steps ``region`` of the region dim into an initialised store (a task).

    Parameters
    ----------
    ds, model, options, region_dim, region_size, history, **fill_kw
        As given to [`init_store`][init_store].
    output
        The store [`init_store`][init_store] created.
    region
        The positions along the region dim (``slice(a, b)``), on region boundaries.

    Returns
    -------
    pathlib.Path
        The store.

    Raises
    ------
    InputError
        No initialised store; a model, input, option or layout that differs
        from the init's (naming it); a range off the region boundaries; the
        same range being written by another task. Nothing is written then.
    """
    output = _zarr_target(output)
    record = _record(output)
    job = prepare_job(
        ds, model, output, region_dim, region_size, history, {**fill_kw, "options": options}
    )
    _check_resumable(record, job.fingerprint, output, task=True)
    sl = _check_range(region.start, region.stop, job.n, job.region_size, job.region_dim)
    done = _done_dir(output) / f"{sl.start}-{sl.stop}"
    with hold(output.with_name(f"{output.name}.{sl.start}-{sl.stop}")):
        job.write(output, sl)
        atomic.make_dirs(done.parent)
        atomic.write_text(done, "")
    return output


def missing_ranges(output: str | os.PathLike[str], region_size: int | None = None) -> list[slice]:
    """The regions of an array-job store that no finished task has written yet.

    Parameters
    ----------
    output
        The store.
    region_size
        Length of the regions listed (default: the job's ``region_size``).

    Returns
    -------
    list of slice
        Positions along the region dim, in order.
    """
    output = Path(output)
    record = _record(output)
    n = int(record["n"])
    if region_size is None:
        region_size = int(record["fingerprint"]["layout"]["region_size"])
    covered = [False] * n
    folder = _done_dir(output)
    for f in folder.iterdir() if folder.is_dir() else []:
        a, _, b = f.name.partition("-")
        if a.isdigit() and b.isdigit():
            covered[int(a) : int(b)] = [True] * (min(int(b), n) - int(a))
    return [
        slice(i, min(i + region_size, n))
        for i in range(0, n, region_size)
        if not all(covered[i : i + region_size])
    ]
