"""Fill scaling: torch threads, and dask LocalCluster workers (issue 17).

The case of ``bench_cost.py`` (the last ``--months`` OSTIA months with
``cloud:0.3`` hidden, the demo model, ``--members``) is filled

- ``--mode threads``: in this process with ``--threads`` torch threads
  (eager input, one block);
- ``--mode workers``: chunked by one month along time and computed on a
  ``dask.distributed.LocalCluster`` of ``--workers`` processes with one
  thread each (each worker loads the model from its directory).

It prints the wall time of the fill (after a warm-up fill of one month);
run it once per setting, or pair two settings with an external timer.

Usage::

    python benchmarks/bench_scaling.py --mode threads --threads 2
    python benchmarks/bench_scaling.py --mode workers --workers 2
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import load_line

DEMO_MODEL = Path(__file__).resolve().parents[1] / "sparsediff" / "assets" / "demo_model"


def main() -> None:
    """Fill once with the asked threads or workers and print the wall time."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEMO_MODEL)
    parser.add_argument("--mode", choices=["threads", "workers"], default="threads")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--members", type=int, default=8)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads if args.mode == "threads" else 1)
    from bench_cost import case

    import sparsediff

    print(load_line("at start"))
    sub, _, _, land = case(args.months)
    var = "surface_temperature"
    kw = {"members": args.members, "invalid": land, "device": "cpu"}
    if args.mode == "threads":
        model = sparsediff.load(args.model)
        sparsediff.fill(sub.isel(time=slice(0, 1)), model, **kw)  # warm-up
        t0 = time.perf_counter()
        _ = sparsediff.fill(sub, model, **kw)[var].values
        took = time.perf_counter() - t0
        print(f"threads {args.threads}: fill {took:.2f} s ({os.cpu_count()} cores)")
    else:
        from dask.distributed import Client, LocalCluster

        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with (
            LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, env=env
            ) as cluster,
            Client(cluster),
        ):
            path = str(args.model)
            lazy = sub.chunk({"time": 1})
            _ = sparsediff.fill(lazy.isel(time=slice(0, args.workers)), path, **kw)[
                var
            ].values  # warm-up: every worker loads torch and the model
            t0 = time.perf_counter()
            _ = sparsediff.fill(lazy, path, **kw)[var].values
            took = time.perf_counter() - t0
        print(f"workers {args.workers}: fill {took:.2f} s ({os.cpu_count()} cores)")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
