"""The missing-rate pipeline: its tiny CI config runs end to end and writes its table."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import yaml

from sparsediff.errors import ConfigError
from tests.scripts import CONFIGS, PIPELINES, load_script, run_script

SCRIPT = PIPELINES / "missing_rate.py"


@pytest.fixture(scope="module")
def pipeline() -> ModuleType:
    """The pipeline script imported as a module."""
    return load_script(SCRIPT, "missing_rate_pipeline")


def test_tiny_config_runs_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("iris_sample_data")
    out = tmp_path / "mr"
    stdout = run_script(
        SCRIPT, str(CONFIGS / "missing_rate_tiny.yaml"), "--out", str(out), cwd=tmp_path
    )
    assert "wall time:" in stdout
    table = pd.read_csv(out / "results.csv")
    for col in (
        "rate", "method", "kind", "variable", "rmse", "mae", "bias", "crps",
        "spread_skill", "spectrum_score", "rmse_rel", "fill_seconds", "train_seconds",
    ):  # fmt: skip
        assert col in table, col
    models = table[table["kind"] == "model"]
    baselines = table[table["kind"] == "baseline"]
    # 2 rates x (3 variants + the latent model's first guess alone), the 4 baselines once each
    variants = ("latent", "latent_first_guess", "pixel_zero_filled", "pixel_masked")
    assert sorted(zip(models["method"], models["rate"])) == sorted(
        (v, r) for v in variants for r in (0.0, 0.5)
    )
    guess = models[models["method"] == "latent_first_guess"]
    latent = models[models["method"] == "latent"]
    # the guess alone has no spread: its CRPS is its MAE; the model's members do spread
    np.testing.assert_allclose(guess["crps"], guess["mae"], rtol=1e-6)
    assert (latent["crps"].to_numpy() < latent["mae"].to_numpy()).all()
    assert sorted(baselines["method"]) == ["dineof", "laplace", "linear", "time_mean"]
    assert baselines["rate"].isna().all()
    scores = ["rmse", "mae", "crps", "spectrum_score", "fill_seconds"]
    assert np.isfinite(table[scores].to_numpy()).all()
    learned = models[models["method"] != "latent_first_guess"]
    assert np.isfinite(learned[["spread_skill", "train_seconds", "rmse_rel"]].to_numpy()).all()
    # every model is scored on the same held-out points
    assert table["n_points"].nunique() == 1
    np.testing.assert_allclose(models[models["rate"] == 0.0]["rmse_rel"], 1.0)
    for name in ("rmse_vs_missing.png", "eval/example_fill.png", "eval/scores.csv", "run.json"):
        assert (out / name).stat().st_size > 0, name
    for run in ("latent_r00", "pixel_masked_r50", "pixel_zero_filled_r50"):
        assert (out / "runs" / run / "model" / "config.json").is_file()


def test_shipped_configs_are_valid(pipeline: ModuleType) -> None:
    for name in ("tiny", "ostia", "mni152"):
        exp = pipeline.load_experiment(CONFIGS / f"missing_rate_{name}.yaml")
        assert list(exp.variants) == ["latent", "pixel_zero_filled", "pixel_masked"]
        cfg = pipeline.train_config(exp, "pixel_zero_filled", exp.rates[-1])
        assert cfg.mode == "pixel"
        assert cfg.prior.pixel_loss == "zero_filled"
        assert cfg.data.extra_missing == exp.rates[-1]
    full = pipeline.load_experiment(CONFIGS / "missing_rate_ostia.yaml")
    assert full.rates == [0.0, 0.1, 0.3, 0.5, 0.7]


def test_bad_configs_fail_before_anything_runs(pipeline: ModuleType, tmp_path: Path) -> None:
    base = yaml.safe_load((CONFIGS / "missing_rate_tiny.yaml").read_text())
    with pytest.raises(ConfigError, match="ratez"):
        pipeline.load_experiment({**base, "ratez": [0.1]})
    with pytest.raises(ConfigError, match="rates"):
        pipeline.load_experiment({**base, "rates": [0.0, 1.0]})
    bad_variant = {**base, "variants": {"latent": {"prior": {"widht": [8]}}}}
    with pytest.raises(ConfigError, match=r"variant 'latent'.*widht"):
        pipeline.load_experiment(bad_variant)
    no_holdout = yaml.safe_load((CONFIGS / "missing_rate_tiny.yaml").read_text())
    del no_holdout["train"]["data"]["holdout_dim"]
    with pytest.raises(ConfigError, match="holdout_dim"):
        pipeline.load_experiment(no_holdout)
    with pytest.raises(ConfigError, match="unknown baseline"):
        pipeline.load_experiment({**base, "evaluate": {"baselines": ["kriging"]}})
    # the command line: one line on stderr, exit 2, nothing written
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**base, "evaluate": {"holdout": "boxes"}}))
    out = tmp_path / "out"
    assert pipeline.main([str(path), "--out", str(out)]) == 2
    assert not out.exists()
