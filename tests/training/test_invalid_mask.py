"""A trained model carries the invalid mask (land) of its training grid and fills with it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sparsediff
from sparsediff.data.sample_data import open_ostia
from sparsediff.errors import ConfigError
from sparsediff.training.config import load_config
from sparsediff.training.data import prepare_data, splits
from sparsediff.training.trainer import train


def _training_land(cfg: Any) -> np.ndarray:
    """Points missing at every step of the training part, computed independently."""
    ds = open_ostia().isel(time=slice(0, 24), longitude=slice(0, 128))
    _, tr, _, _ = splits(cfg, {str(k): int(v) for k, v in ds.sizes.items()})
    values = ds["surface_temperature"].isel(time=tr).values
    return np.isnan(values).all(axis=0)


def test_prepare_data_computes_the_grid_mask(tiny_config: dict[str, Any]) -> None:
    cfg = load_config(tiny_config)
    prepared = prepare_data(cfg)
    assert prepared.invalid is not None
    mask = prepared.invalid["surface_temperature"]
    assert mask.dims == ("latitude", "longitude")
    land = _training_land(cfg)
    assert land.sum() > 100  # real OSTIA land
    np.testing.assert_array_equal(mask.values, land)
    assert "longitude" in mask.coords


def test_trained_model_fills_one_month_without_its_land(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    train(None, tiny_config, out=tmp_path / "run")
    model_dir = tmp_path / "run" / "model"
    files = json.loads((model_dir / "config.json").read_text())["files"]
    assert "invalid.safetensors" in files  # saved and checksummed
    model = sparsediff.load(model_dir)
    assert model.invalid is not None
    land = _training_land(load_config(tiny_config))
    np.testing.assert_array_equal(model.invalid["surface_temperature"].values, land)
    # one month the model never saw: nothing tells its land but the model
    month = open_ostia().isel(time=slice(40, 41), longitude=slice(0, 128))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sparsediff.fill(month, model, steps=2)
    flag = out["surface_temperature_fill_flag"].values[0]
    missing = np.isnan(month["surface_temperature"].values[0])
    np.testing.assert_array_equal(flag == 2, land & missing)
    assert np.isnan(out["surface_temperature"].values[0][land & missing]).all()
    assert json.loads(out.attrs["sparsediff_fill"])["invalid"] == "the model's training mask"


def test_a_holdout_that_leaves_too_little_training_data_is_one_clear_error(
    tiny_config: dict[str, Any],
) -> None:
    tiny_config["data"]["holdout_fraction"] = 0.99
    with pytest.raises(ConfigError, match=r"the training part along 'time' is too small") as err:
        prepare_data(load_config(tiny_config))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("holdout", [0.0, 0.5])
def test_one_training_step_with_a_climatology_names_the_climatology(
    tiny_config: dict[str, Any], holdout: float
) -> None:
    """It used to be "variable ... is constant": the anomalies of one step are all 0."""
    tiny_config["data"]["isel"]["time"] = [0, 1 if holdout == 0 else 2]
    tiny_config["data"]["holdout_fraction"] = holdout
    tiny_config["data"]["climatology_dim"] = "time"
    with pytest.raises(ConfigError, match=r"the training part has 1 step along 'time': its clim"):
        prepare_data(load_config(tiny_config))
    tiny_config["data"]["isel"]["time"] = [0, 2 if holdout == 0 else 4]
    assert prepare_data(load_config(tiny_config)).climatology is not None
