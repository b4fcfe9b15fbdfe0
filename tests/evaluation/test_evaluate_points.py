"""Scoring at held-out points: known-answer scores, the point baselines, evaluate_points."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sparsediff.data.observations import Observations
from sparsediff.data.target_grid import TargetGrid
from sparsediff.errors import ConfigError, InputError, SparsediffWarning
from sparsediff.evaluation.point_baselines import (
    BinnedLaplace,
    GriddataLinear,
    Kriging,
    PointForecast,
    get_point_baseline,
    time_steps,
)
from sparsediff.evaluation.points import POINT_COLUMNS, evaluate_points, score_at_points
from sparsediff.method.options import FillOptions
from tests.filling.conftest import make_model

MODEL = make_model(["sst"], ["lat", "lon"], [8, 8], units={"sst": "K"}, mean=290.0, std=2.0)


def _grid_ds(nt: int = 2) -> xr.Dataset:
    time = pd.date_range("2020-01-01", periods=nt, freq="D").values
    coords = {
        "time": time,
        "lat": ("lat", np.arange(10.5, 26.5, 1.0), {"units": "degrees_north"}),
        "lon": ("lon", np.arange(100.5, 116.5, 1.0), {"units": "degrees_east"}),
    }
    sst = xr.DataArray(np.zeros((nt, 16, 16)), dims=("time", "lat", "lon"), attrs={"units": "K"})
    return xr.Dataset({"sst": sst}, coords=coords)


def _field(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return 290.0 + 0.3 * (lat - 18.0) - 0.2 * (lon - 108.0)


def _obs(n: int = 300, seed: int = 0, nt: int = 2, platforms: bool = False) -> Observations:
    rng = np.random.default_rng(seed)
    times = _grid_ds(nt).time.values[rng.integers(0, nt, n)]
    lat, lon = rng.uniform(10.0, 26.0, n), rng.uniform(100.0, 116.0, n)
    plat = np.repeat(np.arange(n // 10), 10)[:n] if platforms else None
    return Observations.from_arrays(
        "sst", _field(lat, lon), {"time": times, "lat": lat, "lon": lon}, platform=plat, units="K"
    )


def test_scores_have_known_values() -> None:
    y = np.array([1.0, 2.0, 3.0])
    ens = xr.DataArray(np.stack([y - 1.0, y + 1.0]), dims=("member", "obs"))
    got = score_at_points(ens, y)
    assert got["rmse"] == 0.0
    assert got["mae"] == 0.0
    # CRPS of the two members y-1, y+1: mean |x - y| = 1, less 1/(2 K^2) sum |xi - xj| = 0.5
    assert got["crps"] == pytest.approx(0.5)
    det = score_at_points(PointForecast(y + np.array([1.0, -1.0, 2.0])), y)
    assert det["rmse"] == pytest.approx(np.sqrt(2.0))
    assert det["mae"] == pytest.approx(4.0 / 3.0)
    assert det["crps"] == det["mae"]
    assert np.isnan(det["spread_skill"])
    # CRPS of N(y, s^2) at y is s (2 phi(0) - 1/sqrt(pi)); spread/skill = s / RMSE
    gauss = score_at_points(PointForecast(y + 0.5, np.full(3, 2.0)), y)
    assert gauss["crps"] > 2.0 * (2.0 / np.sqrt(2.0 * np.pi) - 1.0 / np.sqrt(np.pi))
    assert gauss["spread_skill"] == pytest.approx(4.0)


def test_time_steps_are_the_nearest_grid_steps() -> None:
    grid = TargetGrid.from_dataset(_grid_ds(3)["sst"])
    t = _grid_ds(3).time.values
    obs = Observations.from_arrays(
        "sst",
        np.zeros(4),
        {
            "time": [t[0], t[2], t[1] + np.timedelta64(11, "h"), t[1] + np.timedelta64(13, "h")],
            "lat": np.full(4, 15.0),
            "lon": np.full(4, 105.0),
        },
    )
    np.testing.assert_array_equal(time_steps(obs, grid), [0, 2, 1, 2])


def test_griddata_reproduces_a_linear_field_and_kriging_beats_the_mean() -> None:
    grid = TargetGrid.from_dataset(_grid_ds()["sst"])
    shown, held = _obs(400).aligned_to(grid).holdout("points:0.25", seed=1)
    lin = GriddataLinear().predict(shown, held, grid)
    inside = np.isfinite(lin.mean)
    assert inside.all()
    # exact inside the hull (linear in lat, lon); outside it the nearest value (noted)
    hull_err = np.abs(lin.mean - held.values)
    assert np.median(hull_err) < 1e-9
    kr = Kriging(max_points=100).predict(shown, held, grid)
    err = np.sqrt(np.mean((kr.mean - held.values) ** 2))
    spread_of_values = np.std(held.values)
    assert err < 0.2 * spread_of_values
    assert kr.std is not None
    assert (kr.std > 0).all()
    assert any("random 100" in n for n in kr.notes)  # about 150 shown points a step: capped


def test_binned_laplace_keeps_invalid_cells_out_and_is_exact_on_a_constant() -> None:
    grid = TargetGrid.from_dataset(_grid_ds()["sst"])
    obs = _obs(300).aligned_to(grid)
    flat = Observations("sst", np.full(len(obs), 291.5), obs.coords, units="K")
    shown, held = flat.holdout("points:0.2", seed=0)
    got = BinnedLaplace().predict(shown, held, grid)
    np.testing.assert_allclose(got.mean, 291.5, atol=1e-9)
    inv = xr.DataArray(np.zeros((16, 16), dtype=bool), dims=("lat", "lon"))
    inv[:8] = True  # the southern half is land: targets there read NaN through H
    got = BinnedLaplace().predict(shown, held, grid, inv)
    south = held.coords["lat"] < 17.5
    assert np.isnan(got.mean[south]).all()
    assert np.isfinite(got.mean[held.coords["lat"] > 18.5]).all()


def test_unknown_point_baseline_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown point baseline 'nope'"):
        get_point_baseline("nope")
    with pytest.raises(ConfigError, match="max_points"):
        Kriging(max_points=1)


def test_evaluate_points_scores_every_method_on_the_same_points() -> None:
    kw = {"holdout": "points:0.2", "members": 2, "steps": 2, "seed": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)  # no invalid mask for this grid
        table = evaluate_points(_obs(300), MODEL, _grid_ds(), **kw)
        again = evaluate_points(_obs(300), MODEL, _grid_ds(), **kw)
    assert list(table.columns) == POINT_COLUMNS
    assert list(table["method"]) == ["sparsediff", "kriging", "griddata", "binned_laplace"]
    assert (table["n_points"] == 60).all()
    assert np.isfinite(table[["rmse", "mae", "crps"]].to_numpy()).all()
    # a linear field: griddata is near exact where it interpolates
    assert table.set_index("method").loc["griddata", "rmse"] < table["rmse"].max()
    pd.testing.assert_frame_equal(table.drop(columns="seconds"), again.drop(columns="seconds"))
    assert '"held_out": 60' in table.attrs["holdout"]


def test_evaluate_points_takes_options_or_keywords() -> None:
    base = {"holdout": "points:0.2", "baselines": ["griddata"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)  # no invalid mask for this grid
        by_keywords = evaluate_points(
            _obs(300), MODEL, _grid_ds(), members=2, steps=2, seed=3, guidance=0.5, **base
        )
        opts = FillOptions(members=2, steps=2, seed=3, guidance=0.5)
        by_options = evaluate_points(_obs(300), MODEL, _grid_ds(), options=opts, **base)
        with pytest.raises(ConfigError, match="seed given both"):
            evaluate_points(_obs(300), MODEL, _grid_ds(), options=opts, seed=3, **base)
    cols = ["rmse", "crps", "n_points"]
    pd.testing.assert_frame_equal(by_options[cols], by_keywords[cols])
    assert '"seed": 3' in by_options.attrs["holdout"]  # the options' seed draws the holdout


def test_evaluate_points_by_platform_and_bad_specs() -> None:
    kw = {"members": 2, "steps": 2, "baselines": ["griddata"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)
        table = evaluate_points(
            _obs(300, platforms=True), MODEL, _grid_ds(), holdout="platforms:0.2", **kw
        )
    assert (table["n_points"] == 60).all()  # 6 of 30 platforms, 10 observations each
    with pytest.raises(InputError, match="no platform ids"):
        evaluate_points(_obs(300), MODEL, _grid_ds(), holdout="platforms:0.2", **kw)
    with pytest.raises(InputError, match="expected 'points:F'"):
        evaluate_points(_obs(300), MODEL, _grid_ds(), holdout="cloud:0.2", **kw)
