"""The quality pipeline: its tiny config runs end to end; ratios are computed on the same points."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipelines" / "quality.py"
CONFIGS = ROOT / "pipelines" / "configs"


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("quality_pipeline", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_tiny_config_runs_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("iris_sample_data")
    out = tmp_path / "q"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(CONFIGS / "quality_tiny.yaml"), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = pd.read_csv(out / "results.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert set(results["holdout"]) == {"boxes:0.3", "cloud:0.3"}
    assert set(summary["model"]) == {"latent", "latent_first_guess"}
    for row in summary.itertuples():
        part = results[(results["holdout"] == row.holdout) & (results["kind"] == "baseline")]
        best = part["rmse"].min()
        assert row.best_classical_rmse == pytest.approx(best)
        assert row.rmse_ratio == pytest.approx(row.rmse / best)
    # the first guess alone is deterministic: no spread
    guess = summary[summary["model"] == "latent_first_guess"]
    assert (guess["spread_skill"] == 0).all()
    assert np.isfinite(summary["rmse_ratio"]).all()
    assert (out / "eval" / "boxes_0.3" / "fill_latent.zarr").is_dir()


def test_summarise_picks_the_best_classical_fill() -> None:
    q = _module()
    table = pd.DataFrame(
        {
            "holdout": ["b"] * 3,
            "variable": ["v"] * 3,
            "method": ["m", "laplace", "dineof"],
            "kind": ["model", "baseline", "baseline"],
            "rmse": [0.8, 1.0, 2.0],
            "mae": [0.5, 0.9, 0.7],
            "crps": [0.35, 0.9, 0.7],
            "spread_skill": [1.1, np.nan, np.nan],
        }
    )
    s = q.summarise(table)
    assert s.loc[0, "best_classical"] == "laplace"
    assert s.loc[0, "rmse_ratio"] == pytest.approx(0.8)
    assert s.loc[0, "crps_over_best_mae"] == pytest.approx(0.5)  # best MAE is dineof's 0.7
