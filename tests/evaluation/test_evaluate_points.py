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


def _noisy(n: int, s: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A true field at n points and observations of it with N(0, s**2) noise."""
    rng = np.random.default_rng(seed)
    truth = 290.0 + rng.normal(0.0, 2.0, n)
    return truth, truth + rng.normal(0.0, s, n)


def test_obs_error_known_answer_for_an_ensemble_equal_to_the_truth() -> None:
    n, k, s = 20000, 16, 0.3
    truth, obs = _noisy(n, s)
    ens = xr.DataArray(np.broadcast_to(truth, (k, n)).copy(), dims=("member", "obs"))
    error = np.full(n, s)
    ignore = score_at_points(ens, obs)
    add = score_at_points(ens, obs, error, seed=5)
    noise_mae = float(np.mean(np.abs(obs - truth)))
    assert ignore["spread_skill"] == pytest.approx(0.0, abs=1e-9)  # identical members
    assert ignore["crps"] == pytest.approx(noise_mae, rel=1e-9)  # all members at the truth
    # with the error added the members are draws of the observation's distribution
    assert add["spread_skill"] == pytest.approx(1.0, abs=0.03)
    # expected CRPS of K draws of N(0, s^2) against a draw of it (standard estimator):
    # E|X - y| - (K-1)/(2K) E|X - X'| = 2s/sqrt(pi) (K+1)/(2K) = s/sqrt(pi) (1 + 1/K)
    assert add["crps"] == pytest.approx(s / np.sqrt(np.pi) * (1 + 1 / k), rel=0.03)
    assert add["crps"] < 0.8 * noise_mae  # s/sqrt(pi) against MAE s sqrt(2/pi)
    # RMSE and MAE are those of the unperturbed mean
    assert (add["rmse"], add["mae"]) == (ignore["rmse"], ignore["mae"])
    # same seed, same scores; another seed, other draws
    assert score_at_points(ens, obs, error, seed=5) == add
    assert score_at_points(ens, obs, error, seed=6)["crps"] != add["crps"]


def test_obs_error_widens_a_gaussian_unless_it_already_includes_it() -> None:
    n, s = 20000, 0.3
    truth, obs = _noisy(n, s, seed=1)
    std = np.full(n, 0.4)
    plain = score_at_points(PointForecast(truth, std), obs)
    added = score_at_points(PointForecast(truth, std), obs, np.full(n, s))
    rmse = float(np.sqrt(np.mean((obs - truth) ** 2)))
    assert plain["spread_skill"] == pytest.approx(0.4 / rmse)
    assert added["spread_skill"] == pytest.approx(np.sqrt(0.4**2 + s**2) / rmse)
    import scoringrules as sr

    want = np.mean(sr.crps_normal(obs, truth, np.hypot(0.4, s), backend="numpy"))
    assert added["crps"] == pytest.approx(float(want))
    # part of the variance already stands for observation error (kriging's nugget):
    # only what error**2 exceeds it by is added; a nugget above error**2: nothing
    part = score_at_points(PointForecast(truth, std, nugget=np.full(n, 0.05)), obs, np.full(n, s))
    assert part["spread_skill"] == pytest.approx(np.sqrt(0.4**2 + s**2 - 0.05) / rmse)
    big = PointForecast(truth, std, nugget=np.full(n, 2 * s**2))
    assert score_at_points(big, obs, np.full(n, s)) == plain
    # a deterministic estimate stays one: CRPS = MAE, no spread
    det = score_at_points(PointForecast(truth), obs, np.full(n, s))
    assert det["crps"] == det["mae"]
    assert np.isnan(det["spread_skill"])
    with pytest.raises(InputError, match="error has shape"):
        score_at_points(PointForecast(truth), obs, np.full(3, s))


def test_gstools_kriging_variance_already_includes_the_nugget() -> None:
    import gstools as gs

    # what the Kriging baseline relies on: with exact=False (its setting) the
    # variance at a conditioning point keeps the nugget, far away it is the sill
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 10.0, 200)
    model = gs.Exponential(dim=1, var=0.5, len_scale=2.0, nugget=0.09)
    krige = gs.krige.Ordinary(model, cond_pos=x, cond_val=np.sin(x) + rng.normal(0, 0.3, 200))
    _, var = krige([x[0], 100.0], mesh_type="unstructured")
    assert 0.09 <= var[0] < 0.15
    assert var[1] >= model.sill
    # the baseline records the nugget it fitted; its variance at its own points is
    # about that nugget (zero for this linear field, a trend with no nugget fitted)
    grid = TargetGrid.from_dataset(_grid_ds()["sst"])
    shown, _ = _obs(400).aligned_to(grid).holdout("points:0.25", seed=1)
    kr = Kriging(max_points=200).predict(shown, shown, grid)
    assert kr.std is not None
    assert kr.nugget is not None
    assert (kr.nugget >= 0).all()
    np.testing.assert_allclose(np.median(kr.std**2), np.median(kr.nugget), atol=1e-3)


def _noisy_obs(n: int = 300, s: float = 0.2) -> Observations:
    base = _obs(n)
    rng = np.random.default_rng(7)
    values = base.values + rng.normal(0.0, s, len(base))
    return Observations("sst", values, base.coords, error=np.full(len(base), s), units="K")


def test_evaluate_points_adds_the_obs_error_by_default() -> None:
    kw = {"holdout": "points:0.2", "members": 2, "steps": 2, "seed": 3}
    kw["baselines"] = ["kriging", "griddata"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)  # no invalid mask for this grid
        add = evaluate_points(_noisy_obs(), MODEL, _grid_ds(), **kw).set_index("method")
        again = evaluate_points(_noisy_obs(), MODEL, _grid_ds(), **kw).set_index("method")
        ignore = evaluate_points(_noisy_obs(), MODEL, _grid_ds(), obs_error="ignore", **kw)
        ignore = ignore.set_index("method")
        bare = _obs(300)  # no errors: "add" has nothing to add
        no_err = evaluate_points(bare, MODEL, _grid_ds(), **kw)
        no_err_ignore = evaluate_points(bare, MODEL, _grid_ds(), obs_error="ignore", **kw)
    assert add.attrs["obs_error"] == "add"
    assert ignore.attrs["obs_error"] == "ignore"
    assert any("obs_error='add': N(0, error**2)" in n for n in add.attrs["notes"])
    cols = ["rmse", "mae", "crps", "spread_skill"]
    pd.testing.assert_frame_equal(add[cols], again[cols])  # same seed, same scores
    pd.testing.assert_frame_equal(add[["rmse", "mae"]], ignore[["rmse", "mae"]])
    # the ensemble's spread grows by the error, kriging's by what its nugget (zero for
    # this linear field) does not hold; griddata, deterministic, stays as it is
    for name in ("sparsediff", "kriging"):
        assert add.loc[name, "spread_skill"] > ignore.loc[name, "spread_skill"]
        assert add.loc[name, "crps"] != ignore.loc[name, "crps"]
    pd.testing.assert_series_equal(add.loc["griddata", cols], ignore.loc["griddata", cols])
    pd.testing.assert_frame_equal(
        no_err.drop(columns="seconds"), no_err_ignore.drop(columns="seconds")
    )
    assert any("carry no error" in n for n in no_err.attrs["notes"])
    assert no_err.attrs["obs_error"] == "ignore"  # nothing was added
    with pytest.raises(ConfigError, match="obs_error must be"):
        evaluate_points(bare, MODEL, _grid_ds(), obs_error="both", **kw)  # type: ignore[arg-type]


def test_the_noise_at_an_observation_does_not_depend_on_which_others_are_scored() -> None:
    from sparsediff.evaluation import points as pts
    from sparsediff.rng import Stream, numpy_rng_for

    n, k = 50, 8
    rng = np.random.default_rng(3)
    truth = rng.normal(size=n)
    held = Observations("v", truth, {"x": np.arange(n, dtype=float)}, error=np.full(n, 0.3))
    ens = xr.DataArray(truth + rng.normal(size=(k, n)) * 0.5, dims=("member", "obs"))
    gappy = np.zeros(n)
    gappy[0] = np.nan  # a baseline without an estimate at the first observation
    forecasts = {"sparsediff": ens, "other": PointForecast(gappy)}
    table = pts._score_table(
        forecasts, {"sparsediff": 0.0, "other": 0.0}, held, (held.error, ""), 0
    )
    row = table.set_index("method").loc["sparsediff"]
    draw = numpy_rng_for(0, Stream.OBS_ERROR).standard_normal((k, n))  # over all observations
    expected = score_at_points(ens[:, 1:], truth[1:], held.error[1:], draw=draw[:, 1:])
    assert row["crps"] == pytest.approx(expected["crps"], rel=1e-12)
    assert row["spread_skill"] == pytest.approx(expected["spread_skill"], rel=1e-12)
