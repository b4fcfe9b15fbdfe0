"""The per-point climatology: one mean for the data, the training and the baselines; the
training one is the mean of completed fields, exact when nothing is missing."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sparsediff.data import masks
from sparsediff.data.climatology import climatology_of, fit_climatology, observed_mean
from sparsediff.evaluation.baselines import TimeMean
from sparsediff.laplace.relaxation import harmonic_fill_array

DIMS = ("y", "x")


def _record(seed: int = 0, steps: int = 40, ny: int = 24, nx: int = 32) -> xr.Dataset:
    """A smooth mean pattern plus smooth per-step anomalies (large next to the mean's detail)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")
    mean = 280 + 5 * np.sin(3 * xx) * np.cos(2 * yy)
    t = np.arange(steps)[:, None, None]
    amp = rng.normal(size=(steps, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(steps, 1, 1))
    anomaly = 2.0 * amp * np.sin(4 * xx + phase + 0.1 * t) * np.cos(3 * yy)
    values = mean + anomaly
    return xr.Dataset(
        {"sst": (("time", *DIMS), values.astype("float32"))},
        coords={"time": np.arange(steps), "y": np.arange(ny), "x": np.arange(nx)},
    )


def _states(ds: xr.Dataset, share: float, seed: int, invalid: np.ndarray | None) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    st = np.full(ds["sst"].shape, masks.OBSERVED, dtype=np.uint8)
    st[rng.random(st.shape) < share] = masks.GAP
    if invalid is not None:
        st[:, invalid] = masks.INVALID
    return xr.Dataset({"sst": (ds["sst"].dims, st)}, coords=ds.coords)


def test_without_gaps_it_is_the_plain_mean_bit_for_bit() -> None:
    ds = _record()
    land = np.zeros((24, 32), dtype=bool)
    land[:5, :7] = True
    states = _states(ds, 0.0, 1, land)
    fitted = fit_climatology(
        ds, states, ["sst"], "time", DIMS, (False, False), fill=harmonic_fill_array
    )["sst"]
    plain = climatology_of(ds, states, ["sst"], "time")["sst"]
    xr.testing.assert_identical(fitted, plain)


@pytest.mark.parametrize("share", [0.5, 0.7])
def test_gappy_record_gives_a_mean_closer_to_the_complete_one(share: float) -> None:
    ds = _record(seed=3)
    land = np.zeros((24, 32), dtype=bool)
    land[-4:, -6:] = True
    truth = ds["sst"].astype("float64").mean("time").values
    states = _states(ds, share, 7, land)
    # the values at gaps are still in ds: only the states may keep them out
    fitted = fit_climatology(
        ds, states, ["sst"], "time", DIMS, (False, False), fill=harmonic_fill_array
    )["sst"]
    plain = climatology_of(ds, states, ["sst"], "time")["sst"]
    sea = ~land
    err_fit = np.sqrt(np.mean((fitted.values[sea] - truth[sea]) ** 2))
    err_plain = np.sqrt(np.mean((plain.values[sea] - truth[sea]) ** 2))
    assert err_fit < 0.8 * err_plain, (err_fit, err_plain)
    # points invalid at every step keep the plain estimate (finite), dims and name unchanged
    np.testing.assert_array_equal(fitted.values[land], plain.values[land])
    assert np.isfinite(fitted.values).all()
    assert fitted.dims == plain.dims
    assert fitted.name == "sst"
    assert fitted.dtype == np.float64


def test_values_hidden_by_the_states_are_never_used() -> None:
    ds = _record(seed=5)
    states = _states(ds, 0.5, 2, None)
    poisoned = ds.copy(deep=True)
    poisoned["sst"] = poisoned["sst"].where(states["sst"] == masks.OBSERVED, 1e6)
    a = fit_climatology(ds, states, ["sst"], "time", DIMS, (False, True), fill=harmonic_fill_array)[
        "sst"
    ]
    b = fit_climatology(
        poisoned, states, ["sst"], "time", DIMS, (False, True), fill=harmonic_fill_array
    )["sst"]
    xr.testing.assert_identical(a, b)


def test_other_dims_and_dim_order_are_kept() -> None:
    ds = _record(seed=2, steps=12)
    ds = xr.concat([ds, ds + 1.0], dim="level").transpose("y", "level", "time", "x")
    states = xr.Dataset(
        {"sst": (ds["sst"].dims, np.where(np.isfinite(ds["sst"].values), 0, 2).astype(np.uint8))}
    )
    rng = np.random.default_rng(0)
    st = states["sst"].values.copy()
    st[rng.random(st.shape) < 0.4] = masks.GAP
    states["sst"] = (ds["sst"].dims, st)
    fitted = fit_climatology(
        ds, states, ["sst"], "time", DIMS, (False, False), fill=harmonic_fill_array
    )["sst"]
    assert fitted.dims == ("y", "level", "x")
    # level 1 is level 0 plus 1 with the same gaps drawn independently: close means
    diff = (fitted.isel(level=1) - fitted.isel(level=0)).values
    assert abs(float(np.mean(diff)) - 1.0) < 0.05


def test_observed_mean_ignores_unobserved_values_and_marks_points_never_seen() -> None:
    values = np.array([[1.0, 5.0, np.nan], [3.0, 1e9, 2.0], [np.nan, 7.0, -4.0]])
    observed = np.array([[True, True, False], [True, False, True], [False, True, False]])
    mean, seen = observed_mean(values, observed, axis=0)
    np.testing.assert_array_equal(mean, [2.0, 6.0, 2.0])
    np.testing.assert_array_equal(seen, [True, True, True])
    mean, seen = observed_mean(values, observed & False, axis=1)
    assert np.isnan(mean).all()
    assert not seen.any()
    overall, _ = observed_mean(values, observed, None)
    assert float(overall) == (1 + 5 + 3 + 2 + 7) / 5


def test_the_data_and_the_time_mean_baseline_share_one_climatology() -> None:
    """The baseline's fill at a gap is ``climatology_of`` at that point, bit for bit."""
    ds = _record(seed=4, steps=16).transpose("y", "time", "x")
    states = _states(ds, 0.6, 3, None)
    gappy = ds["sst"].where(states["sst"] == masks.OBSERVED)
    clim = climatology_of(ds, states, ["sst"], "time")["sst"]
    filled = TimeMean(never_observed="nan").fill(gappy, dims=DIMS)
    gap = (states["sst"] == masks.GAP).transpose(*filled.dims).values
    expected = np.broadcast_to(
        clim.astype("float32").transpose("y", "x").values[:, None, :], filled.shape
    )
    np.testing.assert_array_equal(filled.values[gap], expected[gap])
    assert int(gap.sum()) > 1000
