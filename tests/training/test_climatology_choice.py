"""``data.climatology``: the mean, the seasonal cycle, or the better first guess of the two."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.errors import ConfigError
from sparsediff.training.climatology_choice import choose_climatology, guess_rmse
from sparsediff.training.config import check_unread, load_config
from sparsediff.training.data import prepare_data


def _config(tiny_config: dict[str, Any], kind: str | None, months: int = 54) -> Any:
    tiny_config["data"]["isel"]["time"] = [0, months]
    tiny_config["data"]["climatology_dim"] = "time"
    tiny_config["data"]["holdout_fraction"] = 0.12
    tiny_config["data"]["context_dim"] = "time"
    if kind is not None:
        tiny_config["data"]["climatology"] = kind
    return load_config(tiny_config)


def test_auto_keeps_the_climatology_whose_guess_is_better_on_validation(
    tiny_config: dict[str, Any],
) -> None:
    cfg = _config(tiny_config, None)
    data = prepare_data(cfg)
    assert data.seasonal_candidate
    assert data.climatology is not None
    assert data.climatology["surface_temperature"].dims == ("latitude", "longitude")
    resolved, chosen = choose_climatology(cfg, None, data)
    cycle = prepare_data(_config(tiny_config, "seasonal"))
    scores = [guess_rmse(cfg, d, device="cpu", progress=False) for d in (data, cycle)]
    assert None not in scores
    assert chosen.climatology is not None
    picked_cycle = "time_harmonic" in chosen.climatology["surface_temperature"].dims
    assert picked_cycle == (scores[1] < scores[0])  # type: ignore[operator]
    assert chosen.climatology_note is not None
    assert chosen.climatology_note.startswith("seasonal cycle" if picked_cycle else "per-point")
    assert f"{min(scores):.4g}" in chosen.climatology_note  # type: ignore[type-var]
    # on OSTIA (monthly, 4 years) the seasonal cycle gives the better guess
    assert picked_cycle
    # the resolved config prepares the same climatology again (recalibration, adaptation)
    assert resolved.data.climatology == "seasonal"
    again = prepare_data(resolved)
    assert chosen.climatology is not None
    assert again.climatology is not None
    xr.testing.assert_identical(
        again.climatology["surface_temperature"], chosen.climatology["surface_temperature"]
    )


def test_a_record_too_short_for_a_cycle_keeps_the_mean_and_says_why(
    tiny_config: dict[str, Any],
) -> None:
    data = prepare_data(_config(tiny_config, None, months=20))
    assert data.climatology_note is not None
    assert "span" in data.climatology_note
    assert not data.seasonal_candidate
    resolved, kept = choose_climatology(_config(tiny_config, None, months=20), None, data)
    assert kept is data
    assert resolved.data.climatology == "mean"
    with pytest.raises(ConfigError, match=r"data\.climatology 'seasonal': the steps span"):
        prepare_data(_config(tiny_config, "seasonal", months=20))


def test_mean_is_never_replaced_and_the_key_needs_a_climatology_dim(
    tiny_config: dict[str, Any],
) -> None:
    cfg = _config(tiny_config, "mean")
    data = prepare_data(cfg)
    assert choose_climatology(cfg, None, data) == (cfg, data)
    assert data.climatology is not None
    assert data.climatology["surface_temperature"].dims == ("latitude", "longitude")
    tiny_config["data"]["climatology_dim"] = None
    with pytest.raises(ConfigError, match=r"data\.climatology needs data\.climatology_dim"):
        check_unread(load_config(tiny_config))


def test_a_model_trained_with_a_seasonal_cycle_records_it_and_fills(
    tiny_config: dict[str, Any], tmp_path: Path, ostia_full: Any
) -> None:
    cfg = _config(tiny_config, "seasonal").model_dump(mode="json")
    model = sparsediff.train(config=cfg, out=tmp_path / "run")
    assert model.climatology is not None
    assert "time_harmonic" in model.climatology["surface_temperature"].dims
    assert model.provenance["climatology"].startswith("seasonal cycle")
    assert model.provenance["config"]["data"]["climatology"] == "seasonal"
    again = sparsediff.load(tmp_path / "run" / "model")
    held = ostia_full.isel(time=slice(48, 54), longitude=slice(0, 128))
    gappy = held.copy(deep=True)
    gappy["surface_temperature"][:, 4:10, 40:80] = np.nan
    out = sparsediff.fill(gappy, again, members=1, steps=2)
    flag = out["surface_temperature_fill_flag"].values
    assert (flag == 1).sum() > 100
    seen = flag == 0
    np.testing.assert_array_equal(
        out["surface_temperature"].values[seen], gappy["surface_temperature"].values[seen]
    )
    err = (
        out["surface_temperature"].values[flag == 1] - held["surface_temperature"].values[flag == 1]
    )
    assert np.sqrt(np.mean(err**2)) < 1.5  # K: a fill around the cycle, not the annual mean
