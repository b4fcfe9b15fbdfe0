"""The README's xarray snippet, timed: one lazy fill, then ``plot_fill`` and ``write``.

The data are the last ``--months`` months of OSTIA (the months the demo holds
out of training), written to a NetCDF file and opened with
``sparsediff.open`` (lazy, dask), as a user would. The model is the shipped
demo model. The script times:

1. one fill: ``sparsediff.fill(ds, model, persist=False).compute()``, the
   model run once over the data (the reference);
2. the README's three lines, each on its own: ``filled =
   ds.sparsediff.fill(model, members=...)`` (a small result is computed here,
   once: ``persist``), ``filled.sparsediff.plot_fill(time=0, path=...)`` and
   ``sparsediff.write(filled, "....nc")``;
3. the same plot and write on a lazy fill (``persist=False``): the plot
   computes only the blocks holding its slice (once for all panels), the
   write computes the whole fill.

It prints each wall time and ``(plot + write) / one fill`` for both; the
target of issue 20 is at most 1.5 for the README's lines.

Usage::

    python benchmarks/bench_readme_snippet.py [--months 6] [--members 8]
        [--threads 1] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_line


def _plot_and_write(sparsediff: Any, filled: Any, stem: Path) -> tuple[float, float]:
    """Seconds of ``plot_fill(time=0)`` and then of ``write`` of ``filled``."""
    t0 = time.perf_counter()
    filled.sparsediff.plot_fill(time=0, path=os.fspath(stem) + ".png")
    t_plot = time.perf_counter() - t0
    t0 = time.perf_counter()
    sparsediff.write(filled, os.fspath(stem) + ".nc", mode="w")
    return t_plot, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--months", type=int, default=6)
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="default: the fill's (the README's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # imported before the timings
    import torch

    torch.set_num_threads(args.threads)
    import sparsediff
    from sparsediff.data.sample_data import open_ostia
    from sparsediff.demo import DEMO_MODEL

    print(load_line("at start"))
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_snippet_"))
    work.mkdir(parents=True, exist_ok=True)
    src = open_ostia().load()
    n = src.sizes["time"]
    src.isel(time=slice(n - args.months, n)).to_netcdf(work / "sst.nc")
    model = sparsediff.load(DEMO_MODEL)
    opts = {"members": args.members, "steps": args.steps}

    ds = sparsediff.open(work / "sst.nc")
    quiet = {**opts, "progress": False}
    t0 = time.perf_counter()
    sparsediff.fill(ds, model, persist=False, **quiet).compute()
    t_one = time.perf_counter() - t0

    t0 = time.perf_counter()
    filled = ds.sparsediff.fill(model, **quiet)
    t_fill = time.perf_counter() - t0
    t_plot, t_write = _plot_and_write(sparsediff, filled, work / "readme")

    lazy = ds.sparsediff.fill(model, persist=False, **quiet)
    l_plot, l_write = _plot_and_write(sparsediff, lazy, work / "lazy")

    print(
        f"OSTIA last {args.months} months, demo model, members={args.members}, "
        f"steps={args.steps or model.spec.spread_steps}, torch threads={args.threads}"
    )
    print(f"one fill (persist=False, .compute()): {t_one:.2f} s")
    print(
        f"README lines: fill {t_fill:.2f} s, plot_fill {t_plot:.2f} s, write {t_write:.2f} s; "
        f"(plot + write) / one fill = {(t_plot + t_write) / t_one:.2f} (target <= 1.5); "
        f"all three / one fill = {(t_fill + t_plot + t_write) / t_one:.2f}"
    )
    print(
        f"lazy fill (persist=False): plot_fill {l_plot:.2f} s, write {l_write:.2f} s; "
        f"(plot + write) / one fill = {(l_plot + l_write) / t_one:.2f}"
    )
    print(load_line("at end"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
