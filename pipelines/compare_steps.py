"""Score models at given sampler steps on a config's held-out part (RMSE, CRPS, spread/skill).

Each ``MODEL:STEPS`` pair is scored with ``sparsediff.evaluate`` on the held-out
part of CONFIG, as ``pipelines/quality.py`` scores it (8 members, seed 0, no
baselines), one holdout after the other::

    python pipelines/compare_steps.py CONFIG MODEL:16 OTHER_MODEL:6 --holdouts boxes:0.3 cloud:0.3

With ``pipelines/recalibrate.py`` (a config whose ``calibration.steps`` is K)
it compares a model calibrated and filled at 16 steps with the same networks
calibrated and filled at K.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import sparsediff
from sparsediff.training.config import load_config

__all__ = ["main", "score"]


def _missing_rate() -> Any:
    """The sibling pipeline ``missing_rate`` (its ``evaluation_data``: what quality.py scores)."""
    path = Path(__file__).with_name("missing_rate.py")
    spec = importlib.util.spec_from_file_location("missing_rate", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("missing_rate", module)
    spec.loader.exec_module(module)
    return module


def score(config: str, pairs: Sequence[tuple[str, int]], holdouts: Sequence[str]) -> list[str]:
    """One line per holdout and ``(model path, steps)`` pair: RMSE, CRPS, spread/skill, seconds."""
    mr = _missing_rate()
    cfg = load_config(config)
    ds, region, invalid = mr.evaluation_data(cfg)
    lines = []
    for holdout in holdouts:
        for path, steps in pairs:
            t0 = time.perf_counter()
            table = sparsediff.evaluate(
                ds,
                models={"model": sparsediff.load(path)},
                holdout=holdout,
                baselines=None,
                members=8,
                steps=steps,
                seed=0,
                dims=cfg.data.dims,
                invalid_along=cfg.data.invalid_along,
                invalid=invalid,
                region=region,
                progress=False,
            )
            r = table.iloc[0]
            line = (
                f"{holdout} {path} at {steps} steps: rmse {r.rmse:.4f} crps {r.crps:.4f} "
                f"spread/skill {r.spread_skill:.3f} ({time.perf_counter() - t0:.1f} s)"
            )
            print(line, flush=True)
            lines.append(line)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``compare_steps.py CONFIG MODEL:STEPS... --holdouts SPEC...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("models", nargs="+", metavar="MODEL:STEPS")
    parser.add_argument("--holdouts", nargs="+", default=["boxes:0.3"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = []
    for item in args.models:
        path, _, steps = item.rpartition(":")
        if not path or not steps.isdigit():
            parser.error(f"give MODEL:STEPS, got {item!r}")
        pairs.append((path, int(steps)))
    score(args.config, pairs, args.holdouts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
