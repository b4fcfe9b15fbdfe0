"""The quality experiment: train models, score them against the best classical fill.

For one training config (and optional variants of it) this pipeline trains
each model once and scores it with :func:`sparsediff.evaluate` on several gap
patterns hidden in the held-out period of the training config — the part no
model was trained on — next to the classical baselines on the same points::

    OUT/results.csv    one row per holdout, variable and method (rmse, mae, crps, ...)
    OUT/summary.csv    per model and holdout: RMSE / best classical RMSE, CRPS / best
                       classical MAE, spread/skill, and which classical fill was best;
                       ``<model>_first_guess`` rows score the model's first guess alone
    OUT/eval/<holdout>/  scores.csv, example_fill.png, rmse_by_method.png
    OUT/runs/<variant>/  the training runs (model/, checkpoints, metrics)
    OUT/run.json       config, hardware, wall times

Usage::

    python pipelines/quality.py pipelines/configs/quality_ostia.yaml --out runs/q_ostia

Trained models found in ``OUT/runs`` are reused, so adding a holdout only
costs its evaluation.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import sparsediff
from sparsediff.data.gaps import parse_pattern
from sparsediff.errors import ConfigError, SparsediffError
from sparsediff.evaluation.baselines import baseline_class
from sparsediff.evaluation.evaluate import DEFAULT_BASELINES
from sparsediff.training.config import (
    TrainConfig,
    format_validation_error,
    load_config,
    read_yaml_mapping,
)

__all__ = ["QualityConfig", "load_quality", "main", "run_quality", "summarise"]

ROOT = Path(__file__).resolve().parents[1]


def _sibling(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


_mr = _sibling("missing_rate")


class QualityEvaluate(BaseModel):
    """How the models and baselines are scored."""

    model_config = ConfigDict(extra="forbid")

    holdouts: list[str] = Field(
        ["boxes:0.3"], min_length=1, description="Gap patterns hidden in the held-out period."
    )
    baselines: list[str] = Field(
        list(DEFAULT_BASELINES), description="Classical baselines (default: evaluate's)."
    )
    members: int = Field(8, ge=2, description="Ensemble members per model.")
    steps: int | None = Field(
        None,
        ge=1,
        description="Sampler steps (null: each model's, those its spread was fitted at).",
    )
    seed: int = Field(0, ge=0, description="Seed of the held-out gaps and the sampling noise.")
    batch_size: int = Field(16, ge=1, description="Windows per model call.")
    time_dim: str | None = Field("time", description="Record dim of the time-based baselines.")
    calibrate: Literal["auto", "validation", "input"] = Field(
        "auto", description="The models' spread calibration (sparsediff.evaluate's calibrate)."
    )


class QualityConfig(BaseModel):
    """The quality experiment config (one YAML file)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("quality", description="Name shown in the outputs.")
    train: dict[str, Any] | str = Field(
        ..., description="Base training config, or the path of one (relative to the repo)."
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"latent": {}},
        description="Model name -> overrides deep-merged into `train`.",
    )
    evaluate: QualityEvaluate = Field(default_factory=QualityEvaluate)
    score_first_guess: bool = Field(
        True, description="Also score each latent model's first guess alone (what it starts from)."
    )


def _base(exp: QualityConfig) -> dict[str, Any]:
    if isinstance(exp.train, str):
        path = Path(exp.train)
        return read_yaml_mapping(path if path.is_absolute() else ROOT / path, "training config")
    return copy.deepcopy(exp.train)


def train_config(exp: QualityConfig, variant: str) -> TrainConfig:
    """The validated training config of one variant."""
    try:
        return load_config(_mr._merge(_base(exp), exp.variants[variant]))
    except ConfigError as e:
        raise ConfigError(f"variant {variant!r}: {e}") from None


guess_only = _mr.guess_only
"""A copy of a latent model that returns its first guess exactly (see ``missing_rate``)."""


def load_quality(config: str | os.PathLike[str] | Mapping[str, Any]) -> QualityConfig:
    """Read and validate a quality config; every training config is validated too."""
    raw = (
        read_yaml_mapping(config, "quality config")
        if isinstance(config, str | os.PathLike)
        else dict(config)
    )
    try:
        exp = QualityConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, QualityConfig, "quality config")) from None
    for variant in exp.variants:
        cfg = train_config(exp, variant)
        if cfg.data.holdout_dim is None or cfg.data.holdout_fraction <= 0:
            raise ConfigError("set train.data.holdout_dim and holdout_fraction > 0")
    for name in exp.evaluate.baselines:
        baseline_class(name)  # a known name (built by evaluate)
    for h in exp.evaluate.holdouts:
        parse_pattern(h)
    return exp


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and holdout: ratios to the best classical fill on the same points."""
    rows = []
    for (holdout, var), part in table.groupby(["holdout", "variable"], sort=False):
        base = part[part["kind"] == "baseline"]
        if base.empty:
            continue
        best = base.sort_values("rmse").iloc[0]
        best_mae = float(base["mae"].min())
        for row in part[part["kind"] == "model"].itertuples():
            rows.append(
                {
                    "holdout": holdout,
                    "variable": var,
                    "model": row.method,
                    "rmse": row.rmse,
                    "best_classical": best["method"],
                    "best_classical_rmse": best["rmse"],
                    "rmse_ratio": row.rmse / best["rmse"],
                    "crps": row.crps,
                    "crps_over_best_mae": row.crps / best_mae,
                    "spread_skill": row.spread_skill,
                }
            )
    return pd.DataFrame(rows)


def run_quality(
    config: str | os.PathLike[str] | Mapping[str, Any] | QualityConfig,
    *,
    out: str | os.PathLike[str] | None = None,
    echo: Callable[[str], Any] = print,
) -> pd.DataFrame:
    """Train every variant, score all on every holdout; return the summary table."""
    exp = config if isinstance(config, QualityConfig) else load_quality(config)
    out_dir = Path(out or f"runs/quality_{exp.name}")
    t_start = time.perf_counter()
    base_cfg = train_config(exp, next(iter(exp.variants)))
    if base_cfg.run.threads is not None:
        torch.set_num_threads(base_cfg.run.threads)
    ds, region, invalid = _mr.evaluation_data(base_cfg)
    models: dict[str, Any] = {}
    train_seconds: dict[str, float] = {}
    for variant in exp.variants:
        run_dir = out_dir / "runs" / variant
        t0 = time.perf_counter()
        if (run_dir / "model" / "config.json").is_file():
            models[variant] = sparsediff.load(run_dir / "model")
            how = "reused"
        else:
            resume = (run_dir / "checkpoints").is_dir()
            cfg = train_config(exp, variant)
            models[variant] = sparsediff.train(None, cfg, out=run_dir, resume=resume)
            how = "resumed" if resume else "trained"
        train_seconds[variant] = time.perf_counter() - t0
        echo(f"{how:>8} {variant:<24} {train_seconds[variant]:8.1f} s")
    if exp.score_first_guess:
        for variant in list(models):
            if models[variant].spec.mode == "latent":
                models[f"{variant}_first_guess"] = guess_only(models[variant])
    ev = exp.evaluate
    frames = []
    eval_seconds = {}
    for holdout in ev.holdouts:
        t0 = time.perf_counter()
        table = sparsediff.evaluate(
            ds,
            models=models,
            holdout=holdout,
            baselines=ev.baselines,
            members=ev.members,
            steps=ev.steps,
            seed=ev.seed,
            dims=base_cfg.data.dims,
            time_dim=ev.time_dim,
            invalid_along=base_cfg.data.invalid_along,
            invalid=invalid,
            region=region,
            batch_size=ev.batch_size,
            calibrate=ev.calibrate,
            out=out_dir / "eval" / holdout.replace(":", "_"),
        )
        eval_seconds[holdout] = time.perf_counter() - t0
        table.insert(0, "holdout", holdout)
        table["train_seconds"] = [train_seconds.get(m, math.nan) for m in table["method"]]
        frames.append(table)
        echo(f"evaluated {holdout} in {eval_seconds[holdout]:.1f} s")
    results = pd.concat(frames, ignore_index=True)
    results.attrs = {}
    summary = summarise(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    results.to_csv(out_dir / "results.csv", index=False)
    summary.to_csv(out_dir / "summary.csv", index=False)
    info = {
        "name": exp.name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "config": exp.model_dump(mode="json"),
        "hardware": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "versions": {"sparsediff": sparsediff.__version__, "torch": torch.__version__},
        "seconds": {
            "train": {k: round(v, 1) for k, v in train_seconds.items()},
            "evaluate": {k: round(v, 1) for k, v in eval_seconds.items()},
            "total": round(time.perf_counter() - t_start, 1),
        },
    }
    (out_dir / "run.json").write_text(json.dumps(info, indent=2))
    with pd.option_context("display.width", 200, "display.max_columns", None):
        echo(
            results.drop(columns=["n_points", "train_seconds"], errors="ignore").to_string(
                index=False, float_format="%.4g"
            )
        )
        echo("")
        echo(summary.to_string(index=False, float_format="%.3f"))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="quality experiment YAML")
    parser.add_argument("--out", default=None, help="output directory")
    args = parser.parse_args(argv)
    try:
        run_quality(args.config, out=args.out)
    except SparsediffError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
