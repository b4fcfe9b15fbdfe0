"""Tests of sparsediff.data.masks: the observed / gap / invalid states."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sparsediff.data.io import write
from sparsediff.data.masks import (
    GAP,
    INVALID,
    OBSERVED,
    gap,
    gap_summary,
    invalid,
    observed,
    states,
)
from sparsediff.data.sample_data import mni152_invalid
from sparsediff.errors import InputError

SST = "surface_temperature"


def land_of(ds: xr.Dataset) -> np.ndarray:
    """(lat, lon) points that are NaN at every time step."""
    return np.isnan(ds[SST].values).all(axis=0)


def punch_holes(ds: xr.Dataset, n: int = 300, seed: int = 0) -> tuple[xr.Dataset, np.ndarray]:
    """Set ``n`` random sea points at random times to NaN; return the copy and the holes."""
    rng = np.random.default_rng(seed)
    values = ds[SST].values.copy()
    sea = np.argwhere(~np.isnan(values))
    pick = sea[rng.choice(len(sea), size=n, replace=False)]
    holes = np.zeros(values.shape, dtype=bool)
    holes[tuple(pick.T)] = True
    values[holes] = np.nan
    out = ds.copy()
    out[SST] = ds[SST].copy(data=values)
    return out, holes


def test_ostia_land_is_invalid_never_gap(ostia_full: xr.Dataset) -> None:
    st = states(ostia_full, invalid_along="time")[SST]
    assert st.dtype == np.uint8
    assert st.dims == ostia_full[SST].dims
    values = st.values
    land = land_of(ostia_full)
    assert land.sum() == 2055  # the sample's land points
    np.testing.assert_array_equal(values == INVALID, np.broadcast_to(land, values.shape))
    assert np.count_nonzero(values == GAP) == 0
    np.testing.assert_array_equal(values == OBSERVED, np.isfinite(ostia_full[SST].values))
    assert list(st.attrs["flag_values"]) == [0, 1, 2]
    assert st.attrs["flag_meanings"] == "observed gap invalid"


def test_without_invalid_every_nan_is_a_gap(ostia: xr.Dataset) -> None:
    st = states(ostia)[SST].values
    np.testing.assert_array_equal(st == GAP, np.isnan(ostia[SST].values))
    assert np.count_nonzero(st == INVALID) == 0


@pytest.mark.parametrize("chunked", [False, True])
def test_punched_holes_are_exactly_the_gaps(ostia: xr.Dataset, chunked: bool) -> None:
    holed, holes = punch_holes(ostia)
    if chunked:
        holed = holed.chunk({"time": 5, "longitude": 100})
    st = states(holed, invalid_along="time")
    if chunked:
        assert isinstance(st[SST].data, da.Array)  # still lazy
    values = st[SST].values
    np.testing.assert_array_equal(values == GAP, holes)
    land = np.broadcast_to(land_of(ostia), values.shape)
    np.testing.assert_array_equal(values == INVALID, land)
    np.testing.assert_array_equal(values == OBSERVED, ~holes & ~land)
    np.testing.assert_array_equal(gap(st)[SST].values, holes)
    np.testing.assert_array_equal(invalid(st)[SST].values, land)
    np.testing.assert_array_equal(observed(st)[SST].values, ~holes & ~land)


def test_point_missing_at_every_step_becomes_invalid(ostia: xr.Dataset) -> None:
    holed = ostia.copy(deep=True)
    assert not land_of(ostia)[9, 100]
    holed[SST][:, 9, 100] = np.nan
    st = states(holed, invalid_along="time")[SST]
    assert (st.values[:, 9, 100] == INVALID).all()
    assert np.count_nonzero(st.values == GAP) == 0


def test_invalid_from_name_dataarray_and_file(ostia: xr.Dataset, tmp_path: Path) -> None:
    holed, _holes = punch_holes(ostia)
    land = xr.DataArray(
        land_of(ostia).astype(np.int8),
        dims=("latitude", "longitude"),
        coords={"latitude": ostia.latitude, "longitude": ostia.longitude},
        name="land",
    )
    reference = states(holed, invalid_along="time")[SST].values
    path = write(land.to_dataset(), tmp_path / "land.nc")
    with_var = holed.assign(land=land)
    for spec, data in ((land, holed), ("land", with_var), (str(path), holed), (path, holed)):
        got = states(data, SST, invalid=spec)[SST].values
        np.testing.assert_array_equal(got, reference)


def test_invalid_and_invalid_along_combine(ostia: xr.Dataset) -> None:
    holed, holes = punch_holes(ostia)
    box = xr.zeros_like(ostia[SST].isel(time=0), dtype=bool).drop_vars(
        ["time", "forecast_reference_time", "forecast_period"], errors="ignore"
    )
    box[5:8, 200:260] = True
    st = states(holed, invalid=box, invalid_along="time")[SST].values
    expected_invalid = np.broadcast_to(land_of(ostia) | box.values, st.shape)
    np.testing.assert_array_equal(st == INVALID, expected_invalid)
    np.testing.assert_array_equal(st == GAP, holes & ~expected_invalid)


def test_time_varying_mask_and_dim_order(ostia: xr.Dataset) -> None:
    # a mask on (longitude, time) in an unusual order still lands on the right points
    mask = xr.DataArray(np.zeros((432, 12), dtype=bool), dims=("longitude", "time"))
    mask[10, 3] = True
    st = states(ostia, invalid=mask)[SST]
    assert st.dims == ("time", "latitude", "longitude")
    assert (st.values[3, :, 10] == INVALID).all()
    assert np.count_nonzero(st.values == INVALID) == 18


def test_undecoded_fill_value_is_a_gap() -> None:
    raw = np.array([[1, 2, -999], [4, -999, 6]], dtype=np.int16)
    ds = xr.Dataset({"v": (("y", "x"), raw, {"_FillValue": -999})})
    st = states(ds)["v"].values
    np.testing.assert_array_equal(st, [[0, 0, 1], [0, 1, 0]])


def test_mni152_air_is_invalid(mni_small: xr.Dataset) -> None:
    air = mni152_invalid(mni_small)
    assert air.dtype == bool
    assert 0.05 < float(air.mean()) < 0.95
    st = states(mni_small, invalid=air)["image"].values
    np.testing.assert_array_equal(st == INVALID, air.values)
    assert np.count_nonzero(st == GAP) == 0  # the template has no NaN
    assert (mni_small["image"].values[air.values] == 0).all()


def test_gap_summary_counts(ostia: xr.Dataset) -> None:
    holed, holes = punch_holes(ostia, n=500)
    table = gap_summary(holed.chunk({"time": 4}), invalid_along="time")
    assert isinstance(table, pd.DataFrame)
    row = table.loc[SST]
    land_points = int(land_of(ostia).sum()) * 12
    assert row["points"] == 12 * 18 * 432
    assert row["gap"] == 500
    assert row["invalid"] == land_points
    assert row["observed"] == 12 * 18 * 432 - 500 - land_points
    assert row["gap_fraction"] == pytest.approx(500 / (12 * 18 * 432 - land_points), rel=1e-12)
    by_time = gap_summary(holed, invalid_along="time", by="time")
    sea_per_step = 18 * 432 - land_of(ostia).sum()
    np.testing.assert_allclose(by_time[SST].values, holes.sum(axis=(1, 2)) / sea_per_step)
    assert list(by_time.index) == list(ostia.indexes["time"])
    by_lat = gap_summary(holed, invalid_along="time", by="latitude")
    sea_per_lat = (~land_of(ostia)).sum(axis=1) * 12
    np.testing.assert_allclose(by_lat[SST].values, holes.sum(axis=(0, 2)) / sea_per_lat)
    text = str(table)
    assert SST in text
    assert "gap_fraction" in text


# --------------------------------------------------------------------------- errors


def test_mask_shape_mismatch_names_both_shapes(ostia: xr.Dataset) -> None:
    wrong = xr.DataArray(np.zeros((18, 400), bool), dims=("latitude", "longitude"))
    with pytest.raises(InputError, match=r"latitude: 18, longitude: 400.*longitude: 432"):
        states(ostia, invalid=wrong)
    extra = xr.DataArray(np.zeros((3, 18), bool), dims=("depth", "latitude"))
    with pytest.raises(InputError, match=r"\(dim 'depth'\)"):
        states(ostia, invalid=extra)


def test_mask_with_other_coordinates_is_rejected(ostia: xr.Dataset) -> None:
    mask = xr.DataArray(
        np.zeros(18, bool), dims="latitude", coords={"latitude": np.arange(18.0) + 100}
    )
    with pytest.raises(InputError, match="coordinates of dim 'latitude' differ"):
        states(ostia, invalid=mask)


def test_state_errors(ostia: xr.Dataset, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"dim 'depth' is not in the dataset"):
        states(ostia, invalid_along="depth")
    with pytest.raises(InputError, match=r"neither a variable .* nor an existing file"):
        states(ostia, invalid="landmask")
    with pytest.raises(InputError, match=r"must be bool or 0/1"):
        states(ostia, invalid=xr.DataArray(np.full(432, "a"), dims="longitude"))
    all_nan = ostia.assign(empty=ostia[SST] * np.nan)
    with pytest.raises(InputError, match="variable 'empty' has no finite value"):
        states(all_nan)
    text = ostia.assign(label=(("latitude", "longitude"), np.full((18, 432), "x")))
    with pytest.raises(InputError, match="variable 'label' is not numeric"):
        states(text, ["label"])
    with pytest.raises(InputError, match="dim 'time' of variable 'surface_temperature'"):
        states(ostia.isel(time=slice(0, 0)))
    with pytest.raises(InputError, match=r"dim .depth. is not in the dataset"):
        gap_summary(ostia, by="depth")
    two = xr.Dataset({"a": (("y", "x"), np.ones((2, 2))), "b": (("y", "x"), np.ones((2, 2)))})
    path = write(two, tmp_path / "two.nc")
    with pytest.raises(InputError, match="exactly one data variable"):
        states(ostia, invalid=path)


def test_at_or_below_combines_with_an_extra_invalid_spec(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sparsediff.data.masks import at_or_below

    a = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 5.0]], dtype="float32")
    ds = xr.Dataset({"v": (("y", "x"), a), "w": (("y", "x"), np.ones_like(a))})
    np.testing.assert_array_equal(at_or_below(ds, ["v"], 0.0).values, a <= 0)
    extra = np.zeros_like(a, dtype=bool)
    extra[0, 2] = True
    # the extra mask given as a file path (the training config's data.invalid)
    xr.Dataset({"land": (("y", "x"), extra)}).to_netcdf(tmp_path / "land.nc")
    got = at_or_below(ds, ["v", "w"], 0.0, invalid=str(tmp_path / "land.nc")).values
    np.testing.assert_array_equal(got, (a <= 0) | extra)


def test_grid_invalid_keeps_only_points_invalid_at_every_step() -> None:
    """The model's mask: invalid at every step of invalid_along (or of every batch dim)."""
    from sparsediff.data.masks import grid_invalid

    values = np.ones((3, 2, 4, 5))  # time, level, y, x
    values[:, :, 0, 0] = np.nan  # land at every time and level
    values[:, 1, 3, 4] = np.nan  # land at depth only
    values[0, 0, 2, 2] = 0.0  # "air" at one time only: not land
    ds = xr.Dataset(
        {"v": (("time", "level", "y", "x"), values)},
        coords={"y": np.arange(4.0), "x": np.arange(5.0) * 2},
    )
    st = states(ds, invalid=ds["v"] <= 0.0, invalid_along="time")
    by_time = grid_invalid(st, ["y", "x"], "time")["v"]
    assert by_time.dims == ("level", "y", "x")  # the level is kept: land differs by level
    expected = np.zeros((2, 4, 5), bool)
    expected[:, 0, 0] = True
    expected[1, 3, 4] = True
    np.testing.assert_array_equal(by_time.values, expected)
    np.testing.assert_array_equal(by_time["x"].values, np.arange(5.0) * 2)
    everywhere = grid_invalid(states(ds, invalid=ds["v"] <= 0.0), ["y", "x"], None)["v"]
    assert everywhere.dims == ("y", "x")  # no rule dim: reduced over every batch dim
    assert not everywhere.values[2, 2]  # invalid at one step only
    assert everywhere.values.sum() == 0  # the NaN points are gaps without invalid_along
