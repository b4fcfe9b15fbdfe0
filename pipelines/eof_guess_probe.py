"""Probe: how much a first guess built on the record's EOFs gains over Laplace (issue 15).

The method's first guess is a Laplace relaxation of each step (around the
model's climatology, in space-time with the neighbouring steps). It knows
nothing of the record's large-scale, position-specific covariance, and the
networks, which see one window, cannot learn it either. This probe measures,
outside the package, what a guess that does know it gives on the held-out
steps of a training config:

- **EOFs** of the steps before the held-out period (training + validation:
  what a model may learn from), each field completed by an exact Laplace
  solve around the per-point mean of its observed values;
- per held-out step, **optimal interpolation in EOF space**: the leading ``K``
  EOFs' coefficients from the step's shown points alone, with the EOF
  variances as prior and the variance the ``K`` modes leave out as noise
  (``a = (E_oᵀE_o + σ²Λ⁻¹)⁻¹ E_oᵀ x_o``), then an exact Laplace solve of the
  residual at the shown points (``eofK+laplace``);
- against the per-step **Laplace** fill around the same mean (the method's
  guess without context), scored on exactly the points ``sparsediff
  evaluate`` hides (same call of `make_holdout`, same seed and region),
  area-weighted by cos(latitude);
- ``leak``: the same guess with the coefficients fitted on the shown *and*
  hidden points, the optimism a training-time background fitted on whole
  fields would carry;
- the classical baseline ``laplace_eof`` on the same holes (its EOFs from the
  whole gappy record, its ``K`` by cross-validation, printed in the row).

Usage::

    python pipelines/eof_guess_probe.py CONFIG [--holdouts boxes:0.3 cloud:0.3]
        [--modes 8 16 32] [--seed 0] [--source PATH] [--csv OUT.csv]

The model's own space-time first guess on the same points is the
``latent_first_guess`` row of ``pipelines/quality.py`` (docs/results.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import missing_rate as _mr

from sparsediff.data import eofs
from sparsediff.evaluation.baselines import LaplaceEOF
from sparsediff.evaluation.holdout import make_holdout
from sparsediff.evaluation.metrics.weighting import area_weights
from sparsediff.laplace.sparse import harmonic_solve
from sparsediff.training.config import load_config

__all__ = ["main", "probe"]


def _laplace(field: np.ndarray, known: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Exact Laplace fill of one 2D field (0 where no shown point reaches)."""
    out = harmonic_solve(
        np.where(known, field, 0.0), known, active, (False, False),
        tol=1e-10, iters=5000, direct_max=10**6,
    )  # fmt: skip
    return np.nan_to_num(out)


def _eofs(before: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, eofs.EofBasis]:
    """Mean (P,) and EOFs of the completed fields ``(T, *S)`` at ``active`` points."""
    known = np.isfinite(before) & active
    mean = np.nanmean(np.where(known, before, np.nan), axis=0)
    rows = []
    for t in range(before.shape[0]):
        anom = np.where(known[t], before[t] - mean, 0.0)
        rows.append(_laplace(anom, known[t], active)[active])
    return mean[active], eofs.eof_basis(np.stack(rows))


def probe(
    config: str,
    holdouts: Sequence[str],
    modes: Sequence[int],
    *,
    seed: int = 0,
    source: str | None = None,
) -> pd.DataFrame:
    """RMSE of each guess at the held-out points of ``config``'s held-out steps."""
    cfg = load_config(config)
    if source is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": source})})
    ds, region, invalid = _mr.evaluation_data(cfg)
    (var,) = cfg.data.variables
    dims = list(cfg.data.dims)
    tdim = cfg.data.holdout_dim
    if len(dims) != 2 or tdim is None:
        raise SystemExit("error: the probe needs a 2D config with a holdout dim")
    da = ds[var].transpose(tdim, *dims)
    start = region[tdim].start
    values = da.values.astype(np.float64)
    active = np.isfinite(values).any(axis=0)
    mean, basis = _eofs(values[:start], active)
    area = area_weights(da.isel({tdim: 0}))
    w2 = np.ones(active.shape) if area is None else area.broadcast_like(da.isel({tdim: 0})).values
    weight = w2[active]
    rows = []
    for spec in holdouts:
        gappy, held = make_holdout(
            ds, spec, dims=dims, seed=seed, variables=[var], invalid=invalid,
            invalid_along=cfg.data.invalid_along, region=region, protect_along=tdim,
        )  # fmt: skip
        shown_all = gappy[var].transpose(tdim, *dims).values
        hid_all = held[var].transpose(tdim, *dims).values
        err: dict[str, list[np.ndarray]] = {}
        wts: list[np.ndarray] = []
        for t in range(start, values.shape[0]):
            x = shown_all[t][active] - mean
            obs = np.isfinite(x)
            hid = hid_all[t][active]
            if not hid.any():
                continue
            truth = values[t][active] - mean
            known2 = np.zeros(active.shape, bool)
            known2[active] = obs
            grid = np.zeros(active.shape)
            grid[active] = np.where(obs, x, 0.0)
            lap = _laplace(grid, known2, active)[active]
            err.setdefault("laplace", []).append((lap - truth)[hid])
            wts.append(weight[hid])
            seen = obs | hid
            for k in modes:
                for name, fit_on in ((f"eof{k}", obs), (f"eof{k} leak", seen)):
                    xx = np.where(fit_on, np.where(obs, x, truth), 0.0)
                    g = eofs.interpolate(basis, xx, fit_on, k)
                    res = np.zeros(active.shape)
                    res[active] = np.where(obs, x - g, 0.0)
                    full = g + _laplace(res, known2, active)[active]
                    err.setdefault(f"{name}+laplace", []).append((full - truth)[hid])
        baseline = LaplaceEOF(time_dim=tdim, seed=seed)  # the classical fill, on the whole record
        land = xr.DataArray(~active, dims=dims)  # never observed: invalid, as evaluate decides
        got = baseline.fill(gappy[[var]], dims=tuple(dims), invalid=land)[var]
        got = got.transpose(tdim, *dims).values
        steps = [t for t in range(start, values.shape[0]) if hid_all[t][active].any()]
        err[f"laplace_eof baseline (K={baseline.chosen_modes_[0]})"] = [
            (got[t] - values[t])[active][hid_all[t][active]] for t in steps
        ]
        wt = np.concatenate(wts)
        for name, es in err.items():
            ev = np.concatenate(es)
            rmse = float(np.sqrt(np.sum(wt * ev**2) / np.sum(wt)))
            rows.append({"holdout": spec, "guess": name, "rmse": rmse, "points": ev.size})
    out = pd.DataFrame(rows)
    base = out[out.guess == "laplace"].set_index("holdout")["rmse"]
    out["vs_laplace"] = out.rmse / out.holdout.map(base)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--holdouts", nargs="+", default=["boxes:0.3", "cloud:0.3", "mcar:0.5"])
    p.add_argument("--modes", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source", default=None, help="override the config's data.source")
    p.add_argument("--csv", type=Path, default=None)
    args = p.parse_args(argv)
    table = probe(args.config, args.holdouts, args.modes, seed=args.seed, source=args.source)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.csv is not None:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
