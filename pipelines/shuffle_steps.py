"""Write a copy of a record whose steps are permuted: neighbouring steps become unrelated.

A test bed for data whose steps are nearly independent (annual anomalies,
unrelated scenes): the values of each step move to a random other step while
the coordinate stays in order, so a model's context frames and its space-time
first guess see neighbours that have nothing to do with the step::

    python pipelines/shuffle_steps.py iris:A1B_north_america.nc runs/a1b_shuffled.nc \
        --dim time --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sparsediff.data.io import write
from sparsediff.data.sources import resolve_source


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a data source as training configs name it")
    parser.add_argument("out", help="NetCDF file to write")
    parser.add_argument("--dim", default="time", help="the dim whose steps are permuted")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutation")
    args = parser.parse_args(argv)
    ds = resolve_source(args.source).load()
    order = np.random.default_rng(args.seed).permutation(ds.sizes[args.dim])
    shuffled = ds.isel({args.dim: order})
    shuffled = shuffled.assign_coords({args.dim: ds[args.dim].values})
    for name in ds.coords:  # other coords along the dim (e.g. year) stay in order too
        if args.dim in ds[name].dims and name != args.dim:
            shuffled = shuffled.assign_coords({name: ds[name]})
    shuffled.attrs["history"] = f"steps along {args.dim!r} permuted with seed {args.seed}"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write(shuffled, args.out, history=f"shuffle_steps {args.source}")
    print(f"wrote {args.out}: {ds.sizes[args.dim]} steps along {args.dim!r} permuted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
