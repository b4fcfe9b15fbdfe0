"""``sparsediff demo``: fill real OSTIA SST gaps end to end, offline, in about a minute.

The demo model ships with the package (``sparsediff/assets/demo_model``). It was
made by the project's own pipeline::

    sparsediff train configs/demo.yaml --out runs/demo
    cp -r runs/demo/model sparsediff/assets/demo_model

and its full training config is in its ``provenance.json``; ``sparsediff demo
--train`` re-trains it from that config before filling.

The last 6 months of the record were held out of training. The demo hides 30%
of their observed sea surface under cloud-like gaps, fills them with
sparsediff (an ensemble of 4) and with two simple fills — the per-point time
mean of the record and linear interpolation — and prints the RMSE of each on
the hidden points.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

__all__ = ["DEMO_MODEL", "run_demo"]

#: Where the shipped demo model lives inside the installed package.
DEMO_MODEL = Path(str(files("sparsediff"))) / "assets" / "demo_model"

HOLDOUT = "cloud:0.3"
TEST_MONTHS = 6


def run_demo(
    out: str | Path = "demo_out",
    *,
    train: bool = False,
    members: int = 4,
    seed: int = 0,
    threads: int | None = 1,
    echo: Callable[[str], Any] = print,
) -> Any:
    """Run the demo and return its score table (a pandas DataFrame).

    Parameters
    ----------
    out
        Output directory: ``filled.zarr`` (the filled test months with their
        ensemble and fill flags), ``fill.png`` and ``scores.csv``.
    train
        Re-train the demo model from its recorded config first (a few minutes).
    members
        Ensemble size.
    seed
        Seed of the hidden gaps and of the fill.
    threads
        torch CPU threads for the demo (1 by default: on small CPU jobs beside
        other busy processes, more threads can be far slower; ``None`` keeps
        torch's setting).
    echo
        Where progress lines go.
    """
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(Path(out), train=train, members=members, seed=seed, echo=echo)
    finally:
        torch.set_num_threads(before)


def _run(out: Path, *, train: bool, members: int, seed: int, echo: Callable[[str], Any]) -> Any:
    import sparsediff
    from sparsediff.data.sample_data import open_ostia
    from sparsediff.evaluation.baselines import LinearInterp, TimeMean
    from sparsediff.evaluation.holdout import make_holdout
    from sparsediff.evaluation.metrics import score_table
    from sparsediff.filling.api import ensemble_mean, fill
    from sparsediff.plotting import plot_fill

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if train:
        shipped = sparsediff.load(DEMO_MODEL)
        echo("training the demo model from its recorded config ...")
        model = sparsediff.train(None, shipped.provenance["config"], out=out / "train")
    else:
        model = sparsediff.load(DEMO_MODEL)
    var = model.variables[0]
    ds = open_ostia().load()
    n = ds.sizes["time"]
    test = slice(n - TEST_MONTHS, n)
    gappy, held = make_holdout(
        ds,
        HOLDOUT,
        dims=model.dims,
        seed=seed,
        invalid_along="time",
        region={"time": test},
    )
    echo(
        f"OSTIA SST: {n} months of {ds.sizes['latitude']}x{ds.sizes['longitude']}; "
        f"the last {TEST_MONTHS} (never seen in training) get {HOLDOUT} hidden: "
        f"{int(held[var].sum())} points to recover"
    )
    t_fill = time.perf_counter()
    filled = fill(gappy.isel(time=test), model, members=members, seed=seed, progress=True)
    filled = filled.compute()
    t_fill = time.perf_counter() - t_fill
    mean = ensemble_mean(filled)[var]
    time_mean = TimeMean().fill(gappy[var], dims=model.dims).isel(time=test)
    linear = LinearInterp().fill(gappy[var].isel(time=test), dims=model.dims)
    truth = ds[var].isel(time=test)
    mask = held[var].isel(time=test)
    table = score_table(
        {
            f"sparsediff (mean of {members})": mean,
            "time mean": time_mean,
            "linear interpolation": linear,
        },
        truth,
        mask,
        ensembles={f"sparsediff (mean of {members})": filled[var]},
    )
    table.to_csv(out / "scores.csv", index=False)
    sparsediff.write(filled, out / "filled.zarr", mode="w", history="sparsediff demo fill")
    plot_fill(
        filled,
        var,
        original=gappy.isel(time=test),
        truth=ds.isel(time=test),
        path=out / "fill.png",
        time=0,
    )
    echo("")
    echo(f"held-out RMSE on the hidden points ({truth.attrs.get('units', '')}):")
    echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    best = table.sort_values("rmse").iloc[0]["method"]
    echo("")
    echo(f"best: {best}; fill took {t_fill:.1f} s, demo {time.perf_counter() - t0:.1f} s")
    echo(f"wrote {out / 'filled.zarr'}, {out / 'fill.png'}, {out / 'scores.csv'}")
    return table
