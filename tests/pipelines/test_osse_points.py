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
