"""Tests of sparsediff.data.selection: one DataArray→Dataset rule, dims as tuples."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sparsediff.data.selection import (
    DEFAULT_NAME,
    as_dataset,
    as_tuple,
    numeric_variables,
    validate_dims,
)
from sparsediff.errors import InputError


def _array(name: str | None) -> xr.DataArray:
    return xr.DataArray(
        np.arange(6.0).reshape(2, 3),
        dims=("y", "x"),
        coords={"x": [10, 20, 30]},
        name=name,
        attrs={"units": "K"},
    )


def test_as_dataset_names_unnamed_arrays_once() -> None:
    named = as_dataset(_array("sst"), name="ignored")
    assert list(named.data_vars) == ["sst"]
    assert named["sst"].attrs == {"units": "K"}
    assert named.attrs == {}
    np.testing.assert_array_equal(named["x"].values, [10, 20, 30])
    assert list(as_dataset(_array(None)).data_vars) == [DEFAULT_NAME]
    assert list(as_dataset(_array(None), name="t2m").data_vars) == ["t2m"]
    ds = xr.Dataset({"a": _array(None)})
    assert as_dataset(ds) is ds
    with pytest.raises(InputError, match="got ndarray"):
        as_dataset(np.zeros(3))  # type: ignore[arg-type]


def test_as_tuple() -> None:
    assert as_tuple(None) == ()
    assert as_tuple("time") == ("time",)
    assert as_tuple(["y", "x"]) == ("y", "x")
    assert as_tuple(3) == (3,)


def test_dataarray_selection_uses_the_same_rule() -> None:
    assert numeric_variables(_array(None)) == [DEFAULT_NAME]
    assert validate_dims(_array("a"), "x") == ("x",)
    with pytest.raises(
        InputError, match=r"dim 'z' is not in variable 'a'; available dims: y=2, x=3"
    ):
        validate_dims(_array("a"), ["x", "z"])
