"""Config validation: bad configs are refused before any training starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparsediff.errors import ConfigError
from sparsediff.training.config import TrainConfig, load_config
from sparsediff.training.trainer import train
from tests.training.conftest import write_config


def test_valid_config_loads_with_documented_defaults(tiny_config: dict[str, Any]) -> None:
    cfg = load_config(tiny_config)
    assert isinstance(cfg, TrainConfig)
    assert cfg.optim.grad_clip == 1.0
    assert cfg.prior.objective == "edm"
    # every field of every section carries a description (documented)
    for section in (TrainConfig, *(f.annotation for f in TrainConfig.model_fields.values())):
        fields = getattr(section, "model_fields", {})
        for name, field in fields.items():
            if name in ("data", "window", "autoencoder", "prior", "optim", "run"):
                continue
            assert field.description, f"{section.__name__}.{name} has no description"


def test_yaml_path_round_trip(tiny_config: dict[str, Any], tmp_path: Path) -> None:
    cfg = load_config(write_config(tiny_config, tmp_path / "c.yaml"))
    assert cfg.window.size == [8, 32]


def test_unknown_key_lists_valid_keys(tiny_config: dict[str, Any]) -> None:
    tiny_config["optim"]["learning_rate"] = 1e-3
    with pytest.raises(ConfigError, match=r"unknown key 'optim.learning_rate'.*valid keys.*lr"):
        load_config(tiny_config)


def test_misspelled_section_gets_a_suggestion(tiny_config: dict[str, Any]) -> None:
    tiny_config["windw"] = tiny_config.pop("window")
    with pytest.raises(ConfigError, match=r"did you mean 'window'"):
        load_config(tiny_config)


def test_wrong_type_is_named(tiny_config: dict[str, Any]) -> None:
    tiny_config["optim"]["batch_size"] = "many"
    with pytest.raises(ConfigError, match=r"optim.batch_size"):
        load_config(tiny_config)


def test_window_not_divisible(tiny_config: dict[str, Any]) -> None:
    tiny_config["window"]["size"] = [6, 32]
    with pytest.raises(ConfigError, match=r"divisible by 8"):
        load_config(tiny_config)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["window"].update(size=[32, 32]), r"larger than the domain"),
        (lambda c: c["data"].update(variables=["sst_missing"]), r"not in the data"),
        (lambda c: c["data"].update(dims=["latitude", "lon"]), r"lon"),
    ],
    ids=["patch-larger-than-domain", "absent-variable", "absent-dim"],
)
def test_bad_data_config_rejected_before_training(
    tiny_config: dict[str, Any], tmp_path: Path, edit: Any, message: str
) -> None:
    edit(tiny_config)
    out = tmp_path / "run"
    with pytest.raises((ConfigError, ValueError), match=message):
        train(None, tiny_config, out=out)
    assert not (out / "checkpoints").exists()
    assert not (out / "model").exists()
