"""Spread/skill by distance to the data: what the spread calibration has to do, and does.

For a model trained by ``pipelines/quality.py`` this fills the held-out gaps of
its quality config again (:func:`sparsediff.evaluate`, the same protocol and
seed) twice — with the model's calibrated spread factors and with them off
(the raw latent perturbations) — and tabulates, per bin of chessboard
distance to the nearest shown point (the model's own distance,
:func:`sparsediff.method.inputs.distance_to_shown`): the hidden points, the
ensemble mean's RMSE, the mean member spread and the spread/skill ratio
``sqrt((K + 1) / K * mean variance) / RMSE`` (1 for a calibrated K-member
ensemble). Unweighted (no cos-latitude weights), so the overall figure can
differ slightly from the evaluation table's.

Usage::

    python pipelines/spread_by_distance.py pipelines/configs/quality_a1b.yaml runs/q_a1b \\
        [--variant latent] [--holdouts boxes:0.3 mcar:0.5] [--out table.csv]
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

import sparsediff
from sparsediff.data.grid import is_global_longitude
from sparsediff.errors import SparsediffError
from sparsediff.evaluation.fillers import ModelFiller
from sparsediff.evaluation.spread import BINS, by_distance, distance_field

__all__ = ["BINS", "by_distance", "distance_field", "main", "spread_table"]


class _Capture(ModelFiller):
    """A model filler that keeps what it was given and what it returned."""

    def fill(self, gappy: xr.Dataset, **kw: Any) -> xr.Dataset:
        out = super().fill(gappy, **kw)
        self.seen = (gappy, out, kw["region"])
        return out


def spread_table(
    config: str | Path,
    run: str | Path,
    *,
    variant: str = "latent",
    holdouts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The per-distance table of a quality run's model, calibrated and raw.

    Parameters
    ----------
    config
        The quality config the run was made with.
    run
        Its output directory (``OUT`` of ``pipelines/quality.py``).
    variant
        Which of its models.
    holdouts
        Gap patterns (default: the config's).

    Returns
    -------
    pandas.DataFrame
        :func:`by_distance` rows with ``holdout`` and ``factors``
        (``calibrated`` or ``raw``) columns in front.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import quality  # the sibling pipeline: its config, data and held-out region

    exp = quality.load_quality(config)
    cfg = quality.train_config(exp, variant)
    ds, region, invalid = quality._mr.evaluation_data(cfg)
    model = sparsediff.load(Path(run) / "runs" / variant / "model")
    raw = copy.deepcopy(model)
    raw.spec = raw.spec.model_copy(
        update={"spread_scale": 1.0, "spread_bins": [], "spread_scales": []}
    )
    ev = exp.evaluate
    var = cfg.data.variables[0]
    frames = []
    for holdout in holdouts or ev.holdouts:
        for label, m in (("calibrated", model), ("raw", raw)):
            filler = _Capture(m, label, members=ev.members, steps=ev.steps, seed=ev.seed)
            sparsediff.evaluate(
                ds,
                models={},
                baselines=[filler],
                holdout=holdout,
                members=ev.members,
                steps=ev.steps,
                seed=ev.seed,
                dims=cfg.data.dims,
                time_dim=ev.time_dim,
                invalid_along=cfg.data.invalid_along,
                invalid=invalid,
                region=region,
            )
            gappy, out, reg = filler.seen
            frames.append(_table(ds, gappy, out, reg, var, cfg.data.dims, holdout, label))
    return pd.concat(frames, ignore_index=True)


def _table(
    ds: xr.Dataset,
    gappy: xr.Dataset,
    out: xr.Dataset,
    region: Mapping[Hashable, slice],
    var: str,
    dims: Sequence[str],
    holdout: str,
    label: str,
) -> pd.DataFrame:
    field = gappy[var].transpose(*ds[var].dims)
    axes = [field.dims.index(d) for d in dims]
    periodic = [d in field.coords and bool(is_global_longitude(field[d])) for d in dims]
    # the distance over the whole field the model saw, then the scored region
    dist = field.copy(data=distance_field(np.isfinite(field.values), axes, periodic))
    truth = ds[var].isel(region)
    shown = np.isfinite(field.isel(region).values)
    ens = out[var].transpose("member", *truth.dims).values
    table = by_distance(truth.values, shown, ens, dist.isel(region).values)
    table.insert(0, "factors", label)
    table.insert(0, "holdout", holdout)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python pipelines/spread_by_distance.py CONFIG RUN [options]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="the quality config of the run")
    parser.add_argument("run", help="the quality run directory (its --out)")
    parser.add_argument("--variant", default="latent")
    parser.add_argument("--holdouts", nargs="+", default=None)
    parser.add_argument("--out", default=None, help="also write the table to this CSV")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        table = spread_table(args.config, args.run, variant=args.variant, holdouts=args.holdouts)
    except SparsediffError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 160, "display.max_rows", None):
        print(table.to_string(index=False, float_format="%.4g"))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
