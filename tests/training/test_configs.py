"""The shipped configs validate, and each trains for a few steps as written (sizes only shrunk)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sparsediff.training.config import load_config
from sparsediff.training.trainer import train

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {"demo.yaml", "climate2d.yaml", "medical3d.yaml"} <= names
    # geo3d.yaml (time as a window dim) is retired: time is context channels now
    assert "geo3d.yaml" not in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.data.source is not None


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_trains_a_few_steps(path: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    raw["autoencoder"]["steps"] = 2
    raw["prior"]["steps"] = 2
    raw["optim"]["batch_size"] = 2
    raw["run"].update(eval_every=0, checkpoint_every=2, progress=False)
    raw["calibration"] = {"max_windows": 2, "members": 2, "steps": 2}
    model = train(None, raw, out=tmp_path / "run")
    assert model.prior is not None
    assert (tmp_path / "run" / "model" / "config.json").exists()
    # the spread was fitted at 2 steps: a fill's default steps
    assert model.spec.spread_steps == 2
    from sparsediff.method.options import FillOptions

    assert len(model.method.sigmas(FillOptions(), "cpu")) == len(
        model.method.sigmas(FillOptions(steps=2), "cpu")
    )
    assert len(model.method.sigmas(FillOptions(), "cpu")) != len(
        model.method.sigmas(FillOptions(steps=16), "cpu")
    )
