"""The seasonal climatology: when a record can fit one, the fit, and its use on other steps."""

from __future__ import annotations

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sparsediff.data import masks, seasonal
from sparsediff.data.climatology import (
    add_climatology,
    aligned_climatology,
    anomalies,
    fit_climatology,
)
from sparsediff.errors import CompatibilityError
from sparsediff.laplace.relaxation import harmonic_fill_array

LAT = np.arange(10.0)
LON = np.arange(0.0, 360.0, 30.0)  # 12 points, a global longitude


def _record(times: pd.DatetimeIndex | np.ndarray, noise: float = 0.05, seed: int = 0) -> xr.Dataset:
    """A field with a known annual and semi-annual cycle per point, plus noise and a gap."""
    t = xr.DataArray(times, dims="time")
    f = seasonal.year_fraction(t)[:, None, None]
    amp = 1.0 + LAT[None, :, None] / 5.0  # the cycle grows with latitude
    mean = 10.0 + np.sin(np.radians(LON))[None, None, :]
    x = mean + amp * (2 * np.cos(2 * np.pi * f) - np.sin(4 * np.pi * f))
    x = x + noise * np.random.default_rng(seed).standard_normal(x.shape)
    x[:, 3:6, 4:7] = np.nan  # a gap at every step: filled, so the points are fitted too
    return xr.Dataset(
        {"v": (("time", "lat", "lon"), x)}, coords={"time": times, "lat": LAT, "lon": LON}
    )


def _fit(ds: xr.Dataset, cycle: bool = True) -> dict[str, xr.DataArray]:
    states = masks.states_and_range(ds, ["v"], invalid=None, invalid_along=None)[0]
    return fit_climatology(
        ds, states, ["v"], "time", ["lat", "lon"], [False, True], fill=harmonic_fill_array,
        seasonal_cycle=cycle,
    )  # fmt: skip


MONTHLY = pd.date_range("2001-01-16", periods=48, freq="MS") + pd.Timedelta(days=14)


def test_year_fraction_follows_the_calendar() -> None:
    noleap = xr.DataArray(
        [cftime.DatetimeNoLeap(2000, 1, 1), cftime.DatetimeNoLeap(2000, 7, 2, 12)], dims="t"
    )
    np.testing.assert_allclose(seasonal.year_fraction(noleap), [0.0, 182.5 / 365.0])
    d360 = xr.DataArray([cftime.Datetime360Day(2000, 4, 1)], dims="t")
    np.testing.assert_allclose(seasonal.year_fraction(d360), [90.0 / 360.0])
    leap = xr.DataArray(pd.to_datetime(["2000-12-31", "2001-12-31"]), dims="t")
    np.testing.assert_allclose(seasonal.year_fraction(leap), [365 / 366, 364 / 365])


@pytest.mark.parametrize(
    ("times", "reason"),
    [
        (MONTHLY, None),
        (MONTHLY[:18], "span 1.4 years"),
        (pd.date_range("2001-06-01", periods=6, freq="YS-JUN"), "do not cover the year"),
        (np.arange(48), "no date coordinate"),
    ],
)
def test_a_record_fits_a_cycle_only_with_dates_over_two_years_spread_over_the_year(
    times: np.ndarray, reason: str | None
) -> None:
    ds = xr.Dataset({"v": ("time", np.zeros(len(times)))}, coords={"time": times})
    why = seasonal.seasonal_reason(ds, "time")
    if reason is None:
        assert why is None
    else:
        assert why is not None
        assert reason in why


def test_the_fit_recovers_a_known_cycle_through_the_gaps() -> None:
    clim = _fit(_record(MONTHLY))["v"]
    assert clim.dims == ("time_harmonic", "lat", "lon")
    assert list(clim["time_harmonic"].values) == list(seasonal.TERMS)
    amp = 1.0 + LAT[:, None] / 5.0 + 0 * LON[None, :]
    seen = np.ones(amp.shape, bool)
    seen[3:6, 4:7] = False  # never observed: their cycle is the relaxation's, checked loosely
    for term, want in (("cos1", 2 * amp), ("sin1", 0 * amp), ("sin2", -amp)):
        got = clim.sel(time_harmonic=term).values
        np.testing.assert_allclose(got[seen], want[seen], atol=0.05, err_msg=term)
        np.testing.assert_allclose(got[~seen], want[~seen], atol=0.5, err_msg=term)
    mean = 10.0 + np.sin(np.radians(LON))[None, :] + 0 * LAT[:, None]
    np.testing.assert_allclose(clim.sel(time_harmonic="mean").values[seen], mean[seen], atol=0.05)


def test_points_not_active_at_every_step_keep_their_mean_and_no_cycle() -> None:
    ds = _record(MONTHLY)
    ds["v"][:10, 0, 0] = np.nan  # invalid below: never observed there in 10 steps
    states = masks.states_and_range(ds, ["v"], invalid=None, invalid_along=None)[0]
    states["v"][:10, 0, 0] = masks.INVALID
    clim = fit_climatology(
        ds, states, ["v"], "time", ["lat", "lon"], [False, True], fill=harmonic_fill_array,
        seasonal_cycle=True,
    )["v"]  # fmt: skip
    assert (clim.isel(lat=0, lon=0).values[1:] == 0).all()
    assert clim.isel(lat=0, lon=0, time_harmonic=0) == pytest.approx(
        float(ds["v"][10:, 0, 0].mean()), abs=1e-9
    )
    assert (clim.isel(lat=0, lon=1).values[1:] != 0).all()


def test_the_cycle_applies_at_other_steps_and_grids_and_stays_lazy() -> None:
    ds = _record(MONTHLY)
    clim = _fit(ds)
    later = _record(pd.date_range("2010-03-01", periods=7, freq="15D"), seed=1)
    an = anomalies(later, clim)["v"]
    assert float(np.sqrt((an**2).mean())) < 0.2  # the cycle is gone (noise 0.05, gaps)
    rolled = later.roll(lon=5, roll_coords=True).isel(lat=slice(None, None, -1))
    an_rolled = anomalies(rolled, clim)["v"]
    xr.testing.assert_allclose(
        an_rolled, an.roll(lon=5, roll_coords=True).isel(lat=slice(None, None, -1))
    )
    lazy = aligned_climatology(later.chunk(time=3), clim)["v"]
    assert lazy.chunks is not None
    assert lazy.chunksizes["time"] == (3, 3, 1)
    xr.testing.assert_allclose(lazy.compute(), aligned_climatology(later, clim)["v"])
    back = add_climatology(an.astype("float32"), aligned_climatology(later, clim)["v"])
    assert back.dtype == np.float32
    np.testing.assert_allclose(back.values, later["v"].values, rtol=1e-5)


def test_data_without_dates_cannot_use_a_seasonal_climatology() -> None:
    clim = _fit(_record(MONTHLY))
    nodates = _record(MONTHLY[:3]).assign_coords(time=[0, 1, 2])
    with pytest.raises(CompatibilityError, match="seasonal cycle along 'time'"):
        anomalies(nodates, clim)


def test_the_mean_path_is_unchanged_by_the_seasonal_option() -> None:
    ds = _record(MONTHLY)
    mean = _fit(ds, cycle=False)["v"]
    assert mean.dims == ("lat", "lon")
    cycle = _fit(ds, cycle=True)["v"]
    # the same completed fields: the least-squares mean over whole years is near the mean
    np.testing.assert_allclose(cycle.sel(time_harmonic="mean").values, mean.values, atol=0.05)


def test_a_subset_of_the_grid_evaluates_the_cycle_on_the_subset_only() -> None:
    clim = _fit(_record(MONTHLY))
    sub = _record(MONTHLY[:5]).isel(lat=slice(2, 4), lon=slice(0, 3))
    coef = aligned_climatology(sub, clim, at_steps=False)["v"]
    assert coef.shape == (len(seasonal.TERMS), 2, 3)
    cycle = aligned_climatology(sub, clim)["v"]
    assert cycle.sizes == {"time": 5, "lat": 2, "lon": 3}
    full = aligned_climatology(_record(MONTHLY[:5]), clim)["v"]
    xr.testing.assert_allclose(cycle, full.isel(lat=slice(2, 4), lon=slice(0, 3)))


def test_repeated_dates_and_one_field_with_a_scalar_date_get_their_cycle() -> None:
    clim = _fit(_record(MONTHLY))
    ds = _record(MONTHLY[[3, 3, 7]])
    an = anomalies(ds, clim)["v"]  # the cycle is not matched along time, so repeats are fine
    assert float(np.sqrt((an**2).mean())) < 0.2
    cyc = aligned_climatology(ds, clim)["v"]
    np.testing.assert_array_equal(cyc.isel(time=0).values, cyc.isel(time=1).values)
    one = ds.isel(time=2)  # a scalar time coordinate
    cycle = aligned_climatology(one, clim)["v"]
    assert cycle.dims == ("lat", "lon")
    xr.testing.assert_allclose(cycle, aligned_climatology(ds, clim)["v"].isel(time=2, drop=True))


def test_missing_dates_mean_no_cycle_and_are_refused_by_a_seasonal_model() -> None:
    times = MONTHLY.values.copy()
    times[5] = np.datetime64("NaT")
    ds = _record(MONTHLY).assign_coords(time=times)
    assert "missing dates" in str(seasonal.seasonal_reason(ds, "time"))
    clim = _fit(_record(MONTHLY))
    with pytest.raises(CompatibilityError, match="missing dates"):
        aligned_climatology(ds, clim, at_steps=False)


def test_the_range_of_a_cycle_spans_its_year_without_evaluating_the_record() -> None:
    clim = _fit(_record(MONTHLY))["v"]
    lo, hi = seasonal.climatology_range(clim)
    year = aligned_climatology(
        _record(pd.date_range("2003-01-01", periods=365, freq="D")), {"v": clim}
    )["v"]
    assert lo == pytest.approx(float(year.min()), abs=0.05)
    assert hi == pytest.approx(float(year.max()), abs=0.05)
