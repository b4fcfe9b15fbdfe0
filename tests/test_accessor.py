"""The accessor: typed signatures that mirror the functions, and land counted as invalid."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.accessor import SparsediffAccessor, time_dim
from sparsediff.data import masks
from sparsediff.filling.fill import fill
from sparsediff.plotting import plot_fill


def _params(fn: Callable[..., Any], skip: int) -> list[tuple[str, Any, Any]]:
    sig = inspect.signature(fn)
    return [(p.name, p.kind, p.default) for p in list(sig.parameters.values())[skip:]]


@pytest.mark.parametrize(
    ("method", "function", "skip"),
    [
        (SparsediffAccessor.fill, fill, 1),  # the accessor's object is the data
        (SparsediffAccessor.plot_fill, plot_fill, 1),
    ],
)
def test_methods_mirror_the_functions(method: Any, function: Any, skip: int) -> None:
    assert _params(method, 1) == _params(function, skip)
    assert "kw" not in inspect.signature(method).parameters


def test_summary_and_masks_take_the_arguments_of_the_data_functions() -> None:
    summary = {n for n, *_ in _params(masks.gap_summary, 1)}
    assert summary <= {n for n, *_ in _params(SparsediffAccessor.gap_summary, 1)}
    states = {n for n, *_ in _params(masks.states, 1)}
    assert states <= {n for n, *_ in _params(SparsediffAccessor.masks, 1)}


def _sst() -> xr.Dataset:
    rng = np.random.default_rng(0)
    a = rng.normal(290, 2, size=(4, 6, 8))
    a[:, :2, :2] = np.nan  # land: missing at every step
    a[1, 3:5, 3:6] = np.nan  # a gap (cloud) at one step
    return xr.Dataset({"sst": (("time", "lat", "lon"), a)})


def test_land_is_invalid_not_gap_by_default() -> None:
    row = _sst().sparsediff.gap_summary().loc["sst"]
    assert (row["invalid"], row["gap"], row["observed"]) == (4 * 4, 6, 4 * 48 - 16 - 6)
    st = _sst().sparsediff.masks()["sst"].values
    assert (st[:, :2, :2] == masks.INVALID).all()
    plain = _sst().sparsediff.gap_summary(invalid_along=None).loc["sst"]
    assert (plain["invalid"], plain["gap"]) == (0, 16 + 6)


def test_time_dim_found_by_cf_attributes() -> None:
    ds = _sst().rename(time="t").assign_coords(t=("t", np.arange(4), {"axis": "T"}))
    assert time_dim(ds) == "t"
    assert ds.sparsediff.gap_summary().loc["sst", "invalid"] == 16
    assert time_dim(ds.drop_vars("t")) is None


def test_gap_summary_with_a_model_uses_its_mask() -> None:
    pytest.importorskip("iris_sample_data")
    from sparsediff.data.sample_data import open_ostia
    from sparsediff.demo import DEMO_MODEL

    one = open_ostia().isel(time=[50])  # one month: no time rule, the model's land mask
    plain = one.sparsediff.gap_summary().loc["surface_temperature"]
    assert plain["invalid"] == 0  # one step: nothing is missing "at every step"
    row = one.sparsediff.gap_summary(model=DEMO_MODEL).loc["surface_temperature"]
    assert row["gap"] == 0
    assert row["invalid"] == int(one["surface_temperature"].isnull().sum()) > 0
    assert sparsediff.load(DEMO_MODEL).variables == ["surface_temperature"]
