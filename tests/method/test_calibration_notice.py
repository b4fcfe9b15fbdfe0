"""A calibration whose latent carries almost no spread says so where the user sees it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest


def test_a_collapsed_latent_is_reported_on_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("iris_sample_data")
    from sparsediff.method.calibration import LATENT_SPREAD_LOW, SCALE_MAX
    from sparsediff.training.trainer import train
    from tests.test_pinned_numbers import CONFIG

    model = train(None, copy.deepcopy(CONFIG), out=tmp_path / "run")  # 12 steps: no spread
    err = capfd.readouterr().err
    record = model.spec.calibration
    assert "the latent carries almost no spread" in record
    assert max(model.spec.spread_scales) == SCALE_MAX
    assert "ensemble is under-dispersed" in err
    assert record in err
    raw = float(record.split("raw spread/skill ")[1].split(")")[0])
    assert raw < LATENT_SPREAD_LOW
