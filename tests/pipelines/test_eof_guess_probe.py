"""The EOF-guess probe scores exactly the points ``evaluate`` hides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from sparsediff.data.sample_data import open_ostia
from sparsediff.evaluation.evaluate import evaluate
from tests.scripts import PIPELINES, load_script
from tests.training.conftest import TINY


def test_probe_rows_and_its_baseline_match_evaluate(tmp_path: Path) -> None:
    cfg = {**TINY, "data": {**TINY["data"], "climatology_dim": "time"}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    probe = load_script(PIPELINES / "eof_guess_probe.py", "eof_guess_probe")
    table = probe.probe(str(path), ["boxes:0.3"], [2, 4], seed=0)
    guesses = list(table["guess"])
    assert guesses[:5] == [
        "laplace", "eof2+laplace", "eof2 leak+laplace", "eof4+laplace", "eof4 leak+laplace",
    ]  # fmt: skip
    assert guesses[5].startswith("laplace_eof baseline (K=")
    assert np.isfinite(table["rmse"]).all()
    assert table.loc[0, "vs_laplace"] == 1.0
    # the same holes, the same area weights: the baseline's RMSE is evaluate's
    ds = open_ostia().isel(time=slice(0, 24), longitude=slice(0, 128)).load()
    scores = evaluate(
        ds,
        dims=("latitude", "longitude"),
        holdout="boxes:0.3",
        region={"time": slice(18, 24)},
        seed=0,
        baselines=["laplace_eof"],
    )
    assert int(scores.loc[0, "n_points"]) == int(table.loc[5, "points"])
    assert float(table.loc[5, "rmse"]) == pytest.approx(float(scores.loc[0, "rmse"]), rel=1e-6)
