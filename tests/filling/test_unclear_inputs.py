"""Inputs that used to fail with an unclear error (issue 19): a member dim, units spelled
another way, float16 values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.data.units import same_units
from sparsediff.errors import CompatibilityError
from tests.filling.conftest import make_model

MODEL = make_model(["v"], ["y", "x"], [8, 8], mean=20.0, std=5.0, units={"v": "K"})


def _data(units: str = "K", dtype: str = "float32") -> xr.Dataset:
    rng = np.random.default_rng(0)
    v = rng.normal(20.0, 5.0, (3, 10, 12)).astype(dtype)
    v[rng.random(v.shape) < 0.3] = np.nan
    return xr.Dataset({"v": (("time", "y", "x"), v, {"units": units})})


@pytest.mark.parametrize("members", [1, 3])
def test_an_input_with_a_member_dim_is_one_clear_error(members: int) -> None:
    ds = xr.concat([_data(), _data()], dim="member")
    with pytest.raises(CompatibilityError, match=r"already have a 'member' dim \(size 2\)"):
        sparsediff.fill(ds, MODEL, members=members)
    renamed = sparsediff.fill(ds.rename(member="realization"), MODEL, members=members)
    assert renamed["v"].sizes["realization"] == 2


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("K", "kelvin", True),
        ("m s-1", "m/s", True),
        ("degC", "Celsius", True),
        ("hPa", "100 Pa", True),
        ("degC", "K", False),
        ("hPa", "Pa", False),
        ("not a unit", "K", False),
        ("not a unit", "not a unit", True),
    ],
)
def test_units_are_compared_as_units(a: str, b: str, same: bool) -> None:
    assert same_units(a, b) is same


def test_kelvin_data_fill_with_a_model_in_k_and_celsius_does_not() -> None:
    out = sparsediff.fill(_data("kelvin"), MODEL)
    assert out["v"].attrs["units"] == "kelvin"
    with pytest.raises(CompatibilityError, match=r"'v' is in 'degC' but the model was trained"):
        sparsediff.fill(_data("degC"), MODEL)


def test_float16_input_fills_without_numpy_warnings() -> None:
    ds = _data(dtype="float16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" included
        out = sparsediff.fill(ds, MODEL)
    obs = np.isfinite(ds["v"].values)
    np.testing.assert_array_equal(out["v"].values[obs], ds["v"].values[obs])
    assert np.isfinite(out["v"].values).all()
