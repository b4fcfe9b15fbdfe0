"""Tests of sparsediff.evaluation.baselines: accuracy on smooth fields, and the
observed/invalid invariants (observed bit-identical, invalid NaN)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import xarray as xr

from sparsediff.data.gaps import gap_mask
from sparsediff.errors import ConfigError, InputError
from sparsediff.evaluation.baselines import (
    BASELINES,
    DINEOF,
    Baseline,
    Laplace,
    LinearInterp,
    TimeMean,
    get_baseline,
)

NT, NY, NX = 8, 32, 32


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """Tiny SVDs/solves run much faster single-threaded on a shared machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _smooth_truth() -> xr.DataArray:
    """Low-order sines plus a Gaussian bump, modulated in time (amplitude ~2)."""
    t = np.arange(NT)[:, None, None]
    y, x = np.meshgrid(np.arange(NY), np.arange(NX), indexing="ij")
    base = np.sin(2 * np.pi * x / NX) + 0.5 * np.cos(2 * np.pi * y / NY)
    base = base + 0.3 * np.sin(2 * np.pi * (x + y) / NX)
    bump = np.exp(-((x - 16.0) ** 2 + (y - 14.0) ** 2) / 60.0)
    f = (
        base[None] * (1 + 0.3 * np.sin(2 * np.pi * t / NT))
        + 0.5 * np.cos(2 * np.pi * t / NT) * bump
    )
    return xr.DataArray(
        f + 10.0,
        dims=("time", "y", "x"),
        coords={"time": np.arange(NT), "y": np.arange(NY), "x": np.arange(NX)},
        name="sst",
        attrs={"units": "K"},
    )


@pytest.fixture
def case() -> tuple[xr.DataArray, xr.DataArray, np.ndarray, xr.DataArray]:
    """(truth, gappy data, hole mask, invalid mask): a 4×4 hole that moves in time."""
    truth = _smooth_truth()
    hole = np.zeros(truth.shape, dtype=bool)
    for t in range(NT):
        hole[t, 6 + 2 * t : 10 + 2 * t, 8 + t : 12 + t] = True
    invalid = xr.zeros_like(truth.isel(time=0), dtype=bool)
    invalid[0:3, 26:32] = True  # a corner of "land"
    data = truth.where(~hole & ~invalid.values)
    return truth, data, hole, invalid


# stated tolerances (max abs error, RMS error) over the hole points; the field has a
# spatial std of 0.84 and a temporal (anomaly) std of 0.20. The climatology alone cannot
# follow the time signal; Laplace relaxes the anomaly around it; DINEOF sees the field
# is (nearly) low rank.
TOLERANCE = {
    "time_mean": (0.7, 0.35),
    "linear": (0.1, 0.04),
    "laplace": (0.2, 0.08),
    "laplace_eof": (0.15, 0.05),
    "dineof": (0.02, 0.005),
}


@pytest.mark.parametrize(
    "name",
    # laplace_seasonal needs dates over years: the same contract, in test_laplace_seasonal.py
    sorted(n for n, c in BASELINES.items() if issubclass(c, Baseline) and n != "laplace_seasonal"),
)
def test_baseline_fills_hole_and_keeps_observed_and_invalid(name: str, case) -> None:
    truth, data, hole, invalid = case
    before = data.copy(deep=True)
    out = get_baseline(name).fill(data, dims=("y", "x"), invalid=invalid)
    xr.testing.assert_identical(data, before)  # input untouched
    assert out.dims == data.dims
    assert out.name == "sst"
    assert out.attrs == data.attrs
    xr.testing.assert_identical(out.coords.to_dataset(), data.coords.to_dataset())
    inv = np.broadcast_to(invalid.values, hole.shape)
    observed = ~hole & ~inv
    np.testing.assert_array_equal(out.values[observed], data.values[observed])
    assert np.isnan(out.values[inv]).all()
    err = np.abs(out.values - truth.values)[hole]
    assert np.isfinite(err).all()
    max_err, rms_err = TOLERANCE[name]
    assert err.max() < max_err, f"{name}: max error {err.max():.3f}"
    assert np.sqrt(np.mean(err**2)) < rms_err


def test_time_mean_is_the_mean_of_observed_times(case) -> None:
    _, data, hole, invalid = case
    out = TimeMean().fill(data, dims=("y", "x"), invalid=invalid)
    v = data.values
    for t, i, j in zip(*np.nonzero(hole), strict=True):
        col = v[:, i, j]
        assert out.values[t, i, j] == pytest.approx(np.nanmean(col), rel=1e-12)


def test_time_mean_never_observed_points() -> None:
    da = xr.DataArray(np.arange(12.0).reshape(3, 2, 2), dims=("time", "y", "x"))
    da[:, 0, 0] = np.nan
    mean_field = da.mean("time").values
    out = TimeMean().fill(da, dims=("y", "x"))
    np.testing.assert_allclose(out.values[:, 0, 0], np.nanmean(mean_field))
    out_nan = TimeMean(never_observed="nan").fill(da, dims=("y", "x"))
    assert np.isnan(out_nan.values[:, 0, 0]).all()


def _linear_field(shape: tuple[int, ...]) -> np.ndarray:
    grids = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    return 1.0 + sum((0.7 + 0.4 * k) * g for k, g in enumerate(grids))


@pytest.mark.parametrize("baseline", [LinearInterp(), Laplace(first_guess="none")])
@pytest.mark.parametrize("shape", [(20, 24), (10, 12, 14)])
def test_linear_field_reproduced_exactly_in_interior_holes(baseline, shape) -> None:
    """A linear field is linear along every line and discretely harmonic."""
    dims = ("z", "y", "x")[-len(shape) :]
    truth = xr.DataArray(_linear_field(shape), dims=dims)
    hole = np.zeros(shape, dtype=bool)
    hole[tuple(slice(3, 7) for _ in shape)] = True
    hole[tuple(slice(n - 5, n - 2) for n in shape)] = True
    out = baseline.fill(truth.where(~hole), dims=dims)
    np.testing.assert_allclose(out.values, truth.values, atol=1e-9)


def test_laplace_anomaly_is_discretely_harmonic(case) -> None:
    truth, data, hole, _ = case
    out = Laplace().fill(data, dims=("y", "x"))
    clim = TimeMean().fill(data, dims=("y", "x"))  # the first guess at the hole points
    mean = data.mean("time").values
    anomaly = out.values - mean[None]
    assert np.isfinite(mean[hole.any(axis=0)]).all()  # each hole point observed some time
    for t in range(NT):
        a = anomaly[t]
        for i, j in zip(*np.nonzero(hole[t]), strict=True):
            lap = a[i - 1, j] + a[i + 1, j] + a[i, j - 1] + a[i, j + 1] - 4 * a[i, j]
            assert abs(lap) < 1e-9
    # it improves on the climatology it starts from
    err = np.abs(out - truth).values[hole]
    assert err.mean() < 0.5 * np.abs(clim - truth).values[hole].mean()


def test_laplace_walled_in_gap_keeps_first_guess() -> None:
    v = np.tile(np.arange(6.0), (3, 6, 1)) + np.arange(3.0)[:, None, None]
    da = xr.DataArray(v, dims=("time", "y", "x"))
    invalid = xr.DataArray(np.zeros((6, 6), dtype=bool), dims=("y", "x"))
    invalid[1:4, 1:4] = True
    invalid[2, 2] = False  # one sea point enclosed by land
    gappy = da.where(~((da.time == 1) & (da.y == 2) & (da.x == 2)))
    out = Laplace().fill(gappy, dims=("y", "x"), invalid=invalid)
    assert out.values[1, 2, 2] == pytest.approx(np.mean([v[0, 2, 2], v[2, 2, 2]]))


def test_global_longitude_wraps() -> None:
    lon = np.arange(0.0, 360.0, 10.0)
    lat = np.linspace(-40, 40, 9)
    lo = np.deg2rad(lon)[None, None, :]
    truth = xr.DataArray(
        np.sin(lo).repeat(9, axis=1).repeat(2, axis=0),
        dims=("time", "lat", "lon"),
        coords={"lat": lat, "lon": lon},
    )
    # a full-height band across the date line at time 1: only the wrap can bracket it
    hole = ((truth.lon < 25) | (truth.lon > 335)) & (truth.time == 1)
    data = truth.where(~hole)
    scored = np.isnan(data.values)
    for baseline, wrapped_off in [
        (LinearInterp(), LinearInterp(wrap_longitude=False)),
        (Laplace(first_guess="none"), Laplace(first_guess="none", wrap_longitude=False)),
    ]:
        err = np.abs(baseline.fill(data, dims=("lat", "lon")) - truth).values[scored]
        err_off = np.abs(wrapped_off.fill(data, dims=("lat", "lon")) - truth).values[scored]
        assert err.max() < 0.02  # linear across 60° of a sine through 0
        assert err_off.max() > 0.3  # nearest value (or flat harmonic) from one side


def test_dineof_recovers_low_rank_field_and_its_rank() -> None:
    rng = np.random.default_rng(1)
    nt, ny, nx, rank = 40, 20, 24, 3
    u = rng.normal(size=(nt, rank)) * np.array([5.0, 3.0, 2.0])
    v = rng.normal(size=(rank, ny * nx)) * 4 / np.sqrt(ny * nx)
    clean = (u @ v).reshape(nt, ny, nx) + 10.0
    noisy = clean + 0.05 * rng.normal(size=clean.shape)
    keep = np.stack([gap_mask((ny, nx), "mcar", 0.4, seed=t) for t in range(nt)])
    data = xr.DataArray(noisy, dims=("time", "y", "x")).where(keep)
    model = DINEOF(max_rank=10)
    out = model.fill(data, dims=("y", "x"))
    assert model.ranks_ == [rank]
    assert model.cv_errors_[0].argmin() == rank - 1
    err = np.sqrt(np.mean((out.values - clean)[~keep] ** 2))
    assert err < 0.05  # the noise level: better than the data themselves
    np.testing.assert_array_equal(out.values[keep], noisy[keep])
    # reproducible
    again = DINEOF(max_rank=10).fill(data, dims=("y", "x"))
    xr.testing.assert_identical(out, again)


def test_extra_dims_are_filled_independently(case) -> None:
    _, data, _, _ = case
    two = xr.concat([data, data * 2.0], dim="member").transpose("time", "y", "member", "x")
    for name in ("time_mean", "linear", "laplace"):
        out = get_baseline(name).fill(two, dims=("y", "x"))
        assert out.dims == two.dims
        single = get_baseline(name).fill(data, dims=("y", "x"))
        xr.testing.assert_allclose(out.isel(member=0, drop=True), single, rtol=1e-12)
        xr.testing.assert_allclose(out.isel(member=1, drop=True), 2.0 * single, rtol=1e-12)


def test_dataset_input_float32_and_invalid_by_name(case) -> None:
    _, data, hole, invalid = case
    ds = xr.Dataset(
        {"sst": data.astype(np.float32), "land": invalid, "label": ("time", ["a"] * NT)}
    )
    out = Laplace().fill(ds, dims=("y", "x"), invalid="land")
    xr.testing.assert_identical(out["land"], ds["land"])
    xr.testing.assert_identical(out["label"], ds["label"])
    assert out["sst"].dtype == np.float32
    observed = np.isfinite(ds["sst"].values)
    np.testing.assert_array_equal(out["sst"].values[observed], ds["sst"].values[observed])
    assert np.isfinite(out["sst"].values[hole]).all()
    assert np.isnan(out["sst"].values[:, invalid.values]).all()
    by_array = Laplace().fill(ds.drop_vars("land"), dims=("y", "x"), invalid=invalid)
    xr.testing.assert_identical(by_array["sst"], out["sst"])
    with pytest.raises(InputError, match="no numeric variable"):
        Laplace().fill(ds[["label"]], dims=("y", "x"))


def test_three_d_volume_hole() -> None:
    z, y, x = np.meshgrid(np.arange(12), np.arange(14), np.arange(16), indexing="ij")
    vol = np.sin(z / 4.0) + np.cos(y / 5.0) * np.sin(x / 6.0)
    truth = xr.DataArray(vol, dims=("z", "y", "x"))
    hole = np.zeros(vol.shape, dtype=bool)
    hole[4:8, 5:9, 6:10] = True
    for baseline in (LinearInterp(), Laplace(first_guess="none")):
        out = baseline.fill(truth.where(~hole), dims=("z", "y", "x"))
        err = np.abs(out.values - vol)[hole]  # curvature error, field range ~3.5
        assert err.max() < 0.12
        assert np.sqrt(np.mean(err**2)) < 0.08
        np.testing.assert_array_equal(out.values[~hole], vol[~hole])


def test_laplace_iterative_solver_matches_direct(case) -> None:
    _, data, _, invalid = case
    direct = Laplace().fill(data, dims=("y", "x"), invalid=invalid)
    iterative = Laplace(direct_max=0, tol=1e-12).fill(data, dims=("y", "x"), invalid=invalid)
    xr.testing.assert_allclose(direct, iterative, rtol=0, atol=1e-8)


def test_bad_inputs_raise(case) -> None:
    _, data, _, invalid = case
    with pytest.raises(InputError, match="'lat'"):
        LinearInterp().fill(data, dims=("lat", "x"))
    with pytest.raises(InputError, match="2 or 3"):
        LinearInterp().fill(data, dims=("x",))
    with pytest.raises(InputError, match="needs the time dim"):
        TimeMean().fill(data.isel(time=0), dims=("y", "x"))
    with pytest.raises(InputError, match="cannot also be a spatial dim"):
        DINEOF().fill(data, dims=("time", "x"))
    with pytest.raises(InputError, match="do not fit"):
        Laplace().fill(data, dims=("y", "x"), invalid=invalid.isel(y=slice(0, 5)))
    with pytest.raises(ConfigError, match="unknown baseline"):
        get_baseline("kriging")
    with pytest.raises(ConfigError, match="bad options"):
        get_baseline("laplace", colour="red")
    with pytest.raises(ConfigError, match="first_guess"):
        Laplace(first_guess="median")


def test_registry() -> None:
    classical = {n for n, cls in BASELINES.items() if issubclass(cls, Baseline)}
    assert classical == {
        "time_mean",
        "linear",
        "laplace",
        "laplace_seasonal",
        "laplace_eof",
        "dineof",
    }
    assert set(BASELINES) - classical == {"guess_noise", "condsim"}  # ensembles (fillers)
    for name, cls in BASELINES.items():
        assert cls.name == name
    model = get_baseline("dineof", max_rank=4, seed=3)
    assert isinstance(model, DINEOF)
    assert (model.max_rank, model.seed) == (4, 3)


def test_all_missing_variable_is_refused_as_fill_refuses_it() -> None:
    """The baselines take point states from data.masks.states, like sparsediff.fill."""
    empty = xr.DataArray(np.full((2, 4, 4), np.nan), dims=("time", "y", "x"), name="v")
    with pytest.raises(InputError, match="'v' has no finite value"):
        LinearInterp().fill(empty, dims=("y", "x"))
