"""Tests of sparsediff.evaluation.metrics against independent numpy references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import xarray as xr

from sparsediff.errors import InputError
from sparsediff.evaluation import metrics as M


@pytest.fixture
def fields() -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """(pred, truth, mask) on a small time × lat × lon grid with NaN off the mask."""
    rng = np.random.default_rng(0)
    lat = np.linspace(-75.0, 75.0, 6)
    lon = np.arange(0.0, 360.0, 45.0)
    coords = {"time": np.arange(4), "lat": lat, "lon": lon}
    truth = xr.DataArray(rng.normal(size=(4, 6, 8)), dims=("time", "lat", "lon"), coords=coords)
    pred = truth + rng.normal(0.3, 0.5, size=truth.shape)
    mask = xr.DataArray(rng.random(truth.shape) < 0.4, dims=truth.dims, coords=coords)
    # unscored points may hold anything, NaN included
    truth = truth.where(mask | (rng.random(truth.shape) < 0.5))
    pred = pred.where(mask | (rng.random(truth.shape) < 0.5))
    return pred, truth, mask


def _reference(pred, truth, mask, fn, weighted=True):
    """Pure-python loop: weighted mean of fn(p, t) over masked points."""
    num = den = 0.0
    lat = truth["lat"].values
    for i, j, k in itertools.product(*(range(n) for n in truth.shape)):
        if mask.values[i, j, k]:
            w = math.cos(math.radians(lat[j])) if weighted else 1.0
            num += w * fn(pred.values[i, j, k], truth.values[i, j, k])
            den += w
    return num / den


def test_rmse_mae_bias_match_reference_with_area_weights(fields) -> None:
    pred, truth, mask = fields
    for weighted in (True, False):
        ref_mse = _reference(pred, truth, mask, lambda p, t: (p - t) ** 2, weighted)
        ref_mae = _reference(pred, truth, mask, lambda p, t: abs(p - t), weighted)
        ref_bias = _reference(pred, truth, mask, lambda p, t: p - t, weighted)
        kw = {"area_weighted": weighted}
        assert float(M.rmse(pred, truth, mask, **kw)) == pytest.approx(math.sqrt(ref_mse), 1e-12)
        assert float(M.mae(pred, truth, mask, **kw)) == pytest.approx(ref_mae, 1e-12)
        assert float(M.bias(pred, truth, mask, **kw)) == pytest.approx(ref_bias, 1e-12)
    # the weighting changes the answer (the test above is not vacuous)
    assert float(M.rmse(pred, truth, mask)) != pytest.approx(
        float(M.rmse(pred, truth, mask, area_weighted=False)), 1e-6
    )


def test_dims_keeps_the_other_dims(fields) -> None:
    pred, truth, mask = fields
    per_time = M.rmse(pred, truth, mask, dims=("lat", "lon"))
    assert per_time.dims == ("time",)
    for t in range(truth.sizes["time"]):
        sel = {"time": t}
        expected = M.rmse(pred.isel(sel), truth.isel(sel), mask.isel(sel))
        assert float(per_time[t]) == pytest.approx(float(expected), 1e-12)
    with pytest.raises(InputError, match="depth"):
        M.rmse(pred, truth, mask, dims="depth")


def test_area_weights_found_by_name_units_or_2d_coord() -> None:
    da = xr.DataArray(np.zeros((3, 2)), dims=("y", "x"))
    assert M.area_weights(da) is None
    by_units = da.assign_coords(
        y=("y", [0.0, 60.0, 90.0], {"units": "degrees_north"}), x=("x", [0.0, 1.0])
    )
    np.testing.assert_allclose(M.area_weights(by_units).values, [1.0, 0.5, 0.0], atol=1e-15)
    lat2d = np.array([[0.0, 0.0], [60.0, 60.0], [60.0, 0.0]])
    curvi = da.assign_coords(nav_lat=(("y", "x"), lat2d, {"standard_name": "latitude"}))
    w = M.area_weights(curvi)
    assert w.dims == ("y", "x")
    np.testing.assert_allclose(w.values, np.cos(np.deg2rad(lat2d)))
    # a 2-D latitude weights point by point
    pred = xr.DataArray(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), dims=("y", "x"))
    pred = pred.assign_coords(nav_lat=curvi.nav_lat)
    truth = xr.zeros_like(pred)
    expected = (pred.values * np.cos(np.deg2rad(lat2d))).sum() / np.cos(np.deg2rad(lat2d)).sum()
    assert float(M.bias(pred, truth, None)) == pytest.approx(expected, 1e-12)


def test_nan_inside_the_mask_gives_nan_outside_is_ignored(fields) -> None:
    pred, truth, mask = fields
    assert np.isfinite(float(M.rmse(pred, truth, mask)))
    holed = pred.where(~(mask & (pred.time == 0) & (pred.lat == pred.lat[2])))
    assert np.isnan(float(M.rmse(holed, truth, mask)))
    empty = xr.zeros_like(mask)
    assert np.isnan(float(M.mae(pred, truth, empty)))


def test_bad_inputs_raise(fields) -> None:
    pred, truth, mask = fields
    with pytest.raises(InputError, match="boolean"):
        M.rmse(pred, truth, mask.astype(int))
    with pytest.raises(InputError, match="same grid"):
        M.rmse(pred.assign_coords(lon=pred.lon + 1), truth, mask)
    with pytest.raises(InputError, match="DataArray"):
        M.mae(pred.values, truth, mask)


def test_lazy_inputs_give_the_same_numbers(fields) -> None:
    pred, truth, mask = fields
    ens = xr.concat([pred, pred + 0.1, pred - 0.2], dim="member")
    lazy = {"time": 2}
    assert float(M.rmse(pred.chunk(lazy), truth.chunk(lazy), mask)) == pytest.approx(
        float(M.rmse(pred, truth, mask)), 1e-14
    )
    assert float(M.crps(ens.chunk(lazy), truth.chunk(lazy), mask)) == pytest.approx(
        float(M.crps(ens, truth, mask)), 1e-14
    )


# --------------------------------------------------------------------------- ensembles


def _ensemble(n: int = 300, k: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    truth = xr.DataArray(rng.normal(size=n), dims="point")
    ens = xr.DataArray(rng.normal(size=(k, n)) + truth.values * 0.5, dims=("member", "point"))
    mask = xr.DataArray(rng.random(n) < 0.7, dims="point")
    return ens, truth, mask


def test_crps_matches_energy_form_reference() -> None:
    ens, truth, mask = _ensemble()
    x, y, m = ens.values, truth.values, mask.values
    k = x.shape[0]
    standard, fair = [], []
    for p in np.flatnonzero(m):
        e1 = sum(abs(x[i, p] - y[p]) for i in range(k)) / k
        pair = sum(abs(x[i, p] - x[j, p]) for i in range(k) for j in range(k))
        standard.append(e1 - pair / (2 * k * k))
        fair.append(e1 - pair / (2 * k * (k - 1)))
    got = float(M.crps(ens, truth, mask, area_weighted=False))
    assert got == pytest.approx(np.mean(standard), 1e-12)
    assert float(M.crps(ens, truth, mask, estimator="fair")) == pytest.approx(np.mean(fair), 1e-12)


def test_crps_of_one_member_is_mae(fields) -> None:
    pred, truth, mask = fields
    one = pred.expand_dims(member=1)
    assert float(M.crps(one, truth, mask)) == pytest.approx(float(M.mae(pred, truth, mask)), 1e-13)
    with pytest.raises(InputError, match="at least 2"):
        M.crps(one, truth, mask, estimator="fair")
    with pytest.raises(InputError, match="member dim"):
        M.crps(pred, truth, mask)


def test_spread_skill_matches_reference_and_is_one_when_calibrated() -> None:
    ens, truth, mask = _ensemble(k=4)
    x, y = ens.values[:, mask.values], truth.values[mask.values]
    k = x.shape[0]
    spread = math.sqrt((k + 1) / k * np.mean(x.var(axis=0, ddof=1)))
    skill = math.sqrt(np.mean((x.mean(axis=0) - y) ** 2))
    assert float(M.spread_skill_ratio(ens, truth, mask)) == pytest.approx(spread / skill, 1e-12)
    # calibrated: truth and members are independent draws of the same distribution
    rng = np.random.default_rng(3)
    n, k = 100_000, 5
    centre = rng.normal(0, 3, size=n)
    sigma = rng.uniform(0.5, 2.0, size=n)
    truth = xr.DataArray(centre + sigma * rng.normal(size=n), dims="point")
    members = centre + sigma * rng.normal(size=(k, n))
    ens = xr.DataArray(members, dims=("member", "point"))
    everywhere = xr.ones_like(truth, dtype=bool)
    ratio = float(M.spread_skill_ratio(ens, truth, everywhere))
    assert ratio == pytest.approx(1.0, abs=0.03)
    narrow = xr.DataArray(centre + 0.5 * sigma * rng.normal(size=(k, n)), dims=("member", "point"))
    assert float(M.spread_skill_ratio(narrow, truth, everywhere)) < 0.7


def test_rank_histogram_flat_for_calibrated_ensemble() -> None:
    rng = np.random.default_rng(4)
    n, k = 20_000, 7
    truth = xr.DataArray(rng.normal(size=n), dims="point")
    ens = xr.DataArray(rng.normal(size=(k, n)), dims=("member", "point"))
    mask = xr.DataArray(rng.random(n) < 0.8, dims="point")
    hist = M.rank_histogram(ens, truth, mask)
    assert hist.dims == ("rank",)
    np.testing.assert_array_equal(hist["rank"].values, np.arange(k + 1))
    assert int(hist.sum()) == int(mask.sum())
    expected = int(mask.sum()) / (k + 1)
    chi2 = float((((hist - expected) ** 2) / expected).sum())
    assert chi2 < scipy.stats.chi2.ppf(0.999, df=k)
    # reference count without ties: number of members below the truth
    below = (ens.values[:, mask.values] < truth.values[mask.values]).sum(axis=0)
    np.testing.assert_array_equal(hist.values, np.bincount(below, minlength=k + 1))
    # an under-dispersive ensemble piles up in the outer bins
    narrow = M.rank_histogram(ens * 0.3, truth, mask)
    assert int(narrow[0] + narrow[-1]) > 2 * int(hist[0] + hist[-1])


def test_rank_histogram_breaks_ties_randomly_and_reproducibly() -> None:
    truth = xr.DataArray(np.zeros(8000), dims="point")
    ens = xr.DataArray(np.zeros((3, 8000)), dims=("member", "point"))
    mask = xr.ones_like(truth, dtype=bool)
    a = M.rank_histogram(ens, truth, mask, seed=5)
    b = M.rank_histogram(ens, truth, mask, seed=5)
    xr.testing.assert_identical(a, b)
    np.testing.assert_allclose(a.values / 8000, 0.25, atol=0.03)
    with pytest.raises(InputError, match="NaN"):
        M.rank_histogram(ens, truth.where(truth.point > 0), mask)


# --------------------------------------------------------------------------- spectra


def _radial_reference(a: np.ndarray) -> np.ndarray:
    """Loop version of the ring average, square field, de-meaned, no NaN."""
    n = a.shape[0]
    f = np.fft.fft2(a - a.mean())
    power = np.abs(f) ** 2 / a.size
    sums = np.zeros(n // 2 + 1)
    counts = np.zeros(n // 2 + 1)
    for i in range(n):
        for j in range(n):
            ki = i if i <= n // 2 else i - n
            kj = j if j <= n // 2 else j - n
            r = round(math.hypot(ki, kj))
            if 1 <= r <= n // 2:
                sums[r] += power[i, j]
                counts[r] += 1
    return sums[1:] / counts[1:]


def test_power_spectrum_matches_loop_and_ratio_behaves() -> None:
    rng = np.random.default_rng(6)
    truth = xr.DataArray(rng.normal(size=(2, 16, 16)), dims=("time", "y", "x"))
    spec = M.power_spectrum(truth, dims=("y", "x"))
    ref = np.mean([_radial_reference(truth.values[t]) for t in range(2)], axis=0)
    np.testing.assert_allclose(spec.values, ref, rtol=1e-12)
    np.testing.assert_allclose(spec["wavenumber"].values, np.arange(1, 9) / 16)
    same = M.power_spectrum_ratio(truth, truth, dims=("y", "x"))
    np.testing.assert_allclose(same.values, 1.0)
    assert M.spectrum_ratio_score(same) == pytest.approx(0.0, abs=1e-12)
    double = M.power_spectrum_ratio(2 * truth + 1, truth, dims=("y", "x"))
    np.testing.assert_allclose(double.values, 4.0)
    assert M.spectrum_ratio_score(double) == pytest.approx(math.log(4.0))
    smooth = truth.rolling(x=3, center=True, min_periods=1).mean()
    ratio = M.power_spectrum_ratio(smooth, truth, dims=("y", "x"))
    assert float(ratio[-1]) < 0.3 < float(ratio[0])


def test_power_spectrum_ratio_uses_the_union_of_missing_points() -> None:
    rng = np.random.default_rng(7)
    truth = xr.DataArray(rng.normal(size=(16, 16)), dims=("y", "x"))
    pred = truth.where(truth.x != 3)  # one column not filled
    ratio = M.power_spectrum_ratio(pred, truth, dims=("y", "x"))
    np.testing.assert_allclose(ratio.values, 1.0)
    with pytest.raises(InputError, match="2 spatial dims"):
        M.power_spectrum_ratio(pred, truth, dims=("y",))


# --------------------------------------------------------------------------- image metrics


def _ssim_loop(p: np.ndarray, t: np.ndarray, mask: np.ndarray, rng: float, sigma=1.5, trunc=3.5):
    """Straightforward SSIM: explicit Gaussian window, symmetric padding, one point at a time."""
    r = int(trunc * sigma + 0.5)
    offs = np.arange(-r, r + 1)
    g1 = np.exp(-0.5 * (offs / sigma) ** 2)
    g1 /= g1.sum()
    win = g1
    for _ in range(p.ndim - 1):
        win = np.multiply.outer(win, g1)
    pp = np.pad(p, r, mode="symmetric")
    tp = np.pad(t, r, mode="symmetric")
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    vals = []
    for idx in zip(*np.nonzero(mask), strict=True):
        sl = tuple(slice(i, i + 2 * r + 1) for i in idx)
        a, b = pp[sl], tp[sl]
        ma, mb = (win * a).sum(), (win * b).sum()
        va = (win * a * a).sum() - ma * ma
        vb = (win * b * b).sum() - mb * mb
        cov = (win * a * b).sum() - ma * mb
        vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


@pytest.mark.parametrize("shape", [(9, 11), (5, 6, 7)])
def test_ssim_matches_loop_implementation(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(8)
    dims = ("z", "y", "x")[-len(shape) :]
    t = rng.normal(size=shape).cumsum(axis=-1)
    p = t + rng.normal(0, 0.7, size=shape)
    m = rng.random(shape) < 0.5
    truth, pred, mask = (xr.DataArray(a, dims=dims) for a in (t, p, m))
    expected = _ssim_loop(p, t, m, float(t.max() - t.min()))
    assert M.ssim(pred, truth, mask) == pytest.approx(expected, rel=1e-10)
    assert M.ssim(truth, truth, mask) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim(pred, truth, mask, data_range=50.0) == pytest.approx(
        _ssim_loop(p, t, m, 50.0), rel=1e-10
    )


def test_ssim_with_a_batch_dim_averages_volume_ssims_over_the_mask() -> None:
    rng = np.random.default_rng(9)
    t = rng.normal(size=(2, 8, 8))
    p = t + rng.normal(0, 0.5, size=t.shape)
    m = np.ones(t.shape, dtype=bool)
    truth, pred, mask = (xr.DataArray(a, dims=("time", "y", "x")) for a in (t, p, m))
    rngv = float(t.max() - t.min())
    expected = np.mean([_ssim_loop(p[i], t[i], m[i], rngv) for i in range(2)])
    assert M.ssim(pred, truth, mask, dims=("y", "x")) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(InputError, match="2 or 3 spatial dims"):
        M.ssim(pred, truth, mask, dims=("x",))


def test_psnr_reference_and_identity() -> None:
    rng = np.random.default_rng(10)
    t = rng.uniform(0, 4, size=(6, 7, 8))
    p = t + rng.normal(0, 0.1, size=t.shape)
    m = rng.random(t.shape) < 0.3
    truth, pred, mask = (xr.DataArray(a, dims=("z", "y", "x")) for a in (t, p, m))
    mse = np.mean((p[m] - t[m]) ** 2)
    expected = 10 * math.log10((t.max() - t.min()) ** 2 / mse)
    assert M.psnr(pred, truth, mask) == pytest.approx(expected, rel=1e-12)
    assert M.psnr(pred, truth, mask, data_range=1.0) == pytest.approx(
        10 * math.log10(1.0 / mse), rel=1e-12
    )
    assert M.psnr(truth, truth, mask) == math.inf


# --------------------------------------------------------------------------- table


def test_score_table_rows_equal_individual_metrics(fields) -> None:
    pred, truth, mask = fields
    ens = xr.concat([pred + d for d in (-0.3, 0.0, 0.4)], dim="member")
    table = M.score_table({"a": pred, "b": pred * 0.5}, truth, mask, ensembles={"a": ens, "c": ens})
    assert isinstance(table, pd.DataFrame)
    assert list(table["method"]) == ["a", "b", "c"]
    assert list(table.columns) == ["method", "rmse", "mae", "bias", "crps", "spread_skill"]
    row = table.set_index("method")
    assert row.loc["a", "rmse"] == pytest.approx(float(M.rmse(pred, truth, mask)))
    assert row.loc["b", "bias"] == pytest.approx(float(M.bias(pred * 0.5, truth, mask)))
    assert row.loc["c", "mae"] == pytest.approx(float(M.mae(ens.mean("member"), truth, mask)))
    assert row.loc["a", "crps"] == pytest.approx(float(M.crps(ens, truth, mask)))
    assert row.loc["a", "spread_skill"] == pytest.approx(
        float(M.spread_skill_ratio(ens, truth, mask))
    )
    assert np.isnan(row.loc["b", "crps"])
    plain = M.score_table({"a": pred}, truth, mask)
    assert list(plain.columns) == ["method", "rmse", "mae", "bias"]


def test_spread_skill_is_area_weighted_when_there_is_a_latitude() -> None:
    """Spread and skill both weight each point by cos(latitude), as the other scores do.

    The ensemble is wide near the poles and narrow at the equator, and the error is the
    other way round, so the weighted and unweighted ratios differ clearly.
    """
    rng = np.random.default_rng(11)
    lat = np.array([-80.0, -40.0, 0.0, 40.0, 80.0])
    lon = np.arange(0.0, 360.0, 30.0)
    k = 6
    polar = np.abs(lat)[:, None] / 80.0 * np.ones((1, lon.size))  # 0 at the equator, 1 at poles
    spread = 0.1 + 2.0 * polar
    error = 0.1 + 2.0 * (1 - polar)
    truth_v = rng.normal(size=(lat.size, lon.size))
    signs = rng.choice([-1.0, 1.0], size=truth_v.shape)
    noise = rng.normal(size=(k, *truth_v.shape))
    noise -= noise.mean(axis=0)
    noise /= noise.std(axis=0, ddof=1)
    members = truth_v + signs * error + spread * noise
    coords = {"lat": lat, "lon": lon}
    truth = xr.DataArray(truth_v, dims=("lat", "lon"), coords=coords)
    ens = xr.DataArray(members, dims=("member", "lat", "lon"), coords=coords)
    mask = xr.ones_like(truth, dtype=bool)
    w = np.cos(np.radians(lat))[:, None] * np.ones_like(truth_v)
    var = members.var(axis=0, ddof=1)
    sq = (members.mean(axis=0) - truth_v) ** 2
    weighted = math.sqrt((k + 1) / k * (w * var).sum() / w.sum()) / math.sqrt(
        (w * sq).sum() / w.sum()
    )
    flat = math.sqrt((k + 1) / k * var.mean()) / math.sqrt(sq.mean())
    assert weighted < 0.7 * flat  # the weighting matters here (0.80 vs 1.38)
    assert float(M.spread_skill_ratio(ens, truth, mask)) == pytest.approx(weighted, 1e-12)
    assert float(M.spread_skill_ratio(ens, truth, mask, area_weighted=False)) == pytest.approx(
        flat, 1e-12
    )
    # the score table reports the weighted ratio too
    table = M.score_table({"m": ens.mean("member")}, truth, mask, ensembles={"m": ens})
    assert float(table["spread_skill"].iloc[0]) == pytest.approx(weighted, 1e-12)
