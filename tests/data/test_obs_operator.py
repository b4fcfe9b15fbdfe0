"""Tests of the observation operator H (sparsediff.data.obs_operator): known answers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sparsediff.data.observations import Observations
from sparsediff.data.target_grid import TargetGrid
from sparsediff.errors import InputError


def _grid2d(lon: np.ndarray, lat: np.ndarray) -> TargetGrid:
    ds = xr.Dataset(coords={"lat": ("lat", lat), "lon": ("lon", lon)})
    return TargetGrid.from_dataset(ds, ("lat", "lon"))


def test_bilinear_h_reproduces_a_linear_field_exactly() -> None:
    lat = np.linspace(60.0, 20.0, 9)  # descending, as in many files
    lon = np.linspace(-30.0, 10.0, 17)  # a sector: no wrap
    grid = _grid2d(lon, lat)
    field = 3.0 + 0.5 * lat[:, None] - 0.25 * lon[None, :]
    rng = np.random.default_rng(1)
    plat, plon = rng.uniform(20, 60, 500), rng.uniform(-30, 10, 500)
    obs = Observations.from_arrays("f", np.zeros(500), {"lat": plat, "lon": plon})
    H = obs.operator(grid)
    assert H.shape == (500, field.size)
    assert H.nnz <= 4 * 500  # O(N) memory
    np.testing.assert_allclose(H.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(H @ field.ravel(), 3.0 + 0.5 * plat - 0.25 * plon, rtol=1e-12)


def test_trilinear_h_with_time_reproduces_a_linear_field() -> None:
    times = np.array(["2020-01-01", "2020-01-02", "2020-01-04"], dtype="datetime64[ns]")
    depth, lat = np.array([0.0, 10.0, 50.0, 100.0]), np.arange(5.0)
    ds = xr.Dataset(coords={"time": times, "depth": depth, "lat": lat})
    grid = TargetGrid.from_dataset(ds, ("time", "depth", "lat"))
    days = (times - times[0]) / np.timedelta64(1, "D")
    field = 2.0 * days[:, None, None] + 0.1 * depth[None, :, None] - lat[None, None, :]
    rng = np.random.default_rng(2)
    hours = rng.uniform(0, 72, 300)
    t = times[0] + (hours * 3600).astype("timedelta64[s]")
    z, y = rng.uniform(0, 100, 300), rng.uniform(0, 4, 300)
    obs = Observations.from_arrays("f", np.zeros(300), {"time": t, "depth": z, "lat": y})
    H = obs.operator(grid)
    assert H.nnz <= 8 * 300
    expect = 2.0 * np.floor(hours * 3600) / 86400 + 0.1 * z - y
    np.testing.assert_allclose(H @ field.ravel(), expect, rtol=1e-10, atol=1e-10)
    # nearest in time: a point at 1.8 days takes day 2's (index 1) value whatever its weight
    near = Observations.from_arrays(
        "f", [0.0], {"time": times[:1] + np.timedelta64(43, "h"), "depth": [0.0], "lat": [0.0]}
    )
    assert (near.operator(grid, time="nearest") @ field.ravel())[0] == field[1, 0, 0]
    with pytest.raises(InputError, match="time interpolation"):
        near.operator(grid, time="cubic")  # type: ignore[arg-type]


def test_periodic_longitude_wraps_across_0_360() -> None:
    lon = np.arange(5.0, 360.0, 10.0)  # 5 ... 355, global
    grid = _grid2d(lon, np.array([0.0]))
    assert grid.periodic["lon"]
    obs = Observations.from_arrays("f", np.zeros(3), {"lon": [358.0, 0.0, 1.0]})
    dense = obs.operator(grid).toarray()
    last, first = lon.size - 1, 0
    np.testing.assert_allclose(dense[0, [last, first]], [0.7, 0.3])
    np.testing.assert_allclose(dense[1, [last, first]], [0.5, 0.5])
    np.testing.assert_allclose(dense[2, [last, first]], [0.4, 0.6])
    assert np.count_nonzero(dense) == 6  # nothing else
    # a -180..180 longitude of the same place gives the same row once aligned
    west = Observations.from_arrays("f", np.zeros(1), {"lon": [-2.0]})
    with pytest.warns(match="1 observation longitudes moved"):
        aligned = west.aligned_to(grid)
    np.testing.assert_allclose(aligned.operator(grid).toarray()[0], dense[0])


def test_grid_mask_observations_select_exactly_the_observed_cells() -> None:
    rng = np.random.default_rng(3)
    times = np.array(["2021-01-16", "2021-02-15"], dtype="datetime64[ns]")
    lat, lon = np.linspace(50.0, -50.0, 11), np.arange(0.0, 360.0, 15.0)
    values = rng.normal(size=(2, 11, 24)).astype(np.float32)
    values[rng.random(values.shape) < 0.6] = np.nan
    da = xr.DataArray(
        values,
        dims=("time", "lat", "lon"),
        coords={"time": times, "lat": lat, "lon": lon},
        name="sst",
    )
    obs = Observations.from_grid_mask(da)
    grid = TargetGrid.from_dataset(da)
    H = obs.operator(grid)
    observed = np.flatnonzero(np.isfinite(values.ravel()))
    assert len(obs) == observed.size
    assert H.nnz == observed.size
    assert np.all(H.data == 1.0)
    assert np.array_equal(H.indices, observed)
    filled = np.nan_to_num(values.astype(np.float64)).ravel()
    assert np.array_equal(H @ filled, obs.values)  # bit-identical
    assert np.array_equal(obs.values, values.ravel()[observed].astype(np.float64))


def test_adjoint_is_the_transpose() -> None:
    grid = _grid2d(np.arange(0.0, 360.0, 30.0), np.linspace(-60, 60, 7))
    rng = np.random.default_rng(4)
    obs = Observations.from_arrays(
        "f", np.zeros(50), {"lat": rng.uniform(-60, 60, 50), "lon": rng.uniform(0, 360, 50)}
    )
    H = obs.operator(grid)
    x, y = rng.normal(size=grid.size), rng.normal(size=50)
    np.testing.assert_allclose((H @ x) @ y, x @ (H.T @ y), rtol=1e-12)


def test_points_outside_must_be_aligned_first() -> None:
    grid = _grid2d(np.arange(0.0, 40.0, 10.0), np.arange(0.0, 40.0, 10.0))  # edges -5 .. 35
    obs = Observations.from_arrays("f", np.zeros(2), {"lat": [10.0, 50.0], "lon": [10.0, 10.0]})
    with pytest.raises(InputError, match="1 observations outside the grid"):
        obs.operator(grid)
    # between the last centre and the edge: the outermost cell's value
    edge = Observations.from_arrays("f", [0.0], {"lat": [34.0], "lon": [-4.0]})
    dense = edge.operator(grid).toarray()[0]
    assert dense[3 * 4 + 0] == 1.0


_LON = np.round(np.arange(0.025, 360.0, 0.05), 3)  # 0.05 degree steps, not exact in binary


@pytest.mark.parametrize(
    "lon",
    [
        _LON,
        np.roll(_LON, 3600),  # rolled to start at 180
        _LON[::-1],  # descending
        np.roll(_LON[::-1], 1234),  # descending and rolled
        np.round(np.arange(-179.975, 180.0, 0.05), 3),  # -180..180
        np.roll(_LON, 100)[:300],  # a sector across 0 in 0..360 values
    ],
    ids=["plain", "rolled", "descending", "descending-rolled", "pm180", "sector-across-0"],
)
def test_grid_mask_selection_is_exact_on_every_longitude_layout(lon: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(3, lon.size))
    values[rng.random(values.shape) < 0.5] = np.nan
    da = xr.DataArray(values, dims=("lat", "lon"), coords={"lat": [-1.0, 0.0, 1.0], "lon": lon})
    obs = Observations.from_grid_mask(da)
    grid = TargetGrid.from_dataset(da)
    aligned = obs.aligned_to(grid)  # no warning: nothing moves, nothing is dropped
    assert len(aligned) == len(obs)
    H = aligned.operator(grid)
    observed = np.flatnonzero(np.isfinite(values.ravel()))
    assert np.array_equal(H.indices, observed)
    assert np.all(H.data == 1.0)
    assert np.array_equal(H @ np.nan_to_num(values).ravel(), obs.values)


def test_h_on_ostia_agrees_with_xarray_interp_including_the_wrap() -> None:
    """Real data: OSTIA SST (land NaN) at random points and times, trilinear H against
    xarray's linear ``interp`` on the field padded with its first longitude at +360."""
    pytest.importorskip("iris_sample_data")
    from sparsediff.data.sample_data import open_ostia

    sst = open_ostia()["surface_temperature"].isel(time=slice(0, 6)).load()
    grid = TargetGrid.from_dataset(sst)
    assert grid.periodic["longitude"]
    rng = np.random.default_rng(6)
    n = 2000
    t0, t1 = sst.time.values[0], sst.time.values[-1]
    times = t0 + (rng.random(n) * (t1 - t0).astype(np.int64)).astype("timedelta64[ns]")
    lat = rng.uniform(float(sst.latitude[0]), float(sst.latitude[-1]), n)
    lon = rng.uniform(0.0, 360.0, n)
    obs = Observations.from_arrays("sst", np.zeros(n), {"time": times, "lat": lat, "lon": lon})
    H = obs.aligned_to(grid).operator(grid)
    ours = H @ sst.values.astype(np.float64).ravel()
    padded = xr.concat(
        [sst, sst.isel(longitude=[0]).assign_coords(longitude=sst.longitude[:1] + 360.0)],
        "longitude",
    ).astype(np.float64)
    at = {
        "time": xr.DataArray(times, dims="p"),
        "latitude": xr.DataArray(lat, dims="p"),
        "longitude": xr.DataArray(lon, dims="p"),
    }
    theirs = padded.interp(at, method="linear").values
    assert np.isfinite(ours).sum() > n // 2  # most points are at sea
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, equal_nan=True)
    assert (lon > float(sst.longitude[-1])).sum() > 0  # some points interpolate across 360/0


def test_an_ensemble_at_the_observations_keeps_its_member_dim() -> None:
    pytest.importorskip("iris_sample_data")
    from sparsediff.data.sample_data import open_ostia

    sst = open_ostia()["surface_temperature"].isel(time=slice(0, 3)).load()
    ens = xr.concat([sst, sst + 1.0], dim="member").assign_coords(member=[0, 1])
    obs = Observations.from_grid_mask(sst)
    at = obs.at(ens)
    assert at.dims == ("member", "obs")
    assert at.sizes["obs"] == len(obs)
    assert np.array_equal(at.sel(member=0).values, obs.values)  # the observed cells exactly
    np.testing.assert_allclose(at.sel(member=1).values, obs.values + 1.0, rtol=1e-12)
    # a point off the grid is refused here: scores need every observation
    lat_max = float(sst.latitude.max())
    off = Observations.from_arrays(
        "sst", [1.0], {"time": sst.time.values[:1], "lat": [lat_max + 5.0], "lon": [10.0]}
    )
    with pytest.raises(InputError, match="strict"):
        off.at(ens)
