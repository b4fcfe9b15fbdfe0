"""Which values are missing: NaN, magnitudes >= 1e20, declared fill values, the CF valid range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.data import masks
from sparsediff.data.stats import compute_stats


def _da(values: list[float], dtype: str = "float32", **attrs: object) -> xr.DataArray:
    return xr.DataArray(np.array(values, dtype=dtype), dims="x", name="v", attrs=attrs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_absurd_magnitudes_are_fill_values(dtype: str) -> None:
    values = [280.0, 1e30, -1e30, 9.96921e36, 1e20, -1e20, 9.9e19, np.nan, np.inf, 281.0]
    if dtype == "float32":
        values[3] = float(np.float32(9.96921e36))
    ok = masks.finite_mask(_da(values, dtype)).values
    np.testing.assert_array_equal(ok, [1, 0, 0, 0, 0, 0, 1, 0, 0, 1])


def test_integers_are_not_affected_by_the_magnitude_rule() -> None:
    ok = masks.finite_mask(_da([0, 32767, -32768], "int16")).values
    assert ok.all()


def test_declared_fill_values_of_undecoded_data() -> None:
    da = _da([1.0, -999.0, 2.0, -1.0], _FillValue=-999.0, missing_value=-1.0)
    np.testing.assert_array_equal(masks.finite_mask(da).values, [1, 0, 1, 0])
    da = _da([1, -32768, 2], "int16", _FillValue=np.int16(-32768))
    np.testing.assert_array_equal(masks.finite_mask(da).values, [1, 0, 1])


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"valid_range": np.array([0.0, 10.0])}, [0, 1, 1, 1, 0]),
        ({"valid_min": 0.0}, [0, 1, 1, 1, 1]),
        ({"valid_max": 10.0}, [1, 1, 1, 1, 0]),
        ({"valid_min": 0.0, "valid_max": 5.0}, [0, 1, 1, 0, 0]),
    ],
    ids=["valid_range", "valid_min", "valid_max", "min-and-max"],
)
def test_cf_valid_range(attrs: dict, expected: list[int]) -> None:
    ok = masks.finite_mask(_da([-1.0, 0.0, 5.0, 10.0, 11.0], **attrs)).values
    np.testing.assert_array_equal(ok, expected)


def test_valid_range_of_packed_data_is_unpacked(tmp_path: Path) -> None:
    """CF states the valid range of packed data in packed units: [0, 300] * 0.1 = [0, 30]."""
    ds = xr.Dataset({"v": ("x", np.array([1.0, 2.0, 29.9, 50.0, np.nan]))})
    ds["v"].encoding = {"dtype": "int16", "scale_factor": 0.1, "_FillValue": np.int16(-999)}
    ds["v"].attrs["valid_range"] = np.array([0, 300], dtype=np.int16)
    ds.to_netcdf(tmp_path / "packed.nc")
    opened = sparsediff.open(tmp_path / "packed.nc")
    np.testing.assert_allclose(opened["v"].values[:4], [1.0, 2.0, 29.9, 50.0])
    np.testing.assert_array_equal(masks.finite_mask(opened["v"]).values, [1, 1, 1, 0, 0])
    raw = xr.open_dataset(tmp_path / "packed.nc", decode_cf=False)  # packed values, raw bounds
    np.testing.assert_array_equal(masks.finite_mask(raw["v"]).values, [1, 1, 1, 0, 0])


def test_states_and_stats_use_the_same_rule() -> None:
    values = np.array([[1.0, 2.0, 1e30, 3.0], [2.0, -1e30, 4.0, 100.0]], dtype="float32")
    ds = xr.Dataset({"v": (("t", "x"), values, {"valid_max": 50.0})})
    st = masks.states(ds)
    np.testing.assert_array_equal(st["v"].values, [[0, 0, 1, 0], [0, 1, 0, 1]])
    stats = compute_stats(ds)  # without states: the same observed points
    assert stats["v"].count == 5
    assert stats["v"].mean == pytest.approx(2.4)


def test_states_and_range_excludes_missing_and_user_invalid_points() -> None:
    values = np.array([[1.0, 2.0, 1e30], [-5.0, 4.0, 7.0]])
    ds = xr.Dataset({"v": (("t", "x"), values)})
    inv = xr.DataArray([False, False, True], dims="x")
    st, ranges = masks.states_and_range(ds, invalid=inv)
    assert ranges == {"v": (-5.0, 4.0)}
    xr.testing.assert_identical(st, masks.states(ds, invalid=inv))
