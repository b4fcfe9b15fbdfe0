"""Config validation: bad configs are refused before any training starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparsediff.errors import ConfigError, SparsediffWarning
from sparsediff.training.config import TrainConfig, check_unread, load_config, unread_keys
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


def _pixel(c: dict[str, Any]) -> None:
    c["mode"] = "pixel"
    del c["autoencoder"]


UNREAD: dict[str, tuple[Any, str]] = {
    "pixel-stages": (
        lambda c: (_pixel(c), c.update(stages=["prior"])),
        r"stages is read in latent mode only",
    ),
    "latent-pixel-loss": (
        lambda c: c["prior"].update(pixel_loss="zero_filled"),
        r"prior\.pixel_loss is read in pixel mode only",
    ),
    "offsets-without-context-dim": (
        lambda c: c["data"].update(context_offsets=[-2, 2]),
        r"data\.context_offsets need data\.context_dim",
    ),
    "weight-without-context-dim": (
        lambda c: c.update(guess_context_weight="auto"),
        r"guess_context_weight need data\.context_dim",
    ),
    "weight-without-guess-context": (
        lambda c: (
            c["data"].update(context_dim="time"),
            c.update(guess_context=False, guess_context_weight=0.5),
        ),
        r"guess_context_weight is not read with guess_context: false",
    ),
    "weight-with-zero-guess": (
        lambda c: (
            c["data"].update(context_dim="time"),
            c.update(first_guess="zero", guess_context_weight=0.5),
        ),
        r"guess_context_weight is not read with first_guess: zero",
    ),
    "holdout-fraction-without-dim": (
        lambda c: c["data"].update(holdout_dim=None),
        r"data\.holdout_fraction needs data\.holdout_dim",
    ),
}


@pytest.mark.parametrize(("edit", "message"), list(UNREAD.values()), ids=list(UNREAD))
def test_keys_training_would_not_read_are_refused_by_name(
    tiny_config: dict[str, Any], tmp_path: Path, edit: Any, message: str
) -> None:
    edit(tiny_config)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        train(None, tiny_config, out=out)
    assert not out.exists()  # refused before anything is written


def test_pixel_mode_warns_about_autoencoder_and_calibration_keys(
    tiny_config: dict[str, Any],
) -> None:
    tiny_config["mode"] = "pixel"
    tiny_config["calibration"] = {"members": 4, "enabled": True}  # enabled: the default
    tiny_config["autoencoder"]["hide"] = {"rate": [0.2, 0.4]}  # read: in-training evaluation
    refused, warned = unread_keys(load_config(tiny_config))
    assert refused == []
    assert warned == [
        "mode: pixel ignores autoencoder.decoder_widths, autoencoder.encoder_widths, "
        "autoencoder.latent_channels, autoencoder.steps (a pixel model has no autoencoder)",
        "mode: pixel ignores calibration.members (a pixel model has no calibration)",
    ]
    with pytest.warns(SparsediffWarning) as caught:
        check_unread(load_config(tiny_config))
    assert [str(w.message) for w in caught] == warned


def test_values_equal_to_the_defaults_and_recorded_configs_pass(
    tiny_config: dict[str, Any],
) -> None:
    # a key set to its default is not "unread": a config written out whole (as a
    # model records it) passes, and so does the same config in pixel mode
    tiny_config.update(stages=["autoencoder", "prior"], guess_context_weight=1.0)
    tiny_config["data"]["context_offsets"] = [-1, 1]
    cfg = load_config(tiny_config)
    assert unread_keys(cfg) == ([], [])
    recorded = load_config(cfg.model_dump(mode="json"))
    assert unread_keys(recorded) == ([], [])
    pixel = cfg.model_dump(mode="json")
    pixel.update(mode="pixel", stages=["autoencoder", "prior"])
    pixel["autoencoder"] = {}
    assert unread_keys(load_config(pixel)) == ([], [])


@pytest.mark.parametrize("value", [1, 1.5, -0.1, "yes"])
def test_keep_best_takes_a_switch_or_a_margin_below_one(
    tiny_config: dict[str, Any], value: object
) -> None:
    for good in (True, False, 0, 0.05):
        tiny_config["run"]["keep_best"] = good
        assert load_config(tiny_config).run.keep_best == good
    tiny_config["run"]["keep_best"] = value  # 1 would be a 100 % margin: never restore
    with pytest.raises(ConfigError, match="keep_best"):
        load_config(tiny_config)
