"""The quality pipeline: its tiny config runs end to end; ratios are computed on the same points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.scripts import CONFIGS, PIPELINES, load_script, run_script

SCRIPT = PIPELINES / "quality.py"


def _module():  # type: ignore[no-untyped-def]
    return load_script(SCRIPT, "quality_pipeline")


def test_tiny_config_runs_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("iris_sample_data")
    out = tmp_path / "q"
    run_script(SCRIPT, str(CONFIGS / "quality_tiny.yaml"), "--out", str(out), cwd=tmp_path)
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


def test_the_seasonal_configs_load_and_say_how_the_spread_is_calibrated() -> None:
    mod = _module()
    scored = mod.load_quality(CONFIGS / "quality_ostia_seasonal.yaml")
    assert "laplace_seasonal" in scored.evaluate.baselines
    assert scored.evaluate.calibrate == "auto"
    refit = mod.load_quality(CONFIGS / "quality_ostia_seasonal_input.yaml")
    assert refit.evaluate.calibrate == "input"
    with pytest.raises(mod.ConfigError, match="calibrate"):
        mod.load_quality({**refit.model_dump(), "evaluate": {"calibrate": "sometimes"}})
