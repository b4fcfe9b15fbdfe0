"""Filling a grid from point observations: observed cells, flags, counts, entry points."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

import sparsediff
from sparsediff.cli import main
from sparsediff.data.binning import bin_to_grid
from sparsediff.data.observations import Observations
from sparsediff.errors import InputError, SparsediffWarning
from sparsediff.filling.fill import fill
from sparsediff.filling.points import fill_points
from tests.filling.conftest import make_model

MODEL = make_model(["sst"], ["lat", "lon"], [8, 8], units={"sst": "K"}, mean=290.0, std=2.0)
OPTS = {"members": 2, "steps": 2, "seed": 5}


def _template() -> xr.Dataset:
    time = pd.date_range("2020-01-01", periods=3, freq="D").values
    lat = np.arange(10.5, 26.5, 1.0)  # 16 cells of 1 degree, edges 10..26
    lon = np.arange(100.5, 116.5, 1.0)
    sst = xr.DataArray(np.zeros((3, 16, 16)), dims=("time", "lat", "lon"))
    coords = {
        "time": time,
        "lat": ("lat", lat, {"units": "degrees_north"}),
        "lon": ("lon", lon, {"units": "degrees_east"}),
    }
    return xr.Dataset({"sst": sst.assign_attrs(units="K")}, coords=coords)


def _obs(n: int = 120, seed: int = 0, errors: bool = True) -> Observations:
    rng = np.random.default_rng(seed)
    time = _template().time.values[rng.integers(0, 3, n)]
    lat = rng.uniform(10.0, 26.0, n)
    lon = rng.uniform(100.0, 116.0, n)
    values = 290.0 + 0.2 * (lat - 18.0) + rng.normal(0.0, 0.3, n)
    # two different observations in one cell (time 0, lat 16.5, lon 103.5)
    time = np.append(time, [_template().time.values[0]] * 2)
    lat, lon = np.append(lat, [16.3, 16.7]), np.append(lon, [103.2, 103.9])
    values = np.append(values, [289.0, 291.0])
    err = np.full(values.size, 0.1) if errors else None
    return Observations.from_arrays(
        "sst", values, {"time": time, "lat": lat, "lon": lon}, error=err, units="K"
    )


def _invalid() -> xr.DataArray:
    inv = np.zeros((16, 16), dtype=bool)
    inv[:4, :4] = True  # "land": the corner lat 10..14, lon 100..104
    return xr.DataArray(inv, dims=("lat", "lon"))


def _fill(**kw: object) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)  # observations in land cells
        return fill_points(MODEL, _obs(), _template(), invalid=_invalid(), **OPTS, **kw)


def test_observed_cells_keep_the_binned_mean_and_flags_and_counts_are_right() -> None:
    out = _fill()
    binned = bin_to_grid(_obs(), _template())
    flag = out["sst_fill_flag"].values
    count = binned["sst_count"].values
    land = np.broadcast_to(_invalid().values, flag.shape)
    sst = out["sst"].transpose("member", "time", "lat", "lon").values
    # flags: 2 on land, 0 at sea cells with observations, 1 at the other sea cells
    np.testing.assert_array_equal(flag, np.where(land, 2, np.where(count > 0, 0, 1)))
    assert np.isnan(sst[:, land]).all()
    seen = (count > 0) & ~land
    for member in sst:  # every member holds exactly the binned mean in observed cells
        np.testing.assert_array_equal(member[seen], binned["sst"].values[seen])
    assert np.isfinite(sst[:, ~land]).all()
    # the cell with two noisy observations (289 and 291, error 0.1) holds their mean,
    # so the analysis passes through neither of them
    t0 = sst[:, 0, 6, 3]
    assert count[0, 6, 3] >= 2
    np.testing.assert_array_equal(t0, np.full(2, binned["sst"].values[0, 6, 3]))
    # the count: observations per cell, 0 on land (not used there)
    np.testing.assert_array_equal(out["sst_count"].values, np.where(land, 0, count))
    assert out["sst_count"].dtype == np.int64


def test_provenance_counts_observations_used_and_dropped() -> None:
    obs = _obs()
    outside = Observations.from_arrays(
        "sst",
        np.array([290.0, 291.0]),
        {"time": _template().time.values[:2], "lat": [40.0, 11.0], "lon": [105.0, 105.0]},
        units="K",
    )
    both = Observations.from_dataframe(
        pd.concat([obs.to_dataframe(), outside.to_dataframe()], ignore_index=True),
        "sst",
        coords=["time", "lat", "lon"],
        units="K",
    )
    with pytest.warns(SparsediffWarning, match="1 observations lie outside the grid"):
        out = fill_points(MODEL, both, _template(), invalid=_invalid(), **OPTS)
    record = json.loads(out.attrs["sparsediff_points"])
    assert record["observations"] == len(obs) + 2
    assert record["dropped"]["outside grid"] == 1
    in_land = int(bin_to_grid(both, _template())["sst_count"].where(_invalid(), 0).sum())
    assert in_land > 0
    assert record["dropped"]["in invalid cells"] == in_land
    assert record["used"] == len(obs) + 1 - in_land == int(out["sst_count"].sum())
    assert record["observed_cells"] == int((out["sst_fill_flag"] == 0).sum())
    assert "keep the mean" in record["observed_cells_rule"]
    assert "sparsediff_fill" in out.attrs


def test_fill_from_points_is_the_grid_fill_of_the_binned_field() -> None:
    out = _fill()
    binned = bin_to_grid(_obs(), _template())[["sst"]]
    grid = fill(binned, MODEL, invalid=_invalid(), invalid_along=None, **OPTS)
    np.testing.assert_array_equal(out["sst"].values, grid["sst"].values)


def test_entry_points_agree_and_seed_decides() -> None:
    ref = _fill()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)
        api = sparsediff.fill(MODEL, points=_obs(), like=_template(), invalid=_invalid(), **OPTS)
        accessor = (
            _obs().to_dataset().sparsediff.fill(MODEL, like=_template(), invalid=_invalid(), **OPTS)
        )
        other = fill_points(
            MODEL, _obs(), _template(), invalid=_invalid(), members=2, steps=2, seed=6
        )
    for out in (api, accessor):
        xr.testing.assert_identical(out["sst"], ref["sst"])
        xr.testing.assert_identical(out["sst_fill_flag"], ref["sst_fill_flag"])
    filled = ref["sst_fill_flag"] == 1
    assert not np.array_equal(
        ref["sst"].where(filled).fillna(0).values, other["sst"].where(filled).fillna(0).values
    )


def test_bounds_and_resolution_give_the_template_grid() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)
        out = fill_points(
            MODEL,
            _obs(),
            bounds={"time": ("2019-12-31T12", "2020-01-03T12"), "lat": (10, 26), "lon": (100, 116)},
            resolution={"time": "1D", "lat": 1.0, "lon": 1.0},
            invalid=_invalid(),
            **OPTS,
        )
    np.testing.assert_array_equal(out["sst"].values, _fill()["sst"].values)


def test_units_are_converted_and_errors_are_one_line() -> None:
    obs = _obs(errors=False)
    celsius = Observations("sst", obs.values - 273.15, obs.coords, units="degC")
    with pytest.warns(SparsediffWarning, match="converted from 'degC' to 'K'"):
        out = fill_points(MODEL, celsius, _template(), invalid=_invalid(), **OPTS)
    binned = bin_to_grid(obs, _template())
    seen = (out["sst_fill_flag"] == 0).values
    np.testing.assert_allclose(
        out["sst"].isel(member=0).values[seen], binned["sst"].values[seen], atol=1e-9
    )
    metres = Observations("sst", obs.values, obs.coords, units="m")
    with pytest.raises(InputError, match="in 'm', not 'K'"):
        fill_points(MODEL, metres, _template(), **OPTS)
    far = Observations("sst", obs.values, {**obs.coords, "lat": obs.coords["lat"] + 50}, units="K")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)
        with pytest.raises(InputError, match="none of the"):
            fill_points(MODEL, far, _template(), **OPTS)
    two = make_model(["sst", "b"], ["lat", "lon"], [8, 8], mean=290.0, std=2.0)
    with pytest.raises(InputError, match="one-variable model"):
        fill_points(two, obs, _template(), **OPTS)
    with pytest.raises(InputError, match="either as a template"):
        fill_points(MODEL, obs, **OPTS)


def _cli_files(tmp_path: Path) -> tuple[Path, Path, Path, list[str]]:
    """MODEL, the observations and the grid written to files; ``fill --points`` args."""
    model_dir = MODEL.save(tmp_path / "model")
    obs_path, grid_path = tmp_path / "obs.nc", tmp_path / "grid.nc"
    _obs().to_dataset().to_netcdf(obs_path)
    _template().to_netcdf(grid_path)
    args = ["fill", str(model_dir), "--points", str(obs_path), "--like", str(grid_path)]
    return model_dir, obs_path, grid_path, args


def test_cli_fills_a_grid_from_points(tmp_path: Path) -> None:
    model_dir, obs_path, grid_path, args = _cli_files(tmp_path)
    inv_path = tmp_path / "land.nc"
    _invalid().to_dataset(name="land").to_netcdf(inv_path)
    out = tmp_path / "out.nc"
    opts = ["--members", "2", "--steps", "2", "--seed", "5", "--invalid", str(inv_path)]
    runner = CliRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("default", SparsediffWarning)  # the CLI prints them
        res = runner.invoke(main, [*args, *opts, str(out)])
    assert res.exit_code == 0, res.output
    assert "warning: 7 observations fall in invalid cells: not used" in res.output
    assert "keeps the model's own calibration" in res.output  # auto: nothing to refit it on
    res = runner.invoke(main, [*args, *opts, "--calibrate", "input", str(tmp_path / "in.nc")])
    assert res.exit_code == 2
    assert "no training config" in res.output
    assert not (tmp_path / "in.nc").exists()
    got = xr.open_dataset(out)
    assert "sst_count" in got
    assert "sparsediff_points" in got.attrs
    np.testing.assert_allclose(got["sst"].values, _fill()["sst"].values, rtol=0, atol=0)
    got.close()
    # bad input: one error line, exit 2, nothing written
    again = tmp_path / "again.nc"
    res = runner.invoke(main, ["fill", str(model_dir), "--points", str(obs_path), str(again)])
    assert res.exit_code == 2
    assert "--points and --like go together" in res.output
    res = runner.invoke(main, [*args, str(grid_path), str(again)])
    assert res.exit_code == 2
    assert "MODEL and OUTPUT only" in res.output
    assert not again.exists()


def test_points_are_read_from_tables_files_and_datasets(tmp_path: Path) -> None:
    from sparsediff.filling.points import as_observations

    obs = _obs()
    csv = tmp_path / "obs.csv"
    obs.to_dataframe().to_csv(csv, index=False)
    from_csv = as_observations(csv, default="sst")
    np.testing.assert_array_equal(from_csv.values, obs.values)
    np.testing.assert_array_equal(from_csv.error, obs.error)  # type: ignore[arg-type]
    from_ds = as_observations(obs.to_dataset(), default="sst")  # errors via ancillary_variables
    np.testing.assert_array_equal(from_ds.error, obs.error)  # type: ignore[arg-type]
    nc = tmp_path / "obs.nc"
    obs.to_dataset().to_netcdf(nc)
    np.testing.assert_array_equal(as_observations(nc, default="sst").values, obs.values)
    assert as_observations(obs) is obs
    with pytest.raises(InputError, match="name the value column"):
        as_observations(obs.to_dataframe())
    with pytest.raises(InputError, match="no such observation file"):
        as_observations(tmp_path / "missing.nc")
    with pytest.raises(InputError, match="points must be"):
        as_observations(np.zeros(3))


def _ostia_points(
    ostia_full: xr.Dataset, share: float, seed: int
) -> tuple[Observations, xr.Dataset]:
    """Two held-out OSTIA months and a random ``share`` of their sea cells as points
    (at the cell centres, the field's own values)."""
    var = "surface_temperature"
    grid = ostia_full.isel(time=slice(52, 54), longitude=slice(0, 144)).load()
    field = grid[var]
    t, y, x = np.nonzero(np.isfinite(field.values))
    rng = np.random.default_rng(seed)
    pick = rng.choice(t.size, int(share * t.size), replace=False)
    t, y, x = t[pick], y[pick], x[pick]
    obs = Observations.from_arrays(
        var,
        field.values[t, y, x],
        {
            "time": field.time.values[t],
            "latitude": field.latitude.values[y],
            "longitude": field.longitude.values[x],
        },
        units=field.attrs.get("units"),
    )
    return obs, grid


def test_input_calibration_on_points_thins_the_observations(ostia_full: xr.Dataset) -> None:
    from sparsediff.demo import DEMO_MODEL
    from sparsediff.filling.points import POINTS_CALIBRATION_HIDE

    var = "surface_temperature"
    demo = sparsediff.load(DEMO_MODEL)
    obs, grid = _ostia_points(ostia_full, 0.05, seed=0)
    kw = {"members": 2, "steps": 2, "seed": 1}
    own = fill_points(demo, obs, grid, calibrate="validation", **kw)
    refit = fill_points(demo, obs, grid, calibrate="input", **kw)
    auto = fill_points(demo, obs, grid, **kw)  # the default: refit too
    xr.testing.assert_identical(auto.drop_attrs(), refit.drop_attrs())
    record = json.loads(refit.attrs["sparsediff_fill"])
    hide = record["input_calibration"]["hide"]
    assert hide == {
        "rate": list(POINTS_CALIBRATION_HIDE.rate),
        "patterns": list(POINTS_CALIBRATION_HIDE.patterns),
    }
    assert record["input_calibration"]["own_mask"] is True  # whole platforms reach the windows
    assert "input_calibration" not in json.loads(own.attrs["sparsediff_fill"])
    assert "hidden input points" in record["model_calibration"]
    assert (
        "hidden input points" not in json.loads(own.attrs["sparsediff_fill"])["model_calibration"]
    )
    flag = refit[f"{var}_fill_flag"].values
    assert np.array_equal(flag, own[f"{var}_fill_flag"].values)
    observed = flag == 0
    for m in range(2):
        got, was = refit[var].isel(member=m).values, own[var].isel(member=m).values
        assert np.array_equal(got[observed], was[observed])  # the binned means, bit for bit
    spread = refit[var].std("member").values[flag == 1]
    before = own[var].std("member").values[flag == 1]
    assert np.all(np.isfinite(spread))
    assert not np.allclose(spread, before)  # the spread factors were refitted


def test_a_model_that_cannot_be_refitted_keeps_its_calibration_with_a_warning() -> None:
    from sparsediff.errors import ConfigError

    # MODEL records no training config: "auto" keeps its own calibration and says so,
    # "input" is refused, "validation" is silent (and the same fill as "auto")
    with pytest.warns(SparsediffWarning, match="keeps the model's own calibration"):
        auto = fill_points(MODEL, _obs(), _template(), invalid=_invalid(), **OPTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)  # observations in land cells
        own = fill_points(
            MODEL, _obs(), _template(), invalid=_invalid(), calibrate="validation", **OPTS
        )
        with pytest.raises(ConfigError, match="no training config"):
            fill_points(MODEL, _obs(), _template(), invalid=_invalid(), calibrate="input", **OPTS)
    xr.testing.assert_identical(auto.drop_attrs(), own.drop_attrs())


def test_the_cells_noise_variance_is_their_error_squared_over_their_count() -> None:
    from sparsediff.filling.points import cell_noise_variance

    binned = bin_to_grid(_obs(), _template())
    count = binned["sst_count"].values
    # every observation has error 0.1: a cell of n of them has a mean with variance 0.01 / n
    assert cell_noise_variance(binned, "sst") == pytest.approx(np.mean(0.01 / count[count > 0]))
    assert count.max() >= 2  # the two observations sharing a cell count half each
    assert cell_noise_variance(bin_to_grid(_obs(errors=False), _template()), "sst") == 0.0


def test_cli_fill_from_points_to_a_target_being_written_refuses_first(tmp_path: Path) -> None:
    from sparsediff.lock import lock_path
    from tests.test_lock import _holder

    _, _, _, args = _cli_files(tmp_path)
    out = tmp_path / "out.nc"
    args += ["--members", "2", "--steps", "2", str(out)]
    with _holder(out) as proc:
        before = sorted(p.name for p in tmp_path.iterdir())
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        assert f"is being written by another run (pid {proc.pid} on host" in res.stderr
        assert "tiles" not in res.stderr  # refused before the fill, not at the write
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)
        res = CliRunner().invoke(main, args)  # the holder is gone: this one runs
    assert res.exit_code == 0, res.output
    assert out.exists()
    assert not lock_path(out).exists()


def test_platform_keep_hides_whole_platforms_per_step() -> None:
    """The calibration on points hides whole platforms (tracks, floats), keyed by the seed."""
    from sparsediff.data.target_grid import TargetGrid
    from sparsediff.filling.points import platform_keep

    rng = np.random.default_rng(3)
    n = 600
    times = _template().time.values
    step = rng.integers(0, 3, n)
    platform = rng.integers(0, 20, n)  # 20 "tracks", each along its own longitude
    lat = rng.uniform(10.0, 26.0, n)
    lon = 100.2 + 0.78 * platform + rng.uniform(0.0, 0.05, n)  # one cell column each
    obs = Observations.from_arrays(
        "sst", np.full(n, 290.0), {"time": times[step], "lat": lat, "lon": lon},
        platform=platform, units="K",
    )  # fmt: skip
    grid = TargetGrid.from_dataset(_template(), ["time", "lat", "lon"])
    keep = platform_keep(obs, grid, ["lat", "lon"], seed=7)
    assert keep.dims == ("time", "lat", "lon")
    from sparsediff.rng import Stream, numpy_rng_for

    col = np.floor(lon - 100.0).astype(int)
    row = np.floor(lat - 10.0).astype(int)
    for t in range(3):
        here = step == t
        present = np.unique(platform[here])
        # the draw, rebuilt: a share in (0.05, 0.3) of the step's platforms, keyed by the step
        rng = numpy_rng_for(7, Stream.PLATFORM_HIDE, t)
        k = max(1, round(rng.uniform(0.05, 0.3) * present.size))
        drawn = set(rng.choice(present, k, replace=False).tolist())
        assert 1 <= len(drawn) <= round(0.3 * present.size)
        # a cell is hidden exactly when every observation in it is from a drawn platform
        expected = np.ones((16, 16), dtype=bool)
        cells = {(r, c) for r, c in zip(row[here], col[here], strict=True)}
        for r, c in cells:
            inside = here & (row == r) & (col == c)
            expected[r, c] = not set(platform[inside].tolist()) <= drawn
        np.testing.assert_array_equal(keep.values[t], expected)
        assert not expected.all()  # something is hidden at every step
    again = platform_keep(obs, grid, ["lat", "lon"], seed=7)
    xr.testing.assert_equal(keep, again)
    other = platform_keep(obs, grid, ["lat", "lon"], seed=8)
    assert not bool((keep == other).all())
    # without ids every observation is its own platform: cells of several observations
    # are hidden only when all of them are
    plain = platform_keep(_obs(), grid, ["lat", "lon"], seed=7)
    assert 0 < int((~plain).sum()) < 0.35 * len(_obs())
