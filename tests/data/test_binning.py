"""Tests of sparsediff.data.binning: per-cell mean, count, spread and error with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sparsediff.data.binning import bin_to_grid
from sparsediff.data.observations import Observations
from sparsediff.data.target_grid import TargetGrid
from sparsediff.errors import InputError


def test_cell_statistics_have_known_values() -> None:
    # three points in cell (lat 0.5, lon 1.5), one in (lat 1.5, lon 0.5); one outside
    obs = Observations.from_arrays(
        "sst",
        [1.0, 2.0, 3.0, 10.0, 99.0],
        {"lat": [0.2, 0.7, 0.9, 1.5, 7.0], "lon": [1.1, 1.9, 1.5, 0.5, 0.5]},
        error=[0.1, 0.2, 0.3, 0.4, 0.5],
        units="K",
    )
    with pytest.warns(match="1 observations lie outside the grid: dropped"):
        ds = bin_to_grid(obs, bounds={"lat": (0.0, 2.0), "lon": (0.0, 3.0)}, resolution=1.0)
    assert ds["sst"].dims == ("lat", "lon")
    np.testing.assert_array_equal(ds["lat"], [0.5, 1.5])
    np.testing.assert_array_equal(ds["sst_count"], [[0, 3, 0], [1, 0, 0]])
    assert ds["sst"][0, 1] == pytest.approx(2.0)
    assert ds["sst"][1, 0] == 10.0
    assert ds["sst_spread"][0, 1] == pytest.approx(np.sqrt(2.0 / 3.0))
    assert ds["sst_spread"][1, 0] == 0.0
    assert ds["sst_error"][0, 1] == pytest.approx(0.2)
    empty = ds["sst_count"].values == 0
    assert np.isnan(ds["sst"].values[empty]).all()
    assert np.isnan(ds["sst_spread"].values[empty]).all()
    assert ds["sst"].attrs["units"] == "K"
    assert ds.attrs["dropped_outside_grid"] == 1


def test_binning_on_a_template_matches_bounds_and_wraps_longitude() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    lon = rng.uniform(-180.0, 180.0, n)
    lat = rng.uniform(-90.0, 90.0, n)
    obs = Observations.from_arrays("v", rng.normal(size=n), {"lat": lat, "lon": lon})
    template = xr.Dataset(
        coords={"lat": np.arange(-87.5, 90.0, 5.0), "lon": np.arange(2.5, 360.0, 5.0)}
    )
    with pytest.warns(match="longitudes moved"):
        a = bin_to_grid(obs, template)
    with pytest.warns(match="longitudes moved"):
        b = bin_to_grid(obs, bounds={"lat": (-90.0, 90.0), "lon": (0.0, 360.0)}, resolution=5.0)
    xr.testing.assert_allclose(a, b)
    assert int(a["v_count"].sum()) == n  # a global grid keeps every point
    # a point at -1 degree falls in the cell 355..360
    west = Observations.from_arrays("v", [1.0], {"lat": [0.1], "lon": [-1.0]})
    with pytest.warns(match="moved"):
        one = bin_to_grid(west, template)
    assert int(one["v_count"].sel(lat=2.5, lon=357.5)) == 1
    # per-cell mean equals a groupby mean
    lon360 = np.mod(lon, 360.0)
    i, j = np.floor((lat + 90) / 5).astype(int), np.floor(lon360 / 5).astype(int)
    sel = (i == 10) & (j == 20)
    assert float(a["v"][10, 20]) == pytest.approx(obs.values[sel].mean(), rel=1e-12)


def test_binning_needs_exactly_one_grid() -> None:
    obs = Observations.from_arrays("v", [1.0], {"x": [0.0]})
    with pytest.raises(InputError, match="either as a template"):
        bin_to_grid(obs)
    with pytest.raises(InputError, match="does not divide"):
        bin_to_grid(obs, bounds={"x": (0.0, 1.0)}, resolution=0.3)


def test_binned_grid_mask_returns_the_field() -> None:
    """The gridded special case: binning a field's observed cells gives the field back."""
    rng = np.random.default_rng(1)
    times = np.array(["2021-01-16", "2021-02-15", "2021-03-16"], dtype="datetime64[ns]")
    values = rng.normal(size=(3, 6, 8))
    values[rng.random(values.shape) < 0.5] = np.nan
    da = xr.DataArray(
        values,
        dims=("time", "y", "x"),
        coords={"time": times, "y": np.arange(6.0), "x": np.arange(8.0)},
        name="f",
    )
    ds = bin_to_grid(Observations.from_grid_mask(da), TargetGrid.from_dataset(da))
    np.testing.assert_array_equal(ds["f"].values, values)
    np.testing.assert_array_equal(ds["f_count"].values, np.isfinite(values).astype(int))
