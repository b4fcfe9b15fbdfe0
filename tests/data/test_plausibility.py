"""Observed values against the training statistics: refuse another unit, warn on outliers."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from sparsediff.data import plausibility as P
from sparsediff.data.stats import Stats, VariableStats
from sparsediff.errors import CompatibilityError

KELVIN = Stats({"sst": VariableStats(mean=300.0, std=2.0, count=100)})
ANOMALY = Stats({"sst": VariableStats(mean=0.0, std=1.0, count=100)})


def _sst(values: np.ndarray) -> xr.Dataset:
    return xr.Dataset({"sst": (("time", "lat", "lon"), values)})


def _kelvin(rng: np.random.Generator, shape: tuple[int, ...] = (6, 10, 12)) -> np.ndarray:
    return rng.normal(300.0, 2.0, size=shape)


def test_data_in_the_training_units_pass_silently() -> None:
    rng = np.random.default_rng(0)
    ds = _sst(_kelvin(rng))
    assert P.check_values(ds, ["sst"], KELVIN, spatial=["lat", "lon"]) == []
    (report,) = P.value_reports(ds, ["sst"], KELVIN, spatial=["lat", "lon"])
    assert report.median_z < 1.5
    assert report.steps == 4  # of 6 time steps


def test_celsius_for_a_kelvin_model_is_refused() -> None:
    rng = np.random.default_rng(1)
    ds = _sst(_kelvin(rng) - 273.15)
    with pytest.raises(CompatibilityError, match=r"'sst' \(median 26\.\d+\) lie 137 training"):
        P.check_values(ds, ["sst"], KELVIN, spatial=["lat", "lon"])


def test_celsius_for_a_climatology_model_is_refused_on_anomalies() -> None:
    rng = np.random.default_rng(2)
    clim = xr.DataArray(rng.normal(300.0, 3.0, size=(10, 12)), dims=("lat", "lon"))
    anomalies = rng.normal(0.0, 1.0, size=(6, 10, 12))
    good = _sst(clim.values + anomalies)
    clim_kw = {"spatial": ["lat", "lon"], "climatology": {"sst": clim}}
    assert P.check_values(good, ["sst"], ANOMALY, **clim_kw) == []
    celsius = _sst(clim.values + anomalies - 273.15)
    with pytest.raises(CompatibilityError, match="anomalies from the model's climatology"):
        P.check_values(celsius, ["sst"], ANOMALY, **clim_kw)


def test_many_far_values_warn() -> None:
    rng = np.random.default_rng(3)
    values = _kelvin(rng)
    values.reshape(-1)[rng.random(values.size) < 0.05] = 340.0  # 20 std above the mean
    messages = P.check_values(_sst(values), ["sst"], KELVIN, spatial=["lat", "lon"])
    assert len(messages) == 1
    assert "lie more than 6 training standard deviations" in messages[0]


def test_missing_and_invalid_below_values_are_not_checked() -> None:
    rng = np.random.default_rng(4)
    values = _kelvin(rng)
    values[:, :5] = 0.0  # "air": invalid by the model's rule
    values[:, 5, :] = 1e30  # fill values
    assert P.check_values(_sst(values), ["sst"], KELVIN, spatial=["lat", "lon"], below=0.0) == []


def test_extremes_of_the_whole_input_warn() -> None:
    ranges = {"sst": (295.0, 305.0)}
    assert P.range_warnings(ranges, KELVIN) == []
    (msg,) = P.range_warnings({"sst": (295.0, 400.0)}, KELVIN)
    assert "reach 400, 50 training standard deviations above the training mean" in msg
    (msg,) = P.range_warnings({"sst": (-300.0, 305.0)}, KELVIN)
    assert "below" in msg
    # with a climatology, what training saw spans the climatology's range
    clim = xr.DataArray([[250.0, 310.0]], dims=("lat", "lon"))
    assert P.range_warnings({"sst": (245.0, 315.0)}, ANOMALY, {"sst": clim}) == []
    assert len(P.range_warnings({"sst": (200.0, 315.0)}, ANOMALY, {"sst": clim})) == 1


def test_a_lazy_input_is_sampled_not_read_whole() -> None:
    """The check reads at most MAX_STEPS of the 40 one-step chunks."""
    rng = np.random.default_rng(5)
    read: list[int] = []
    lock = threading.Lock()

    def record(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        if block_info is not None and block_info.get(0) is not None:
            with lock:
                read.append(block_info[0]["chunk-location"][0])
        return block

    arr = da.from_array(_kelvin(rng, (40, 10, 12)), chunks=(1, 10, 12))
    ds = _sst(arr.map_blocks(record, dtype=arr.dtype))
    assert P.check_values(ds, ["sst"], KELVIN, spatial=["lat", "lon"]) == []
    assert 0 < len(set(read)) <= P.MAX_STEPS
    assert sorted(set(read)) == [0, 13, 26, 39]  # spread over the record


def test_a_large_field_is_thinned_to_the_point_budget() -> None:
    rng = np.random.default_rng(6)
    ds = _sst(rng.normal(300.0, 2.0, size=(2, 800, 800)).astype("float32"))  # 1.28 M points
    (report,) = P.value_reports(ds, ["sst"], KELVIN, spatial=["lat", "lon"])
    assert report.checked == 2 * 400 * 400  # every second point along each spatial dim
    assert report.checked <= P.MAX_POINTS
