"""Fill a large Zarr store on a SLURM cluster with dask-jobqueue.

    pip install dask-jobqueue
    python pipelines/slurm/fill_jobqueue.py MODEL INPUT.zarr OUTPUT.zarr --workers 8

Each dask worker is a SLURM job; regions of the output are filled in parallel
and written with Zarr region writes. Re-running with --resume skips finished
regions (same bytes as an uninterrupted run).
"""

from __future__ import annotations

import argparse

import sparsediff
from sparsediff.filling.store import fill_to_zarr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--workers", type=int, default=4, help="SLURM jobs (one dask worker each)")
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--region-size", type=int, default=1)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--queue", default=None, help="SLURM partition")
    p.add_argument("--walltime", default="04:00:00")
    a = p.parse_args()

    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(cores=8, processes=1, memory="32GB", queue=a.queue, walltime=a.walltime)
    cluster.scale(jobs=a.workers)
    with Client(cluster):
        model = sparsediff.load(a.model)
        ds = sparsediff.open(a.input)
        fill_to_zarr(
            ds, model, a.output, members=a.members, region_size=a.region_size, resume=a.resume
        )


if __name__ == "__main__":
    main()
