"""Tests of sparsediff.data.observations: constructors, bad input, alignment, units, holdout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sparsediff.data.observations import Observations
from sparsediff.data.target_grid import TargetGrid
from sparsediff.errors import InputError


def _frame(n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "time": pd.date_range("2020-01-01", periods=n, freq="6h"),
            "latitude": rng.uniform(-10, 10, n),
            "longitude": rng.uniform(-20, 20, n),
            "sst": rng.normal(290, 2, n),
            "sigma": rng.uniform(0.1, 0.5, n),
            "station": rng.choice(["A", "B", "C", "D", "E"], n),
        }
    )


def test_from_dataframe_keeps_every_column_and_finds_coordinates_by_name() -> None:
    df = _frame()
    obs = Observations.from_dataframe(df, "sst", error="sigma", platform="station", units="K")
    assert obs.dims == ("time", "latitude", "longitude")
    assert np.array_equal(obs.values, df["sst"].to_numpy())
    assert obs.coords["time"].dtype == np.dtype("datetime64[ns]")
    assert np.array_equal(obs.error, df["sigma"].to_numpy())
    assert list(obs.platform) == list(df["station"])
    assert dict(obs.dropped) == {}
    back = obs.to_dataframe()
    assert np.array_equal(back["latitude"].to_numpy(), df["latitude"].to_numpy())


def test_missing_column_is_one_error_naming_it() -> None:
    with pytest.raises(InputError, match=r"no column 'lat' \(columns: \["):
        Observations.from_dataframe(_frame(), "sst", coords=["lat", "longitude"])
    with pytest.raises(InputError, match="no coordinate column found"):
        Observations.from_dataframe(pd.DataFrame({"a": [1.0], "b": [2.0]}), "a")


def test_nan_rows_are_dropped_and_counted_or_refused_when_strict() -> None:
    df = _frame()
    df.loc[3, "sst"] = np.nan
    df.loc[5, "latitude"] = np.nan
    df.loc[7, "time"] = pd.NaT
    with pytest.warns(match="3 observations have a NaN value or coordinate: dropped"):
        obs = Observations.from_dataframe(df, "sst")
    assert len(obs) == 17
    assert dict(obs.dropped) == {"NaN": 3}
    with pytest.raises(InputError, match=r"3 observations have a NaN .*\(strict"):
        Observations.from_dataframe(df, "sst", strict=True)


def test_duplicates_are_dropped_but_two_values_at_one_place_are_kept() -> None:
    df = _frame(5)
    repeat = df.iloc[[1, 1, 2]].copy()
    repeat.iloc[2, repeat.columns.get_loc("sst")] += 1.0  # same place, another value
    with pytest.warns(match="2 observations repeat an earlier row: dropped"):
        obs = Observations.from_dataframe(pd.concat([df, repeat]), "sst", platform="station")
    assert len(obs) == 6
    with pytest.raises(InputError, match="repeat an earlier row"):
        Observations.from_dataframe(pd.concat([df, repeat]), "sst", strict=True)


@pytest.mark.parametrize("bad", [0.0, -0.1, np.nan])
def test_an_error_that_is_not_positive_is_refused(bad: float) -> None:
    df = _frame()
    df.loc[4, "sigma"] = bad
    with pytest.raises(InputError, match="1 observation errors are NaN, zero or negative"):
        Observations.from_dataframe(df, "sst", error="sigma")


def test_from_csv_parses_times(tmp_path: Path) -> None:
    df = _frame()
    path = tmp_path / "obs.csv"
    df.to_csv(path, index=False)
    obs = Observations.from_csv(path, "sst", error="sigma", platform="station")
    assert np.array_equal(obs.coords["time"], df["time"].to_numpy().astype("datetime64[ns]"))
    np.testing.assert_allclose(obs.values, df["sst"].to_numpy(), rtol=1e-15)
    with pytest.raises(InputError, match="cannot read"):
        Observations.from_csv(tmp_path / "absent.csv", "sst")


def test_from_dataset_along_an_observation_dim() -> None:
    df = _frame()
    ds = xr.Dataset(
        {
            "sst": ("obs", df["sst"].to_numpy(), {"units": "K"}),
            "lat": ("obs", df["latitude"].to_numpy()),
            "x": ("obs", df["longitude"].to_numpy(), {"units": "degrees_east"}),
            "other": ("obs", np.zeros(len(df))),
        }
    )
    obs = Observations.from_dataset(ds, "sst")
    assert obs.dims == ("lat", "longitude")  # x recognised by its CF units
    assert obs.units == "K"
    with pytest.raises(InputError, match="no variable 'nope'"):
        Observations.from_dataset(ds, "nope")


def test_aligned_to_drops_points_outside_and_times_outside_with_counts() -> None:
    grid = TargetGrid.from_bounds(
        {"time": ("2020-01-01", "2020-01-03"), "lat": (-5.0, 5.0), "lon": (0.0, 360.0)},
        {"time": "1D", "lat": 1.0, "lon": 1.0},
    )
    df = _frame()  # 20 times every 6 h: the last 11 fall after 2020-01-03
    with pytest.warns() as record:
        aligned = Observations.from_dataframe(df, "sst").aligned_to(grid)
    messages = " | ".join(str(w.message) for w in record)
    late = int((df["time"] > "2020-01-03").sum())  # the last edge is inside
    outside = int(((df["time"] <= "2020-01-03") & (df["latitude"].abs() > 5)).sum())
    assert f"{late} observations have times outside" in messages
    assert "observation longitudes moved" in messages  # -20..20 onto 0..360
    assert len(aligned) == len(df) - late - outside
    assert aligned.dims == ("time", "lat", "lon")
    assert np.all((aligned.coords["lon"] >= 0) & (aligned.coords["lon"] < 360))
    assert aligned.dropped["outside time range"] == late
    with pytest.raises(InputError, match="strict"), pytest.warns(match="moved"):
        Observations.from_dataframe(df, "sst").aligned_to(grid, strict=True)


def test_a_coordinate_the_grid_lacks_is_refused() -> None:
    grid = TargetGrid.from_bounds({"lat": (-5.0, 5.0), "lon": (0.0, 10.0)}, 1.0)
    obs = Observations.from_arrays("f", [1.0], {"lat": [0.0], "lon": [1.0], "depth": [5.0]})
    with pytest.raises(InputError, match=r"\['depth'\] match no grid dim"):
        obs.aligned_to(grid)
    with pytest.raises(InputError, match="no coordinate for grid dim 'lon'"):
        Observations.from_arrays("f", [1.0], {"lat": [0.0]}).aligned_to(grid)


def test_units_are_converted_when_convertible_and_refused_otherwise() -> None:
    obs = Observations.from_arrays(
        "t", [0.0, 10.0], {"x": [0.0, 1.0]}, error=[0.1, 0.2], units="degC"
    )
    with pytest.warns(match="converted from 'degC' to 'K'"):
        kelvin = obs.in_units("K")
    np.testing.assert_allclose(kelvin.values, [273.15, 283.15])
    np.testing.assert_allclose(kelvin.error, [0.1, 0.2])  # a difference: no offset
    assert obs.in_units("degC") is obs
    with pytest.raises(InputError, match="are in 'degC', not 'm'"):
        obs.in_units("m")


def test_holdout_points_and_platforms() -> None:
    obs = Observations.from_dataframe(_frame(200, seed=5), "sst", platform="station")
    shown, held = obs.holdout("points:0.1", seed=3)
    assert (len(shown), len(held)) == (180, 20)
    again = obs.holdout("points:0.1", seed=3)[1]
    assert np.array_equal(held.values, again.values)  # same seed, same split
    other = obs.holdout("points:0.1", seed=4)[1]
    assert not np.array_equal(held.values, other.values)
    assert np.array_equal(np.sort(np.concatenate([shown.values, held.values])), np.sort(obs.values))
    shown, held = obs.holdout("platforms:0.4", seed=0)  # 2 of 5 stations
    assert set(held.platform).isdisjoint(shown.platform)
    assert len(set(held.platform)) == 2
    assert len(shown) + len(held) == len(obs)
    for bad in ("points", "points:1.5", "rows:0.1"):
        with pytest.raises(InputError, match="expected 'points:F'"):
            obs.holdout(bad)
    with pytest.raises(InputError, match="no platform ids"):
        Observations.from_dataframe(_frame(), "sst").holdout("platforms:0.5")


def test_constructor_checks_shapes_and_nans() -> None:
    with pytest.raises(InputError, match="one entry per value"):
        Observations("f", np.zeros(3), {"x": np.zeros(2)})
    with pytest.raises(InputError, match="'x' holds NaN"):
        Observations("f", np.zeros(1), {"x": np.array([np.nan])})


def test_a_single_month_template_takes_its_cells_from_cf_bounds() -> None:
    month = np.array(["2021-03-16T12"], dtype="datetime64[ns]")
    bounds = np.array([["2021-03-01", "2021-04-01"]], dtype="datetime64[ns]")
    template = xr.Dataset(
        {"time_bnds": (("time", "nv"), bounds)},
        coords={"time": ("time", month, {"bounds": "time_bnds"}), "lat": [0.0, 1.0]},
    )
    grid = TargetGrid.from_dataset(template, ("time", "lat"))
    times = np.array(["2021-03-02", "2021-03-31", "2021-04-02"], dtype="datetime64[ns]")
    obs = Observations.from_arrays("f", [1.0, 2.0, 3.0], {"time": times, "lat": [0.5, 0.5, 0.5]})
    with pytest.warns(match="1 observations have times outside the grid's"):
        aligned = obs.aligned_to(grid)
    np.testing.assert_array_equal(aligned.values, [1.0, 2.0])
    # without bounds, a one-step time dim holds only its own instant
    bare = TargetGrid.from_dataset(template.drop_vars("time_bnds"), ("time", "lat"))
    with pytest.raises(InputError, match="3 observations have times outside"):
        obs.aligned_to(bare, strict=True)


def test_times_that_are_not_datetimes_are_refused_against_a_time_grid() -> None:
    grid = TargetGrid.from_bounds({"time": ("2020-01-01", "2020-01-03")}, "1D")
    numeric = Observations.from_arrays("f", [1.0], {"time": [12.0]})  # hours since? unknown
    with pytest.raises(InputError, match="differ in kind"):
        numeric.aligned_to(grid)
    with pytest.raises(InputError, match="does not hold times"):
        Observations.from_arrays("f", [1.0], {"time": ["yesterday-ish"]})
    cftime = pytest.importorskip("cftime")
    noleap = xr.Dataset(coords={"x": [cftime.DatetimeNoLeap(2000, 1, 1)]})
    with pytest.raises(InputError, match="neither numeric nor datetime64"):
        TargetGrid.from_dataset(noleap)


def test_a_malformed_csv_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('lat,lon,v\n1,2,3\n4,5,6,7,8\n"unclosed\n')
    with pytest.raises(InputError, match="cannot read") as info:
        Observations.from_csv(path, "v")
    assert "\n" not in str(info.value)


def test_nullable_and_non_numeric_columns() -> None:
    df = pd.DataFrame(
        {
            "lat": pd.array([1.0, 2.0, None], dtype="Float64"),
            "lon": [1.0, 2.0, 3.0],
            "v": pd.array([1, None, 3], dtype="Int64"),
            "word": ["a", "b", "c"],
        }
    )
    with pytest.warns(match="2 observations have a NaN"):
        obs = Observations.from_dataframe(df, "v", coords=["lat", "lon"])
    np.testing.assert_array_equal(obs.values, [1.0])
    with pytest.raises(InputError, match="the word values are not numeric"):
        Observations.from_dataframe(df, "word", coords=["lon"])
    with pytest.raises(InputError, match="coordinate 'word' is not numeric"):
        Observations.from_dataframe(df, "lon", coords=["word"])


def test_to_dataset_round_trips_through_from_dataset(tmp_path: Path) -> None:
    obs = Observations.from_dataframe(_frame(), "sst", error="sigma", platform="station", units="K")
    path = tmp_path / "obs.nc"
    obs.to_dataset().to_netcdf(path)
    with xr.open_dataset(path) as ds:
        back = Observations.from_dataset(ds.load(), "sst", error="sst_error", platform="platform")
    assert back.dims == obs.dims
    assert back.units == "K"
    for key in obs.dims:
        np.testing.assert_array_equal(back.coords[key], obs.coords[key])
    np.testing.assert_array_equal(back.values, obs.values)
    np.testing.assert_array_equal(back.error, obs.error)
    assert list(back.platform) == list(obs.platform)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_holdout_refuses_bad_seeds(seed: object) -> None:
    obs = Observations.from_dataframe(_frame(), "sst")
    with pytest.raises(InputError, match="seed must be a non-negative integer"):
        obs.holdout("points:0.5", seed=seed)  # type: ignore[arg-type]
