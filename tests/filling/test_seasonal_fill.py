"""A model with a seasonal climatology fills each step around the cycle at that step.

The model's completion is switched off (first guess ``"zero"``, no departure), so every
gap must hold exactly its point's climatology at its own date, plus the anomaly mean.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import sparsediff
from sparsediff.data import seasonal
from sparsediff.errors import CompatibilityError, SparsediffWarning
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


def test_a_360_day_calendar_gets_the_cycle_of_its_own_year() -> None:
    import cftime

    times = [cftime.Datetime360Day(2001, m, 16) for m in (1, 4, 7, 10)]
    ds = _data(TIMES[:4]).assign_coords(time=times)
    out = sparsediff.fill(ds, _model(), steps=2, invalid_along=None)
    f = np.array([15.0, 105.0, 195.0, 285.0])[:, None, None] / 360.0
    c = _climatology().values
    want = c[0] + c[1] * np.cos(2 * np.pi * f) + c[4] * np.sin(4 * np.pi * f) + 0.1
    gaps = out["sst_fill_flag"].values == 1
    np.testing.assert_allclose(out["sst"].values[gaps], np.broadcast_to(want, gaps.shape)[gaps])


def test_a_fill_from_points_puts_the_cycle_of_each_date_in_the_empty_cells() -> None:
    from sparsediff.data.observations import Observations
    from sparsediff.filling.points import fill_points

    model = _model()
    model.spec = model.spec.model_copy(update={"units": {"sst": "K"}})
    times = TIMES[[0, 2]]
    rng = np.random.default_rng(1)
    n = 80
    at = rng.integers(0, 2, n)
    lat, lon = rng.uniform(-80.0, 80.0, n), rng.uniform(0.0, 355.0, n)
    obs = Observations.from_arrays(
        "sst", 290.0 + rng.normal(0.0, 1.0, n), {"time": times.values[at], "lat": lat, "lon": lon},
        units="K",
    )  # fmt: skip
    like = _data(times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsediffWarning)  # values far from this climatology
        out = fill_points(model, obs, like, members=1, steps=2, calibrate="validation")
    empty = out["sst_fill_flag"].values == 1
    want = np.broadcast_to(_expected(times) + 0.1, empty.shape)
    np.testing.assert_allclose(out["sst"].values[empty], want[empty], rtol=1e-6)


def test_the_cli_refuses_data_without_dates_in_one_line_and_writes_nothing(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from sparsediff.cli import main

    _model().save(tmp_path / "model")
    sparsediff.write(_data().assign_coords(time=np.arange(TIMES.size)), tmp_path / "in.nc")
    out = tmp_path / "out.nc"
    res = CliRunner().invoke(
        main, ["fill", str(tmp_path / "model"), str(tmp_path / "in.nc"), str(out)]
    )
    assert res.exit_code != 0, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "no date coordinate 'time'" in lines[0]
    assert not out.exists()


def test_land_stays_nan_and_the_same_seed_gives_the_same_bytes() -> None:
    ds = _data()
    ds["sst"][:, 2:4, 5:9] = np.nan  # missing at every step: land
    model = _model()
    with torch.no_grad():  # a departure that depends on the noise
        model.autoencoder.decoder.conv_out.weight.normal_(0.0, 0.05)  # type: ignore[union-attr]
    one = sparsediff.fill(ds, model, steps=2, members=2, seed=4, invalid_along="time")
    two = sparsediff.fill(ds, model, steps=2, members=2, seed=4, invalid_along="time")
    assert np.isnan(one["sst"].values[:, :, 2:4, 5:9]).all()
    assert (one["sst_fill_flag"].values[:, 2:4, 5:9] == 2).all()
    np.testing.assert_array_equal(one["sst"].values, two["sst"].values)
    observed = one["sst_fill_flag"].values == 0
    for member in one["sst"].transpose("member", ...).values:
        np.testing.assert_array_equal(member[observed], ds["sst"].values[observed])
