"""The context-weight experiments' helpers: shuffled steps and the learning-curve plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import sparsediff
from sparsediff.training.config import load_config
from tests.scripts import CONFIGS, PIPELINES, load_script, run_script


def test_shuffle_steps_permutes_values_and_keeps_the_coordinate(tmp_path: Path) -> None:
    t = np.arange(10)
    ds = xr.Dataset({"v": (("time", "x"), np.repeat(t[:, None], 3, 1).astype(float))}, {"time": t})
    src = tmp_path / "in.nc"
    ds.to_netcdf(src)
    out = tmp_path / "out.nc"
    run_script(PIPELINES / "shuffle_steps.py", str(src), str(out), "--seed", "3")
    got = sparsediff.open(out).load()
    np.testing.assert_array_equal(got["time"].values, t)  # the coordinate stays in order
    firsts = got["v"].values[:, 0]
    assert sorted(firsts.tolist()) == t.astype(float).tolist()  # every step once
    assert not np.array_equal(firsts, t)  # moved
    np.testing.assert_array_equal(got["v"].values, np.repeat(firsts[:, None], 3, 1))


def test_learned_gain_is_one_minus_the_ratio_to_the_models_own_guess(tmp_path: Path) -> None:
    curve = load_script(PIPELINES / "plot_learning_curve.py", "plot_learning_curve")
    results = pd.DataFrame(
        {
            "holdout": ["boxes:0.3"] * 5,
            "method": [
                "share25",
                "share25_first_guess",
                "share100",
                "share100_first_guess",
                "laplace",
            ],
            "rmse": [0.9, 1.0, 0.4, 0.5, 2.0],
        }
    )
    table = curve.gains(results)
    assert table["share"].tolist() == [25, 100]
    np.testing.assert_allclose(table["gain"], [0.1, 0.2])
    path = tmp_path / "results.csv"
    results.to_csv(path, index=False)
    curve.main([str(path), str(tmp_path / "curve.png")])
    assert (tmp_path / "curve.png").stat().st_size > 5_000


@pytest.mark.parametrize(
    "name", ["quality_a1b_context", "quality_a1b_shuffled", "quality_a1b_curve"]
)
def test_the_experiment_configs_validate(name: str) -> None:
    quality = load_script(PIPELINES / "quality.py", "quality")
    exp = quality.load_quality(CONFIGS / f"{name}.yaml")
    for variant in exp.variants:
        cfg = quality.train_config(exp, variant)
        assert cfg.data.holdout_dim == "time"
    assert (
        load_config(Path(__file__).parents[2] / "configs/climate2d.yaml").guess_context_weight
        == "auto"
    )


def test_the_choice_noise_script_reports_both_guesses_per_seed_and_draws() -> None:
    out = run_script(
        PIPELINES / "climatology_choice_noise.py",
        str(PIPELINES.parent / "configs" / "demo.yaml"),
        "--seeds", "0", "1", "--draws", "2",
    )  # fmt: skip
    rows = [line.split() for line in out.strip().splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [("2", "0"), ("2", "1")]
    for _, _, mean, cycle, ratio in rows:
        assert float(ratio) == pytest.approx(float(cycle) / float(mean), abs=2e-3)
        assert 0.05 < float(mean) < 1.0  # K: a first guess's error, not a climatology's
    assert rows[0][2:4] != rows[1][2:4]  # the seed draws other gaps
