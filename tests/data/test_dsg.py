"""Tests of CF discrete-sampling-geometry input (sparsediff.data.dsg through
Observations.from_cf_dsg): every layout read back to the same observations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sparsediff.data.observations import Observations
from sparsediff.errors import InputError

LAT = {"standard_name": "latitude", "units": "degrees_north"}
LON = {"standard_name": "longitude", "units": "degrees_east"}
TEMP = {"standard_name": "sea_water_temperature", "units": "K"}
TIMES = np.array(["2020-01-01T00", "2020-01-01T06", "2020-01-01T12"], dtype="datetime64[ns]")


def _write(ds: xr.Dataset, path: Path, coordinates: str, feature: str) -> Path:
    ds.attrs.update(featureType=feature, Conventions="CF-1.11")
    ds["temp"].encoding["coordinates"] = coordinates
    ds.to_netcdf(path)
    return path


def test_point(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {
            "temp": ("obs", [280.0, 281.0, 282.0], TEMP),
            "y": ("obs", [10.0, 11.0, 12.0], LAT),
            "x": ("obs", [-5.0, 0.0, 5.0], LON),
            "t": ("obs", TIMES, {"standard_name": "time"}),
        }
    )
    obs = Observations.from_cf_dsg(_write(ds, tmp_path / "p.nc", "t y x", "point"))
    assert obs.name == "temp"
    assert obs.units == "K"
    assert set(obs.dims) == {"latitude", "longitude", "time"}
    np.testing.assert_array_equal(obs.coords["latitude"], [10.0, 11.0, 12.0])
    np.testing.assert_array_equal(obs.coords["time"], TIMES)
    assert obs.platform is None


def test_time_series_orthogonal_multidimensional(tmp_path: Path) -> None:
    temp = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0]])  # one missing value
    ds = xr.Dataset(
        {
            "temp": (("station", "time"), temp, TEMP),
            "lat": ("station", [40.0, 41.0], LAT),
            "lon": ("station", [350.0, 2.0], LON),
            "name": ("station", ["brest", "caen"], {"cf_role": "timeseries_id"}),
        },
        coords={"time": TIMES},
    )
    path = _write(ds, tmp_path / "ts.nc", "time lat lon", "timeSeries")
    with pytest.warns(match="1 observations have a NaN value or coordinate: dropped"):
        obs = Observations.from_cf_dsg(path)
    assert len(obs) == 5
    np.testing.assert_array_equal(obs.values, [1.0, 2.0, 3.0, 4.0, 6.0])
    np.testing.assert_array_equal(obs.coords["longitude"], [350.0] * 3 + [2.0] * 2)
    np.testing.assert_array_equal(obs.coords["time"], np.concatenate([TIMES, TIMES[[0, 2]]]))
    assert list(obs.platform) == ["brest"] * 3 + ["caen"] * 2


def test_time_series_contiguous_ragged(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {
            "temp": ("obs", [1.0, 2.0, 3.0, 4.0], TEMP),
            "time": ("obs", np.concatenate([TIMES[:1], TIMES]), {"standard_name": "time"}),
            "row_size": ("station", [1, 3], {"sample_dimension": "obs"}),
            "lat": ("station", [40.0, 41.0], LAT),
            "lon": ("station", [350.0, 2.0], LON),
            "name": ("station", ["brest", "caen"], {"cf_role": "timeseries_id"}),
        }
    )
    obs = Observations.from_cf_dsg(_write(ds, tmp_path / "cr.nc", "time lat lon", "timeSeries"))
    np.testing.assert_array_equal(obs.coords["latitude"], [40.0, 41.0, 41.0, 41.0])
    assert list(obs.platform) == ["brest", "caen", "caen", "caen"]


def test_trajectory_indexed_ragged_with_errors(tmp_path: Path) -> None:
    temp = {**TEMP, "ancillary_variables": "temp_err"}
    err = {"standard_name": "sea_water_temperature standard_error", "units": "K"}
    ds = xr.Dataset(
        {
            "temp": ("obs", [1.0, 2.0, 3.0], temp),
            "temp_err": ("obs", [0.1, 0.2, 0.3], err),
            "time": ("obs", TIMES, {"standard_name": "time"}),
            "lat": ("obs", [1.0, 2.0, 3.0], LAT),
            "lon": ("obs", [4.0, 5.0, 6.0], LON),
            "traj": ("obs", [1, 0, 1], {"instance_dimension": "trajectory"}),
            "drifter": ("trajectory", ["d0", "d1"], {"cf_role": "trajectory_id"}),
        }
    )
    obs = Observations.from_cf_dsg(_write(ds, tmp_path / "ir.nc", "time lat lon", "trajectory"))
    assert list(obs.platform) == ["d1", "d0", "d1"]
    np.testing.assert_array_equal(obs.error, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(obs.coords["longitude"], [4.0, 5.0, 6.0])


def test_unsupported_or_missing_feature_type_is_one_error(tmp_path: Path) -> None:
    ds = xr.Dataset({"temp": ("obs", [1.0], TEMP), "lat": ("obs", [1.0], LAT)})
    with pytest.raises(InputError, match="featureType 'profile': expected one of"):
        Observations.from_cf_dsg(_write(ds.copy(), tmp_path / "a.nc", "lat", "profile"))
    with pytest.raises(InputError, match="featureType None"):
        Observations.from_cf_dsg(xr.Dataset({"temp": ("obs", [1.0])}))
    with pytest.raises(InputError, match="cannot read"):
        Observations.from_cf_dsg(tmp_path / "absent.nc")


def test_trajectory_incomplete_multidimensional_padding_is_left_out(tmp_path: Path) -> None:
    nat = np.datetime64("NaT", "ns")
    ds = xr.Dataset(
        {
            "temp": (("trajectory", "obs"), [[1.0, 2.0, np.nan], [3.0, np.nan, np.nan]], TEMP),
            "time": (("trajectory", "obs"), [[TIMES[0], TIMES[1], nat], [TIMES[2], TIMES[0], nat]]),
            "lat": (("trajectory", "obs"), [[1.0, 2.0, np.nan], [3.0, 4.0, np.nan]], LAT),
            "lon": (("trajectory", "obs"), [[5.0, 6.0, np.nan], [7.0, 8.0, np.nan]], LON),
            "id": ("trajectory", ["ship-a", "ship-b"], {"cf_role": "trajectory_id"}),
        }
    )
    ds["time"].attrs["standard_name"] = "time"
    path = _write(ds, tmp_path / "im.nc", "time lat lon", "trajectory")
    # two padding elements are not data; one missing value at a real place is counted
    with pytest.warns(match="1 observations have a NaN value or coordinate: dropped"):
        obs = Observations.from_cf_dsg(path)
    np.testing.assert_array_equal(obs.values, [1.0, 2.0, 3.0])
    assert list(obs.platform) == ["ship-a", "ship-a", "ship-b"]
    assert repr(obs) == (
        "Observations('temp', n=3, coords=('time', 'latitude', 'longitude'), errors=False, "
        "platforms=2, units='K', dropped={'NaN': 1})"
    )
