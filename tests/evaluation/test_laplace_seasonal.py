"""``laplace_seasonal``: Laplace relaxation around a per-point seasonal cycle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sparsediff.data import seasonal
from sparsediff.errors import InputError
from sparsediff.evaluation.baselines import get_baseline

LAT = np.arange(12.0)
LON = np.arange(16.0)


def _record(times: pd.DatetimeIndex) -> tuple[xr.Dataset, np.ndarray]:
    """A cycle growing with latitude plus small noise; a box missing at half the steps."""
    f = seasonal.year_fraction(xr.DataArray(times, dims="time"))[:, None, None]
    amp = 1.0 + LAT[None, :, None] / 3.0 + 0 * LON[None, None, :]
    truth = 5.0 + amp * (3 * np.sin(2 * np.pi * f) + np.cos(4 * np.pi * f))
    truth = truth + 0.05 * np.random.default_rng(0).standard_normal(truth.shape)
    gappy = truth.copy()
    gappy[::2, 3:9, 4:12] = np.nan  # a box hidden in every other step
    gappy[:, 0, 0] = np.nan  # never observed
    gappy[:, 0, 1] = np.where(np.arange(len(times)) < 5, truth[:, 0, 1], np.nan)  # seen 5 times
    ds = xr.Dataset(
        {"v": (("time", "lat", "lon"), gappy)}, coords={"time": times, "lat": LAT, "lon": LON}
    )
    return ds, truth


def test_the_cycle_fills_the_gaps_far_better_than_the_time_mean() -> None:
    times = pd.date_range("2001-01-16", periods=40, freq="MS")
    ds, truth = _record(times)
    gap = np.isnan(ds["v"].values)
    invalid = xr.zeros_like(ds["v"].isel(time=0), dtype=bool)
    invalid[10:, 12:] = True  # a corner of land
    before = ds.copy(deep=True)
    out = get_baseline("laplace_seasonal").fill(ds, dims=("lat", "lon"), invalid=invalid)["v"]
    xr.testing.assert_identical(ds, before)  # input untouched
    assert np.isnan(out.values[:, 10:, 12:]).all()
    gap[:, 10:, 12:] = False
    seasonal_fill = out.values
    plain = get_baseline("laplace").fill(ds, dims=("lat", "lon"))["v"].values
    err = {k: np.sqrt(np.mean((f[gap] - truth[gap]) ** 2)) for k, f in
           (("seasonal", seasonal_fill), ("plain", plain))}  # fmt: skip
    assert err["seasonal"] < 0.5 * err["plain"]
    seen = np.isfinite(ds["v"].values) & ~np.broadcast_to(invalid.values, gap.shape)
    np.testing.assert_array_equal(seasonal_fill[seen], ds["v"].values[seen])
    assert np.isfinite(seasonal_fill[:, :10]).all()  # rarely seen and never seen points too


def test_a_point_seen_too_rarely_takes_its_cycle_from_its_neighbours() -> None:
    times = pd.date_range("2001-01-16", periods=40, freq="MS")
    ds, truth = _record(times)
    coef = seasonal.fit_observed(
        np.nan_to_num(ds["v"].values), np.isfinite(ds["v"].values), ds["time"]
    )
    assert np.isnan(coef[:, 0, 0]).all()
    assert np.isnan(coef[:, 0, 1]).all()  # 5 steps < twice the 5 terms
    assert np.isfinite(coef[:, 5, 5]).all()
    got = get_baseline("laplace_seasonal").fill(ds, dims=("lat", "lon"))["v"].values
    # the neighbours' cycle (a third larger amplitude one row up): it follows the season
    for series, want in ((got[5:, 0, 1], truth[5:, 0, 1]), (got[:, 0, 0], truth[:, 0, 0])):
        assert np.corrcoef(series, want)[0, 1] > 0.98
        rmse = np.sqrt(np.mean((series - want) ** 2))
        assert rmse < 0.3 * np.std(want)


def test_a_record_without_a_cycle_is_refused_in_one_line() -> None:
    annual = pd.date_range("2001-07-01", periods=10, freq="YS-JUL")
    ds, _ = _record(annual)
    with pytest.raises(InputError, match="needs a seasonal record: the steps do not cover"):
        get_baseline("laplace_seasonal").fill(ds, dims=("lat", "lon"))
