"""The points OSSE: its samplings (counts, places, values) and its config checks."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import xarray as xr

from sparsediff.errors import ConfigError
from tests.scripts import CONFIGS, PIPELINES, load_script


@pytest.fixture(scope="module")
def osse() -> ModuleType:
    return load_script(PIPELINES / "osse_points.py", "osse_points")


def _truth(ostia: xr.Dataset) -> xr.DataArray:
    return ostia["surface_temperature"].isel(time=slice(0, 2))


def test_random_points_sample_the_sea_cells_at_their_field_values(
    osse: ModuleType, ostia: xr.Dataset
) -> None:
    truth = _truth(ostia)
    obs = osse.random_points(truth, 0.05, 0.0, np.random.default_rng(0))
    sea = int(np.isfinite(truth.isel(time=0).values).sum())
    # 5 % of each month's sea cells, less those whose bilinear stencil touches land
    assert 0.6 * 2 * round(0.05 * sea) < len(obs) <= 2 * round(0.05 * sea)
    assert set(np.unique(obs.coords["time"])) == set(truth.time.values)
    # without noise, a value is the month's field at the point: between its cell neighbours
    lo = truth.min(["latitude", "longitude"]).values.min()
    hi = truth.max(["latitude", "longitude"]).values.max()
    assert (obs.values >= lo).all()
    assert (obs.values <= hi).all()
    noisy = osse.random_points(truth, 0.05, 0.1, np.random.default_rng(0))
    diff = noisy.values - obs.values
    assert 0.08 < diff.std() < 0.12
    # the noise's std is recorded as the observations' error (none without noise)
    assert noisy.error is not None
    np.testing.assert_array_equal(noisy.error, 0.1)
    assert obs.error is None


def test_tracks_are_straight_lines_with_one_id_each(osse: ModuleType, ostia: xr.Dataset) -> None:
    truth = _truth(ostia)
    obs = osse.track_points(truth, 5, 0.5, 0.2, 0.0, np.random.default_rng(1))
    ids = np.unique(obs.platform)
    assert ids.size <= 10
    assert ids.size >= 8  # a track wholly over land would vanish; most do not
    for pid in ids:
        mine = obs.platform == pid
        lat, lon = obs.coords["lat"][mine], np.unwrap(obs.coords["lon"][mine], period=360.0)
        steps = np.diff(lat)
        np.testing.assert_allclose(steps[np.isclose(steps, 0.5)], 0.5)
        slope = np.diff(lon) / np.diff(lat)
        np.testing.assert_allclose(np.abs(slope), 0.2, atol=1e-9)
        assert np.unique(obs.coords["time"][mine]).size == 1


def test_bad_configs_are_one_error(osse: ModuleType, tmp_path: Path) -> None:
    assert osse.load_config(CONFIGS / "osse_points_ostia.yaml")["samplings"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: demo\nbogus: 1\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        osse.load_config(bad)
    bad.write_text("samplings:\n  - {name: a, kind: swath}\n")
    with pytest.raises(ConfigError, match="bad sampling"):
        osse.load_config(bad)
    assert osse.main([str(bad), "--out", str(tmp_path / "o")]) == 2
    bad.write_text("obs_error: both\nsamplings: []\n")
    with pytest.raises(ConfigError, match="obs_error must be"):
        osse.load_config(bad)
    good = str(CONFIGS / "osse_points_ostia.yaml")
    assert osse.main([good, "--out", str(tmp_path / "o"), "--only", "nope"]) == 2
    assert not (tmp_path / "o").exists()  # refused before anything ran or was written


@pytest.mark.slow
def test_tiny_osse_runs_and_scores_every_method(osse: ModuleType, tmp_path: Path) -> None:
    table = osse.run(osse.load_config(CONFIGS / "osse_points_tiny.yaml"), tmp_path)
    assert (tmp_path / "scores.csv").exists()
    assert set(table["method"]) == {
        "sparsediff", "kriging", "griddata", "binned_laplace", "climatology", "kriging_anomaly",
    }  # fmt: skip
    assert np.isfinite(table[["rmse", "mae", "crps"]].to_numpy()).all()


@pytest.mark.slow
def test_seeds_give_one_draw_each_and_a_pooled_table(osse: ModuleType, tmp_path: Path) -> None:
    import pandas as pd

    code = osse.main(
        [str(CONFIGS / "osse_points_tiny.yaml"), "--out", str(tmp_path), "--seeds", "3", "4"]
    )
    assert code == 0
    every = pd.read_csv(tmp_path / "scores.csv")
    assert set(every["seed"]) == {3, 4}
    one = every[(every["method"] == "sparsediff") & (every["sampling"] == "tracks")]
    one = one.set_index("seed")
    assert one.loc[3, "rmse"] != one.loc[4, "rmse"]  # other points, other draws
    assert (tmp_path / "seed3" / "scores.csv").exists()
    pooled = pd.read_csv(tmp_path / "pooled.csv")
    assert (pooled["draws"] == 2).all()
    pooled = pooled[pooled["sampling"] == "tracks"].set_index("method")
    n = one["n_points"].to_numpy()
    expected = np.sqrt(np.sum(n * one["rmse"].to_numpy() ** 2) / n.sum())
    np.testing.assert_allclose(pooled.loc["sparsediff", "rmse"], expected, rtol=1e-3)


def test_pooled_scores_weight_every_draw_by_its_points(osse: ModuleType) -> None:
    import pandas as pd

    table = pd.DataFrame(
        {
            "seed": [0, 1, 0, 1],
            "sampling": ["tracks"] * 4,
            "method": ["sparsediff", "sparsediff", "griddata", "griddata"],
            "rmse": [1.0, 2.0, 3.0, 1.0],
            "mae": [0.5, 1.0, 2.0, 1.0],
            "crps": [0.4, 0.8, 2.0, 1.0],
            "spread_skill": [0.5, 2.0, np.nan, np.nan],
            "n_points": [300, 100, 300, 100],
        }
    )
    got = osse.pooled(table).set_index("method")
    s = got.loc["sparsediff"]
    assert s["draws"] == 2
    assert s["n_points"] == 400
    np.testing.assert_allclose(s["rmse"], np.sqrt((300 * 1 + 100 * 4) / 400))
    np.testing.assert_allclose(s["crps"], (300 * 0.4 + 100 * 0.8) / 400)
    spread = np.sqrt((300 * 0.5**2 + 100 * 4.0**2) / 400)  # spreads 0.5 and 4.0
    np.testing.assert_allclose(s["spread_skill"], spread / s["rmse"])
    assert (s["spread_skill_min"], s["spread_skill_max"]) == (0.5, 2.0)
    assert np.isnan(got.loc["griddata", "spread_skill"])  # a deterministic fill has none
    np.testing.assert_allclose(got.loc["griddata", "mae"], (600 + 100) / 400)


def test_a_background_with_time_is_read_at_each_observations_month(
    osse: ModuleType, ostia: xr.Dataset
) -> None:
    """A seasonal climatology, evaluated at the test months, is a background per month."""
    truth = _truth(ostia)
    obs = osse.random_points(truth, 0.05, 0.0, np.random.default_rng(0))
    field = truth.isel(time=0, drop=True).fillna(0.0)
    flat = osse._Background("b", field, None)
    month = xr.DataArray([0.0, 10.0], dims="time", coords={"time": truth.time.values})
    timed = osse._Background("b", field + month, None)  # month 2: +10
    grid = None  # not read without an inner baseline
    got = timed.predict(obs, obs, grid).mean - flat.predict(obs, obs, grid).mean
    second = obs.coords["time"] == truth.time.values[1]
    np.testing.assert_allclose(got[second], 10.0, atol=1e-6)
    np.testing.assert_allclose(got[~second], 0.0, atol=1e-6)
