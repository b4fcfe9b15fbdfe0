"""Adaptation and input calibration on the demo case: do they pay, and what do they cost?

The demo case of ``sparsediff demo``: the shipped demo model, OSTIA SST, the
last 6 months (never seen in training) with ``cloud:0.3`` held out among
their observed points, ``--members`` members. One `sparsediff.evaluate`
call scores, on the same held-out points:

- ``sparsediff``: the model as shipped (no adaptation, validation calibration);
- ``calib_input``: its calibration refitted on the gappy input
  (``calibrate="input"``);
- ``adapt<N>``: adapted ``N`` steps to the gappy input (validation calibration);
- ``adapt<N>_input``: adapted, then calibrated on the input;
- ``first_guess``: the model's first guess alone (zero departure, no spread);
- the classical fills ``laplace`` and ``dineof`` (ranks up to 8).

It prints the evaluate table and a markdown table of the ratios to the
first guess and to the best classical fill, with the wall time of each fill
(adaptation and calibration included).

Usage::

    python benchmarks/bench_adapt.py [--adapt-steps 100 300] [--members 8] [--seed 0]
        [--months 6] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from typing import Any

import torch


def guess_only(model: Any) -> Any:
    """A copy of a latent model that returns its first guess (zero departure, no spread)."""
    clone = copy.deepcopy(model)
    out = clone.nets["autoencoder"].decoder.conv_out
    with torch.no_grad():
        out.weight.zero_()
        if out.bias is not None:
            out.bias.zero_()
    clone.spec = clone.spec.model_copy(
        update={"spread_scale": 0.0, "spread_scales": [], "spread_bins": []}
    )
    return clone


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapt-steps", type=int, nargs="+", default=[100, 300])
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--months", type=int, default=6, help="held-out months at the end")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--longitudes", type=int, default=None, help="first N longitudes only")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("sparsediff.adapt").setLevel(logging.INFO)

    import sparsediff
    from sparsediff.data.sample_data import open_ostia
    from sparsediff.demo import DEMO_MODEL, DINEOF_MAX_RANK, HOLDOUT
    from sparsediff.evaluation.baselines import DINEOF
    from sparsediff.evaluation.fillers import ModelFiller

    model = sparsediff.load(DEMO_MODEL)
    ds = open_ostia().load()
    if a.longitudes:
        ds = ds.isel(longitude=slice(0, a.longitudes))
    n = ds.sizes["time"]
    kw = dict(members=a.members, seed=a.seed, device="cpu")
    variants: dict[str, Any] = {
        "calib_input": ModelFiller(model, "calib_input", calibrate="input", **kw),
        "first_guess": ModelFiller(guess_only(model), "first_guess", **kw),
    }
    for s in a.adapt_steps:
        variants[f"adapt{s}"] = ModelFiller(model, f"adapt{s}", adapt=s, **kw)
        variants[f"adapt{s}_input"] = ModelFiller(
            model, f"adapt{s}_input", adapt=s, calibrate="input", **kw
        )
    t0 = time.perf_counter()
    table = sparsediff.evaluate(
        ds,
        model,
        models=variants,
        holdout=HOLDOUT,
        region={"time": slice(n - a.months, n)},
        baselines=["laplace", DINEOF(max_rank=DINEOF_MAX_RANK, seed=a.seed)],
        **kw,
    )
    cols = ["method", "rmse", "mae", "crps", "spread_skill", "seconds"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    rows = table.set_index("method")
    classical = rows[rows["kind"] == "baseline"]
    best = classical["rmse"].idxmin()
    fg = rows.loc["first_guess", "rmse"]
    print(f"\nbest classical: {best}; total {time.perf_counter() - t0:.0f} s\n")
    print(
        "| fill | RMSE (K) | RMSE / first guess | RMSE / best classical | "
        "CRPS / best classical MAE | spread/skill | seconds |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.iterrows():
        print(
            f"| {name} | {r['rmse']:.4f} | {r['rmse'] / fg:.3f} | "
            f"{r['rmse'] / rows.loc[best, 'rmse']:.3f} | "
            f"{r['crps'] / rows.loc[best, 'mae']:.3f} | {r['spread_skill']:.3f} | "
            f"{r['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
