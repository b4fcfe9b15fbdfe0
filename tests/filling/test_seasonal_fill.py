"""A model with a seasonal climatology fills each step around the cycle at that step.

The model's completion is switched off (first guess ``"zero"``, no departure), so every
gap must hold exactly its point's climatology at its own date, plus the anomaly mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import sparsediff
from sparsediff.data import seasonal
from sparsediff.errors import CompatibilityError
from tests.filling.conftest import make_model

LAT = np.arange(-75.0, 76.0, 10.0)  # 16 points
LON = np.arange(0.0, 360.0, 10.0)  # 36 points, global
TIMES = pd.date_range("2005-01-16", periods=5, freq="73D")  # spread over one year


def _climatology() -> xr.DataArray:
    coef = np.zeros((len(seasonal.TERMS), LAT.size, LON.size))
    coef[0] = 290.0 + np.cos(np.radians(LAT))[:, None] * 10.0
    coef[1] = 4.0 * np.sin(np.radians(LAT))[:, None]  # cos1: opposite seasons N and S
    coef[4] = 0.5 * np.cos(np.radians(LON))[None, :]  # sin2, varying in longitude
    return xr.DataArray(
        coef,
        dims=("time_harmonic", "lat", "lon"),
        coords={"time_harmonic": list(seasonal.TERMS), "lat": LAT, "lon": LON},
        name="sst",
    )


def _model() -> sparsediff.Model:
    model = make_model(
        ["sst"], ["lat", "lon"], [8, 16], first_guess="zero", climatology_dim="time", mean=0.1
    )
    assert model.autoencoder is not None
    with torch.no_grad():
        model.autoencoder.decoder.conv_out.weight.zero_()  # type: ignore[union-attr]
    model.climatology = {"sst": _climatology()}
    return model


def _expected(times: pd.DatetimeIndex) -> np.ndarray:
    f = seasonal.year_fraction(xr.DataArray(times, dims="time"))[:, None, None]
    c = _climatology().values
    return (
        c[0]
        + c[1] * np.cos(2 * np.pi * f)
        + c[2] * np.sin(2 * np.pi * f)
        + c[3] * np.cos(4 * np.pi * f)
        + c[4] * np.sin(4 * np.pi * f)
    )


def _data(times: pd.DatetimeIndex = TIMES) -> xr.Dataset:
    rng = np.random.default_rng(0)
    values = (_expected(times) + rng.normal(0.0, 1.0, (len(times), LAT.size, LON.size))).astype(
        "float32"
    )
    values[rng.random(values.shape) < 0.4] = np.nan
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), values, {"units": "K"})},
        coords={"time": times, "lat": LAT, "lon": LON},
    )


def test_each_gap_holds_the_cycle_at_its_own_date_and_observed_points_stay() -> None:
    ds = _data()
    out = sparsediff.fill(ds, _model(), steps=2, invalid_along=None)
    gaps = out["sst_fill_flag"].values == 1
    assert gaps.sum() > 1000
    want = _expected(TIMES) + 0.1
    np.testing.assert_allclose(out["sst"].values[gaps], want[gaps], rtol=1e-6)
    observed = out["sst_fill_flag"].values == 0
    np.testing.assert_array_equal(out["sst"].values[observed], ds["sst"].values[observed])
    # the season differs between the dates: the same point is filled differently
    assert np.ptp(want[:, 0, 0]) > 2.0


def test_a_dask_backed_and_rolled_input_fills_the_same(tmp_path: Path) -> None:
    ds = _data()
    model = _model()
    eager = sparsediff.fill(ds, model, steps=2, invalid_along=None)
    rolled = ds.roll(lon=18, roll_coords=True).chunk(time=2)
    lazy = sparsediff.fill(rolled, model, steps=2, invalid_along=None)
    xr.testing.assert_identical(lazy["sst"].compute(), eager["sst"].roll(lon=18, roll_coords=True))
    model.save(tmp_path / "m")
    again = sparsediff.load(tmp_path / "m")
    assert again.climatology is not None
    xr.testing.assert_identical(again.climatology["sst"], model.climatology["sst"])  # type: ignore[index]
    xr.testing.assert_identical(
        sparsediff.fill(ds, again, steps=2, invalid_along=None)["sst"], eager["sst"]
    )


def test_data_without_dates_are_refused_before_any_fill() -> None:
    ds = _data().assign_coords(time=np.arange(TIMES.size))
    with pytest.raises(CompatibilityError, match="no date coordinate 'time'"):
        sparsediff.fill(ds, _model(), steps=2, invalid_along=None)
