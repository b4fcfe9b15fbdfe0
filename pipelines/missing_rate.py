"""The missing-rate experiment: latent vs pixel-space diffusion trained on incomplete data.

For each training missing rate of the config (default 0, 0.1, 0.3, 0.5, 0.7)
this pipeline trains three models on the same data with that share of the
observed points punched out (MCAR, ``data.extra_missing``):

* ``latent`` — sparsediff: mask-aware autoencoder + latent diffusion prior;
* ``pixel_zero_filled`` — the same denoiser on pixels, trained on the
  zero-filled images (the seed paper's pixel baseline);
* ``pixel_masked`` — the same, with the loss masked to observed points (the
  fair pixel variant).

Each latent model is also scored with its networks switched off
(``latent_first_guess``, :func:`guess_only`; ``score_first_guess: false``
drops these rows): the classical first guess it starts from, computed with the
model's own statistics, so a change with the training missing rate can be told
apart from a change of the learned part.

All models and the classical baselines are then scored by
:func:`sparsediff.evaluate` on the SAME held-out gaps of the
held-out period of the training config (``data.holdout_dim`` /
``data.holdout_fraction``), and the pipeline writes::

    OUT/results.csv          tidy table: rate, method, kind, variable, rmse, crps, ...
    OUT/rmse_vs_missing.png  RMSE / CRPS / spectrum score against the training missing rate
    OUT/eval/                scores.csv, example_fill.png, rmse_by_method.png
    OUT/runs/<variant>_rNN/  one training run per model (model/, checkpoints, metrics)
    OUT/run.json             config, hardware, wall times

Sizes, steps and devices come from the config only, so the same pipeline runs
the tiny CI case on a laptop and the full experiment on a GPU. Trained models
found in ``OUT/runs`` are reused and interrupted runs resume, so a killed job
can simply be started again.

Usage::

    python pipelines/missing_rate.py pipelines/configs/missing_rate_ostia.yaml --out runs/mr_ostia
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import sparsediff
from sparsediff.data.gaps import parse_pattern
from sparsediff.data.sources import resolve_source
from sparsediff.errors import ConfigError, SparsediffError
from sparsediff.evaluation.baselines import baseline_class
from sparsediff.evaluation.evaluate import DEFAULT_BASELINES
from sparsediff.training.config import (
    TrainConfig,
    format_validation_error,
    load_config,
    read_yaml_mapping,
)

__all__ = [
    "DEFAULT_VARIANTS",
    "ExperimentConfig",
    "guess_only",
    "load_experiment",
    "main",
    "run_experiment",
]

DEFAULT_VARIANTS: dict[str, dict[str, Any]] = {
    "latent": {"mode": "latent"},
    "pixel_zero_filled": {"mode": "pixel", "prior": {"pixel_loss": "zero_filled"}},
    "pixel_masked": {"mode": "pixel", "prior": {"pixel_loss": "masked"}},
}
"""The three models of the experiment: overrides of the base training config."""


class EvaluateSection(BaseModel):
    """How the models and baselines are scored (see :func:`sparsediff.evaluate`)."""

    model_config = ConfigDict(extra="forbid")

    holdout: str = Field("boxes:0.3", description="Gap pattern hidden in the held-out period.")
    baselines: list[str] = Field(
        list(DEFAULT_BASELINES), description="Classical baselines (default: evaluate's)."
    )
    members: int = Field(8, ge=1, description="Ensemble members per model.")
    steps: int = Field(16, ge=1, description="Sampler steps.")
    sampler: str = Field("dpmpp_2m", description="Sampler name.")
    seed: int = Field(0, description="Seed of the held-out gaps and the sampling noise.")
    batch_size: int = Field(16, ge=1, description="Windows per model call.")
    device: str | None = Field(None, description="Fill device (default: train.run.device).")
    time_dim: str | None = Field("time", description="Record dim of the time-based baselines.")


class ExperimentConfig(BaseModel):
    """The experiment config (one YAML file)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("experiment", description="Name shown in the outputs.")
    out: str | None = Field(None, description="Output directory (--out overrides).")
    rates: list[float] = Field(
        [0.0, 0.1, 0.3, 0.5, 0.7], min_length=1, description="Training missing rates (MCAR)."
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: copy.deepcopy(DEFAULT_VARIANTS),
        description="Model name -> overrides deep-merged into `train`.",
    )
    train: dict[str, Any] = Field(..., description="Base training config (sparsediff train).")
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    score_first_guess: bool = Field(
        True,
        description="Also score each latent model's first guess alone "
        "(rows ``<variant>_first_guess``): what the learned part adds at each rate.",
    )

    @field_validator("rates")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        if any(not 0.0 <= r < 1.0 for r in v):
            raise ValueError("rates must be in [0, 1)")
        if len(set(v)) != len(v):
            raise ValueError("rates must be distinct")
        return sorted(v)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_experiment(config: str | os.PathLike[str] | Mapping[str, Any]) -> ExperimentConfig:
    """Read and validate an experiment config (YAML path or dict).

    Every training config the experiment will run is validated too, so a bad
    key fails before anything is trained or written.

    Raises
    ------
    ConfigError
        Unknown keys, bad values, an invalid training config, no held-out
        period, or an unknown baseline or holdout spec.
    """
    if isinstance(config, str | os.PathLike):
        raw = read_yaml_mapping(config, "experiment config")
    else:
        raw = dict(config)
    try:
        exp = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(
            format_validation_error(e, ExperimentConfig, "experiment config")
        ) from None
    if not exp.variants:
        raise ConfigError("invalid experiment config: variants is empty")
    for variant in exp.variants:
        cfg = train_config(exp, variant, exp.rates[0])
        if cfg.data.holdout_dim is None or cfg.data.holdout_fraction <= 0:
            raise ConfigError(
                "the experiment scores the held-out period: set train.data.holdout_dim "
                "and train.data.holdout_fraction > 0"
            )
    for name in exp.evaluate.baselines:
        baseline_class(name)  # a known name (built by evaluate)
    parse_pattern(exp.evaluate.holdout)
    return exp


def train_config(
    exp: ExperimentConfig, variant: str, rate: float, *, max_steps: int | None = None
) -> TrainConfig:
    """The validated training config of one model of the experiment.

    ``max_steps`` caps the optimizer steps of every stage (smoke tests, timing).
    """
    cfg = _merge(exp.train, exp.variants[variant])
    cfg = _merge(cfg, {"data": {"extra_missing": float(rate)}})
    if max_steps is not None:
        for stage in ("autoencoder", "prior"):
            section = cfg.setdefault(stage, {})
            section["steps"] = min(int(section.get("steps", 1000)), int(max_steps))
    try:
        return load_config(cfg)
    except ConfigError as e:
        raise ConfigError(f"variant {variant!r}: {e}") from None


def guess_only(model: Any) -> Any:
    """A copy of a latent model that returns its first guess exactly (zero departure, no spread).

    Scored beside the model, it shows what the learned part adds over the
    classical estimate the model starts from.
    """
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


def run_name(variant: str, rate: float) -> str:
    """Directory name of one model's training run, e.g. ``latent_r30``."""
    return f"{variant}_r{round(rate * 100):02d}"


def evaluation_data(
    cfg: TrainConfig,
) -> tuple[xr.Dataset, dict[Hashable, slice], xr.DataArray | str | None]:
    """The data, held-out period and invalid mask the experiment is scored on.

    The data are the training config's source and ``data.isel``; the region is
    its held-out period (the last ``holdout_fraction`` along ``holdout_dim``,
    exactly as the trainer splits it); the invalid mask combines
    ``data.invalid`` and ``data.invalid_below``.
    """
    d = cfg.data
    ds = resolve_source(d.source)
    for dim, rng in d.isel.items():
        ds = ds.isel({dim: slice(*rng)})
    keep = list(d.variables)
    if d.invalid is not None and d.invalid in ds.variables:
        keep.append(d.invalid)
    ds = ds[keep].load()
    assert d.holdout_dim is not None
    n = ds.sizes[d.holdout_dim]
    n_hold = round(n * d.holdout_fraction)
    if n_hold < 1:
        raise ConfigError(
            f"holdout_fraction {d.holdout_fraction} of {d.holdout_dim!r} (length {n}) "
            "holds out nothing"
        )
    region: dict[Hashable, slice] = {d.holdout_dim: slice(n - n_hold, n)}
    invalid: xr.DataArray | str | None = d.invalid
    if d.invalid_below is not None:
        below = xr.zeros_like(ds[d.variables[0]], dtype=bool)
        for v in d.variables:
            below = below | (ds[v] <= d.invalid_below)
        if isinstance(invalid, str):
            from sparsediff.data.masks import invalid_mask

            other = invalid_mask(ds, invalid)
            assert other is not None
            below = below | other
        invalid = below
    return ds, region, invalid


def _plot(results: pd.DataFrame, path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    metrics = [m for m in ("rmse", "crps", "spectrum_score") if m in results]
    variables = list(dict.fromkeys(results["variable"]))
    fig = Figure(figsize=(4.2 * len(metrics), 3.4 * len(variables)))
    axes = fig.subplots(len(variables), len(metrics), squeeze=False)
    models = results[results["kind"] == "model"]
    base = results[results["kind"] == "baseline"]
    styles = ["-", "--", ":", "-."]
    for i, var in enumerate(variables):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for k, (method, rows) in enumerate(models[models["variable"] == var].groupby("method")):
                rows = rows.sort_values("rate")
                ax.plot(rows["rate"], rows[metric], "o-", label=method, color=f"C{k}")
            for k, (_, row) in enumerate(base[base["variable"] == var].iterrows()):
                if np.isfinite(row[metric]):
                    ax.axhline(
                        row[metric],
                        color="0.4",
                        ls=styles[k % len(styles)],
                        lw=1,
                        label=str(row["method"]),
                    )
            ax.set_xlabel("training missing rate (MCAR)")
            ax.set_ylabel(metric)
            ax.set_title(f"{var}: {metric}" if len(variables) > 1 else metric)
            ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run_experiment(
    config: str | os.PathLike[str] | Mapping[str, Any] | ExperimentConfig,
    out: str | os.PathLike[str] | None = None,
    *,
    max_steps: int | None = None,
    echo: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Train every (variant, rate) model, evaluate all on the same gaps, write the results.

    Parameters
    ----------
    config
        Experiment config (YAML path, dict or :class:`ExperimentConfig`).
    out
        Output directory (default: the config's ``out``, else
        ``runs/missing_rate_<name>``).
    max_steps
        Cap on the training steps of every stage (smoke tests and timing; the
        numbers are then not the experiment's).
    echo
        Where progress lines go.

    Returns
    -------
    pandas.DataFrame
        The tidy results (also ``OUT/results.csv``): one row per variable and
        method, ``rate`` the training missing rate (NaN for the baselines,
        which do not train), ``method`` the variant or baseline name, the
        scores of :func:`sparsediff.evaluate`, ``rmse_rel`` (RMSE over the
        same variant's RMSE at the lowest rate), ``train_seconds`` and
        ``fill_seconds``.
    """
    exp = config if isinstance(config, ExperimentConfig) else load_experiment(config)
    out_dir = Path(out or exp.out or f"runs/missing_rate_{exp.name}")
    t_start = time.perf_counter()
    base_cfg = train_config(exp, next(iter(exp.variants)), exp.rates[0])
    if base_cfg.run.threads is not None:
        torch.set_num_threads(base_cfg.run.threads)
    ds, region, invalid = evaluation_data(base_cfg)

    models: dict[str, Any] = {}
    keys: dict[str, tuple[str, float]] = {}
    train_seconds: dict[str, float] = {}
    for rate in exp.rates:
        for variant in exp.variants:
            name = run_name(variant, rate)
            cfg = train_config(exp, variant, rate, max_steps=max_steps)
            run_dir = out_dir / "runs" / name
            t0 = time.perf_counter()
            if (run_dir / "model" / "config.json").is_file():
                model = sparsediff.load(run_dir / "model")
                how = "reused"
            else:
                resume = (run_dir / "checkpoints").is_dir()
                model = sparsediff.train(None, cfg, out=run_dir, resume=resume)
                how = "resumed" if resume else "trained"
            train_seconds[name] = time.perf_counter() - t0
            models[name] = model
            keys[name] = (variant, rate)
            echo(f"{how:>8} {name:<28} {train_seconds[name]:8.1f} s")
            if exp.score_first_guess and model.spec.mode == "latent":
                models[f"{name}_first_guess"] = guess_only(model)
                keys[f"{name}_first_guess"] = (f"{variant}_first_guess", rate)
    t_train = time.perf_counter() - t_start

    ev = exp.evaluate
    device = ev.device or base_cfg.run.device
    t0 = time.perf_counter()
    table = sparsediff.evaluate(
        ds,
        models=models,
        holdout=ev.holdout,
        baselines=ev.baselines,
        members=ev.members,
        steps=ev.steps,
        seed=ev.seed,
        dims=base_cfg.data.dims,
        time_dim=ev.time_dim,
        invalid_along=base_cfg.data.invalid_along,
        invalid=invalid,
        region=region,
        sampler=ev.sampler,
        batch_size=ev.batch_size,
        device=device,
        out=out_dir / "eval",
    )
    t_eval = time.perf_counter() - t0

    table = table.rename(columns={"seconds": "fill_seconds"})
    table.insert(0, "rate", [keys[m][1] if m in keys else math.nan for m in table["method"]])
    table["train_seconds"] = [train_seconds.get(m, math.nan) for m in table["method"]]
    table["method"] = [keys[m][0] if m in keys else m for m in table["method"]]
    ref = (
        table[table["kind"] == "model"]
        .sort_values("rate")
        .groupby(["variable", "method"])["rmse"]
        .first()
    )
    table["rmse_rel"] = [
        row.rmse / ref[(row.variable, row.method)] if row.kind == "model" else math.nan
        for row in table.itertuples()
    ]
    named = [m for v in exp.variants for m in (v, f"{v}_first_guess")]
    order = {v: i for i, v in enumerate([*named, *ev.baselines])}
    table = table.sort_values(
        ["variable", "kind", "method", "rate"],
        key=lambda s: s.map(order) if s.name == "method" else s,
        ascending=[True, False, True, True],
    ).reset_index(drop=True)
    table.attrs = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "results.csv", index=False)
    _plot(
        table,
        out_dir / "rmse_vs_missing.png",
        f"{exp.name}: held-out {ev.holdout}, {ev.members} members",
    )
    t_total = time.perf_counter() - t_start
    info = {
        "name": exp.name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "config": exp.model_dump(mode="json"),
        "region": {str(k): [s.start, s.stop] for k, s in region.items()},
        "hardware": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "versions": {
            "sparsediff": sparsediff.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "seconds": {
            "train": round(t_train, 2),
            "evaluate": round(t_eval, 2),
            "total": round(t_total, 2),
            "train_per_model": {k: round(v, 2) for k, v in train_seconds.items()},
        },
    }
    (out_dir / "run.json").write_text(json.dumps(info, indent=2))

    shown = table.drop(columns=["n_points"], errors="ignore")
    with pd.option_context("display.width", 200, "display.max_columns", None):
        echo(shown.to_string(index=False, float_format="%.4g"))
    echo(
        f"wall time: train {t_train:.1f} s, evaluate {t_eval:.1f} s, total {t_total:.1f} s; "
        f"results in {out_dir}"
    )
    return table


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python pipelines/missing_rate.py CONFIG [--out DIR]``."""
    parser = argparse.ArgumentParser(
        description="Train latent and pixel-space models at several training missing rates "
        "and score them with the classical baselines on the same held-out gaps."
    )
    parser.add_argument("config", type=Path, help="experiment YAML (pipelines/configs/...)")
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="cap the training steps of every stage (smoke tests, timing estimates)",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = parser.parse_args(argv)
    try:
        run_experiment(args.config, args.out, max_steps=args.max_steps)
    except SparsediffError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
