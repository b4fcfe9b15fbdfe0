"""Tests of sparsediff.data.grid: one rule for a wrapping longitude, one for spacing."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sparsediff.data.grid import grid_spacing, is_global_longitude


def _coord(values: np.ndarray, name: str = "lon", **attrs: str) -> xr.DataArray:
    return xr.DataArray(values, dims=name, name=name, attrs=attrs)


@pytest.mark.parametrize(
    ("name", "attrs"),
    [
        ("lon", {}),
        ("longitude", {}),
        ("nav_lon", {}),
        ("x", {"units": "degrees_east"}),
        ("x", {"units": "degreesE"}),
        ("x", {"standard_name": "longitude"}),
    ],
)
def test_longitude_recognised_by_name_units_or_standard_name(name: str, attrs: dict) -> None:
    full = np.arange(0.0, 360.0, 2.5)
    assert is_global_longitude(_coord(full, name, **attrs))
    assert is_global_longitude(_coord(full[::-1], name, **attrs))  # descending wraps too
    assert not is_global_longitude(_coord(full[:-10], name, **attrs))  # a sector


def test_a_rolled_longitude_still_wraps() -> None:
    """180 ... 357.5, 0 ... 177.5 closes the circle: each step is +2.5 round the circle
    (357.5 -> 0 included), and the last point neighbours the first."""
    full = np.arange(0.0, 360.0, 2.5)
    for shift in (1, 72, 143):
        assert is_global_longitude(_coord(np.roll(full, shift)))
        assert is_global_longitude(_coord(np.roll(full[::-1], shift)))
    assert is_global_longitude(_coord(np.roll(np.arange(-180.0, 180.0, 2.0), 90)))
    assert not is_global_longitude(_coord(np.roll(full[:-10], 30)))  # a rolled sector


def test_not_a_wrapping_longitude() -> None:
    full = np.arange(0.0, 360.0, 2.5)
    assert not is_global_longitude(_coord(full, "x"))  # no sign it is a longitude
    assert not is_global_longitude(_coord(full, "x", units="degrees_north"))
    shuffled = np.random.default_rng(0).permutation(full)  # every point, in no order
    assert not is_global_longitude(_coord(shuffled))
    back_and_forth = np.concatenate([full[:72], full[72:][::-1]])
    assert not is_global_longitude(_coord(back_and_forth))
    repeated = np.concatenate([full[:10], full[9:]])  # a repeated point: step 0
    assert not is_global_longitude(_coord(repeated))
    assert not is_global_longitude(_coord(np.array([0.0, 120.0])))  # too short
    assert not is_global_longitude(_coord(np.array(["a", "b", "c"])))
    # 0..358 by 2 wraps, -180..178 by 2 wraps, 0..360 inclusive does not (duplicate end)
    assert is_global_longitude(_coord(np.arange(-180.0, 180.0, 2.0)))
    assert not is_global_longitude(_coord(np.arange(0.0, 362.0, 2.0)))


def test_grid_spacing() -> None:
    assert grid_spacing(_coord(np.array([10.0, 8.0, 6.0, 4.0]), "y")) == 2.0
    assert grid_spacing(_coord(np.array([0, 1, 2, 4, 5]), "y")) == 1.0  # median step
    assert grid_spacing(_coord(np.array([3.0]), "y")) is None
    times = xr.DataArray(np.array(["2000-01-01", "2000-02-01"], dtype="datetime64[ns]"), dims="t")
    assert grid_spacing(times) is None
