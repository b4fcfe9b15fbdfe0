"""Fields of the training grid matched to the data by coordinates, never by position alone."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sparsediff.data.alignment import align_to, grid_positions
from sparsediff.data.climatology import add_climatology, anomalies
from sparsediff.errors import CompatibilityError

LAT = np.arange(-75.0, 76.0, 10.0)  # 16 points
LON = np.arange(0.0, 360.0, 10.0)  # 36 points, global


def _field() -> xr.DataArray:
    values = np.add.outer(np.arange(LAT.size) * 100.0, np.arange(LON.size))  # unique per point
    return xr.DataArray(values, dims=("lat", "lon"), coords={"lat": LAT, "lon": LON}, name="clim")


def _data(lat: np.ndarray = LAT, lon: np.ndarray = LON, dtype: str = "float64") -> xr.DataArray:
    return xr.DataArray(
        np.zeros((2, lat.size, lon.size), dtype=dtype),
        dims=("time", "lat", "lon"),
        coords={"lat": lat.astype(dtype), "lon": lon.astype(dtype)},
        name="sst",
    )


def _at(field: xr.DataArray, lat: float, lon: float) -> float:
    i = int(np.flatnonzero(np.isclose(LAT, lat))[0])
    j = int(np.flatnonzero(np.isclose(LON, np.mod(lon, 360.0)))[0])
    return float(field.values[i, j])


def test_same_grid_is_returned_as_is() -> None:
    field = _field()
    assert align_to(field, _data(), what="f") is field
    # float32 coordinates of the same grid match their float64 copy
    assert align_to(field, _data(dtype="float32"), what="f") is field
    assert grid_positions(field, _data(), what="f") == {"lat": None, "lon": None}


@pytest.mark.parametrize(
    "lon",
    [
        np.roll(LON, 18),  # 180 ... 350, 0 ... 170
        np.roll(LON, 18) - 180.0,  # -180 ... 170: the same points modulo 360
        LON[::-1],
    ],
    ids=["rolled", "minus-180-to-180", "reversed"],
)
@pytest.mark.parametrize("lat", [LAT, LAT[::-1]], ids=["south-north", "north-south"])
def test_permutations_are_reordered_point_by_point(lat: np.ndarray, lon: np.ndarray) -> None:
    field = _field()
    data = _data(lat, lon)
    aligned = align_to(field, data, what="f")
    assert aligned.shape == field.shape
    for i, la in enumerate(lat):
        for j, lo in enumerate(lon):
            assert aligned.values[i, j] == _at(field, la, lo)
    np.testing.assert_array_equal(np.mod(aligned["lon"].values, 360), np.mod(lon, 360))


def test_a_subset_of_the_grid_is_taken_at_its_points() -> None:
    field = _field()
    data = _data(LAT[3:9], LON[[5, 6, 7, 30]])
    aligned = align_to(field, data, what="f")
    np.testing.assert_array_equal(aligned.values, field.values[3:9][:, [5, 6, 7, 30]])


@pytest.mark.parametrize(
    ("lat", "lon", "match"),
    [
        (LAT, LON + 5.0, r"the data's 'lon' = 5 is not on the grid of f \(nearest 0, off by 5\)"),
        (LAT + 0.5, LON, r"the data's 'lat' = -74\.5 is not on the grid of f"),
        (np.arange(-75.0, 76.0, 5.0), LON, r"'lat' = -70 is not on the grid of f"),
    ],
    ids=["half-cell-shifted-lon", "shifted-lat", "finer-lat"],
)
def test_other_grids_are_refused(lat: np.ndarray, lon: np.ndarray, match: str) -> None:
    with pytest.raises(CompatibilityError, match=match):
        align_to(_field(), _data(lat, lon), what="f")


def test_repeated_points_and_missing_dims_are_refused() -> None:
    with pytest.raises(CompatibilityError, match="repeats points"):
        align_to(_field(), _data(LAT, np.concatenate([LON[:-1], LON[:1]])), what="f")
    with pytest.raises(CompatibilityError, match="the data have no dim 'lon'"):
        align_to(_field(), _data().isel(lon=0, drop=True), what="f")


def test_without_coordinates_only_equal_sizes_pass() -> None:
    field = _field()
    bare = xr.DataArray(np.zeros((LAT.size, LON.size)), dims=("lat", "lon"))
    assert align_to(field, bare, what="f") is field
    with pytest.raises(CompatibilityError, match=r"36 points along 'lon'; the data have 30"):
        align_to(field, bare.isel(lon=slice(0, 30)), what="f")


def test_time_and_label_coordinates_match_exactly() -> None:
    times = np.array(["2000-01", "2000-02", "2000-03"], dtype="datetime64[ns]")
    field = xr.DataArray([1.0, 2.0, 3.0], dims="month", coords={"month": times})
    data = xr.DataArray(np.zeros(2), dims="month", coords={"month": times[[2, 0]]})
    np.testing.assert_array_equal(align_to(field, data, what="f").values, [3.0, 1.0])
    labels = xr.DataArray([1.0, 2.0], dims="site", coords={"site": ["a", "b"]})
    other = xr.DataArray([0.0], dims="site", coords={"site": ["c"]})
    with pytest.raises(CompatibilityError, match=r"'site' = 'c' is not on the grid"):
        align_to(labels, other, what="f")


def test_anomalies_and_back_follow_the_coordinates() -> None:
    """The climatology is subtracted and added at each point's own value."""
    field = _field()
    canonical = _data().to_dataset()
    canonical["sst"] = canonical["sst"] + field  # the data are their climatology
    rolled = canonical.roll(lon=18, roll_coords=True).isel(lat=slice(None, None, -1))
    for ds in (canonical, rolled):
        anom = anomalies(ds, {"sst": field.rename("sst")})
        assert float(abs(anom["sst"]).max()) == 0.0
        back = add_climatology(anom["sst"], field)
        xr.testing.assert_identical(back.drop_attrs(), ds["sst"].drop_attrs())
