"""pipelines/recalibrate.py: refitting a trained model's calibration, networks untouched."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml

import sparsediff
from sparsediff.method.variability import POWERS, SIGMAS
from tests.scripts import CONFIGS, PIPELINES, load_script


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny OSTIA model trained with the spread following the variability."""
    tmp = tmp_path_factory.mktemp("recal")
    cfg = yaml.safe_load((CONFIGS / "quality_tiny.yaml").read_text())["train"]
    cfg["calibration"]["variability"] = True
    cfg["calibration"]["members"] = 4
    cfg["run"]["out"] = str(tmp / "run")
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    from sparsediff.training.trainer import train

    train(config=path)
    return path, tmp / "run" / "model"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script(PIPELINES / "recalibrate.py", "recalibrate")


def test_recalibration_with_the_configs_candidates_reproduces_the_training(
    trained: tuple[Path, Path], script: ModuleType, tmp_path: Path
) -> None:
    config, model_dir = trained
    before = sparsediff.load(model_dir)
    script.recalibrate(str(config), str(model_dir), str(tmp_path / "again"))
    after = sparsediff.load(tmp_path / "again")
    keep = ("spread_scale", "spread_bins", "spread_scales", "departure_scale")
    keep += ("spread_variability_sigma", "spread_variability_power", "spread_variability_ref")
    for field in keep:
        assert getattr(after.spec, field) == getattr(before.spec, field), field
    for stage, net in before.nets.items():  # the networks are not touched
        for name, value in net.state_dict().items():
            assert torch.equal(after.nets[stage].state_dict()[name], value)
    assert before.spec.spread_variability_power in POWERS
    if before.spec.spread_variability_power > 0:
        assert before.spec.spread_variability_sigma in SIGMAS
        assert "local variability" in before.spec.calibration


def test_powers_zero_gives_the_plain_factors(
    trained: tuple[Path, Path], script: ModuleType, tmp_path: Path
) -> None:
    config, model_dir = trained
    note = script.recalibrate(str(config), str(model_dir), str(tmp_path / "plain"), powers=[0])
    plain = sparsediff.load(tmp_path / "plain").spec
    assert plain.spread_variability_power == 0.0
    assert "local variability" not in note
    assert len(plain.spread_scales) == len(plain.spread_bins) > 0


def test_recalibration_at_other_steps_records_them_and_compare_steps_scores_it(
    trained: tuple[Path, Path], script: ModuleType, tmp_path: Path
) -> None:
    config, model_dir = trained
    cfg = yaml.safe_load(config.read_text())
    cfg["calibration"]["steps"] = 3
    at3 = tmp_path / "at3.yaml"
    at3.write_text(yaml.safe_dump(cfg))
    script.recalibrate(str(at3), str(model_dir), str(tmp_path / "m3"))
    before, after = sparsediff.load(model_dir), sparsediff.load(tmp_path / "m3")
    assert before.spec.spread_steps == 4  # the tiny config's calibration.steps
    assert after.spec.spread_steps == 3  # a fill's default steps now
    assert after.spec.spread_scales != before.spec.spread_scales
    compare = load_script(PIPELINES / "compare_steps.py", "compare_steps")
    lines = compare.score(str(at3), [(str(tmp_path / "m3"), 3)], ["boxes:0.3"])
    assert len(lines) == 1
    assert "at 3 steps: rmse" in lines[0]
    assert "spread/skill" in lines[0]
