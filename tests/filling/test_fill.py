"""Fill invariants: observed bit-identical, invalid NaN, determinism, compatibility checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sparsediff
from sparsediff.errors import CompatibilityError, InputError, SparsediffWarning
from sparsediff.filling.fill import ensemble_mean, ensemble_std, is_global_longitude
from tests.filling.conftest import make_model

# the test data are N(20, 5) (see _dataset): the models' statistics say so, as a trained
# model's would (fill refuses data many standard deviations from them)
DATA = {"mean": 20.0, "std": 5.0}
MODEL_2D = make_model(["a", "b"], ["y", "x"], [8, 8], **DATA)
MODEL_3D = make_model(["v"], ["z", "y", "x"], [8, 8, 8], **DATA)
PIXEL_2D = make_model(["a"], ["y", "x"], [8, 8], mode="pixel", **DATA)


def _dataset(
    rng: np.random.Generator,
    variables: list[str],
    shape: tuple[int, ...],
    dims: list[str],
    gap: float,
    invalid: float,
    dtype: str,
) -> tuple[xr.Dataset, np.ndarray]:
    inv = rng.random(shape[1:]) < invalid  # invalid: same points at every time
    data = {}
    for v in variables:
        a = rng.normal(20, 5, size=shape).astype(dtype)
        a[rng.random(shape) < gap] = np.nan
        a[:, inv] = np.nan
        data[v] = (dims, a)
    return xr.Dataset(data), inv


def _check_invariants(
    ds: xr.Dataset, out: xr.Dataset, variables: list[str], inv: np.ndarray
) -> None:
    for v in variables:
        src = ds[v].values
        # invalid: the user's mask, plus points NaN at every time (invalid_along="t")
        inv_v = inv | np.isnan(src).all(axis=0)
        got = out[v].values
        members = [got[k] for k in range(got.shape[0])] if "member" in out[v].dims else [got]
        obs = np.isfinite(src)
        for g in members:
            assert g.dtype == src.dtype
            # observed points are the input's bytes
            np.testing.assert_array_equal(g[obs].view(np.uint8), src[obs].view(np.uint8))
            # invalid points stay NaN, gaps are filled with finite numbers
            assert np.isnan(g[..., inv_v]).all()
            gaps = ~obs & ~np.broadcast_to(inv_v, src.shape)
            assert np.isfinite(g[gaps]).all()
        flag = out[f"{v}_fill_flag"].values
        np.testing.assert_array_equal(flag == 0, obs)
        np.testing.assert_array_equal(flag == 2, np.broadcast_to(inv_v, src.shape))
        assert out[v].attrs["ancillary_variables"] == f"{v}_fill_flag"
        assert out[f"{v}_fill_flag"].attrs["flag_meanings"] == "observed filled invalid"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ny=st.integers(3, 20),
    nx=st.integers(3, 20),
    gap=st.floats(0.0, 0.9),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_2d_observed_identical_invalid_nan(
    ny: int, nx: int, gap: float, seed: int, dtype: str
) -> None:
    rng = np.random.default_rng(seed)
    ds, inv = _dataset(rng, ["a", "b"], (2, ny, nx), ["t", "y", "x"], gap, 0.1, dtype)
    # a variable with no finite value is refused (InputError), not filled: not this test's case
    assume(all(np.isfinite(ds[v].values).any() for v in ("a", "b")))
    out = sparsediff.fill(ds, MODEL_2D, steps=2, invalid_along="t")
    _check_invariants(ds, out, ["a", "b"], inv)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(5, 12),
    gap=st.floats(0.0, 0.8),
    seed=st.integers(0, 2**16),
)
def test_3d_observed_identical_invalid_nan(n: int, gap: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ds, inv = _dataset(rng, ["v"], (2, n, n + 1, n + 2), ["t", "z", "y", "x"], gap, 0.1, "float32")
    assume(bool(np.isfinite(ds["v"].values).any()))  # an all-NaN variable is refused
    out = sparsediff.fill(ds, MODEL_3D, steps=2, members=2, invalid_along="t")
    _check_invariants(ds, out, ["v"], inv)


def test_pixel_model_and_members() -> None:
    rng = np.random.default_rng(1)
    ds, inv = _dataset(rng, ["a"], (3, 12, 16), ["t", "y", "x"], 0.4, 0.05, "float32")
    out = sparsediff.fill(ds, PIXEL_2D, members=3, steps=3, invalid_along="t")
    assert out["a"].dims == ("member", "t", "y", "x")
    _check_invariants(ds, out, ["a"], inv)
    # members differ at gaps, agree at observed points
    gaps = out["a_fill_flag"].values == 1
    a = out["a"].values
    assert not np.array_equal(a[0][gaps], a[1][gaps])
    mean = ensemble_mean(out)
    obs = np.isfinite(ds["a"].values)
    np.testing.assert_array_equal(mean["a"].values[obs], ds["a"].values[obs])
    spread = ensemble_std(out)["a"].values
    assert (spread[obs] == 0).all()
    assert (spread[gaps] > 0).all()


def test_same_seed_same_bytes_other_seed_differs() -> None:
    rng = np.random.default_rng(2)
    ds, _ = _dataset(rng, ["a", "b"], (2, 10, 20), ["t", "y", "x"], 0.3, 0.0, "float32")
    a = sparsediff.fill(ds, MODEL_2D, steps=3, seed=5)
    b = sparsediff.fill(ds, MODEL_2D, steps=3, seed=5)
    c = sparsediff.fill(ds, MODEL_2D, steps=3, seed=6)
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert not np.array_equal(a["a"].values, c["a"].values, equal_nan=True)


def test_chunkings_and_batch_sizes() -> None:
    rng = np.random.default_rng(3)
    ds, _ = _dataset(rng, ["a", "b"], (4, 12, 20), ["t", "y", "x"], 0.3, 0.0, "float32")
    eager = sparsediff.fill(ds, MODEL_2D, steps=3, seed=1)
    by_one = sparsediff.fill(ds.chunk({"t": 1}), MODEL_2D, steps=3, seed=1)
    odd = sparsediff.fill(ds.chunk({"t": 3, "y": 5}), MODEL_2D, steps=3, seed=1)
    assert by_one["a"].chunks is not None  # lazy result
    for other in (by_one, odd):
        for v in ("a", "b"):
            np.testing.assert_array_equal(other[v].values, eager[v].values)
    # batch size changes float rounding only
    small = sparsediff.fill(ds, MODEL_2D, steps=3, seed=1, batch_size=1)
    np.testing.assert_allclose(small["a"].values, eager["a"].values, rtol=1e-5, atol=1e-5)


def test_dataarray_and_accessor() -> None:
    rng = np.random.default_rng(4)
    ds, _ = _dataset(rng, ["a"], (1, 9, 9), ["t", "y", "x"], 0.3, 0.0, "float32")
    out = ds["a"].sparsediff.fill(PIXEL_2D, steps=2)
    assert out["a"].shape == (1, 9, 9)
    assert np.isfinite(out["a"].values).all()


def test_global_longitude_detection() -> None:
    lon = xr.DataArray(np.arange(0, 360, 2.5), dims="lon", name="lon")
    assert is_global_longitude(lon)
    assert not is_global_longitude(lon[:-10])
    assert not is_global_longitude(xr.DataArray(np.arange(10.0), dims="x", name="x"))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda ds: ds.drop_vars("b"), r"lacks \['b'\]"),
        (lambda ds: ds.rename({"x": "lon"}), r"missing \['x'\]"),
        (lambda ds: ds.assign(a=ds["a"].assign_attrs(units="degC")), r"'degC'.*trained on 'K'"),
    ],
    ids=["missing-variable", "missing-dim", "units"],
)
def test_mismatches_refused_before_compute(edit, match) -> None:  # type: ignore[no-untyped-def]
    model = make_model(["a", "b"], ["y", "x"], [8, 8], units={"a": "K"}, **DATA)
    rng = np.random.default_rng(5)
    ds, _ = _dataset(rng, ["a", "b"], (2, 8, 8), ["t", "y", "x"], 0.3, 0.0, "float32")
    ds["a"].attrs["units"] = "K"
    # a dask input that would raise if it were ever computed
    poison = ds.chunk({"t": 1}).map_blocks(
        lambda b: (_ for _ in ()).throw(AssertionError("computed")), template=ds.chunk({"t": 1})
    )
    with pytest.raises(CompatibilityError, match=match):
        sparsediff.fill(edit(poison), model)


def test_grid_spacing_far_from_training_warns() -> None:
    model = make_model(["a"], ["y", "x"], [8, 8], mode="pixel", grid_spacing={"y": 1.0, "x": 1.0})
    ds = xr.Dataset(
        {"a": (("y", "x"), np.ones((8, 8), "float32"))},
        coords={"y": np.arange(8) * 5.0, "x": np.arange(8) * 1.0},
    )
    with pytest.warns(SparsediffWarning, match="grid spacing along 'y'"):
        sparsediff.fill(ds, model, steps=1)
    ds2 = ds.assign_coords(y=np.arange(8) * 1.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sparsediff.fill(ds2, model, steps=1)


def test_climatology_model_fills_anomalies_and_keeps_observed() -> None:
    rng = np.random.default_rng(6)
    ds, inv = _dataset(rng, ["a"], (3, 10, 12), ["t", "y", "x"], 0.4, 0.1, "float32")
    model = make_model(["a"], ["y", "x"], [8, 8], mode="pixel")
    clim = xr.DataArray(np.full((10, 12), 1000.0), dims=("y", "x"), name="a")
    model.climatology = {"a": clim}
    # the climatology (1000) is far from the data (20) on purpose: no value check
    out = sparsediff.fill(ds, model, steps=2, invalid_along="t", check_values=False)
    _check_invariants(ds, out, ["a"], inv)
    gaps = out["a_fill_flag"].values == 1
    # gaps are filled as climatology + anomaly, and the anomaly continues the observed
    # anomalies (first guess): the fill is at the data's level, not at the climatology's
    # (1000) nor at the bare anomaly's (about -1000)
    lo, hi = float(ds["a"].min()), float(ds["a"].max())
    assert (out["a"].values[gaps] > lo - 50).all()
    assert (out["a"].values[gaps] < hi + 50).all()
    # a grid that does not match the climatology is refused
    with pytest.raises(CompatibilityError, match="climatology"):
        sparsediff.fill(ds.isel(x=slice(0, 8)), model, steps=1)


def test_model_with_climatology_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = make_model(["a"], ["y", "x"], [8, 8], mode="pixel")
    clim = xr.DataArray(
        np.arange(80.0).reshape(8, 10), dims=("y", "x"), coords={"x": np.arange(10) * 0.5}, name="a"
    )
    model.climatology = {"a": clim}
    model.save(tmp_path / "m")
    back = sparsediff.load(tmp_path / "m")
    assert back.climatology is not None
    xr.testing.assert_identical(back.climatology["a"], clim)


def test_training_invalid_below_rule_applies_at_fill() -> None:
    model = make_model(["v"], ["y", "x"], [8, 8], mode="pixel", invalid_below=0.0)
    data = np.full((1, 10, 10), 5.0, dtype="float32")
    data[:, :3, :] = 0.0  # "air"
    data[:, 5, 5] = np.nan  # a gap inside
    ds = xr.Dataset({"v": (("t", "y", "x"), data)})
    out = sparsediff.fill(ds, model, steps=2)
    flag = out["v_fill_flag"].values
    assert (flag[:, :3, :] == 2).all()
    assert flag[0, 5, 5] == 1
    assert np.isnan(out["v"].values[:, :3, :]).all()
    assert np.isfinite(out["v"].values[0, 5, 5])


def test_unnamed_dataarray_fills_the_same_through_accessor_and_function() -> None:
    """An unnamed DataArray takes the name of a one-variable model's variable, both ways."""
    model = make_model(["sst"], ["y", "x"], [8, 8])
    rng = np.random.default_rng(3)
    values = rng.normal(size=(2, 12, 12)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    da = xr.DataArray(values, dims=("t", "y", "x"))
    by_function = sparsediff.fill(da, model, steps=2, seed=1)
    by_accessor = da.sparsediff.fill(model, steps=2, seed=1)
    assert "sst" in by_accessor.data_vars
    for out in (by_function, by_accessor):
        out.attrs.pop("sparsediff_fill")  # holds the time of the fill
    xr.testing.assert_identical(by_accessor, by_function)


def test_seeds_beyond_32_bits_give_other_fills_and_bad_seeds_are_refused() -> None:
    rng = np.random.default_rng(8)
    ds, _ = _dataset(rng, ["a"], (2, 9, 9), ["t", "y", "x"], 0.4, 0.0, "float32")
    zero = sparsediff.fill(ds, PIXEL_2D, steps=2, seed=0)["a"].values
    wrapped = sparsediff.fill(ds, PIXEL_2D, steps=2, seed=2**32)["a"].values
    gaps = np.isnan(ds["a"].values)
    assert not np.array_equal(zero[gaps], wrapped[gaps])
    for bad in (-1, 1.5, "abc"):
        with pytest.raises(InputError, match="seed must be a non-negative integer"):
            sparsediff.fill(ds, PIXEL_2D, steps=2, seed=bad)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "heun"])
@pytest.mark.parametrize("model", [MODEL_2D, PIXEL_2D], ids=["latent", "pixel"])
def test_stochastic_samplers_do_not_depend_on_batch_size(sampler: str, model) -> None:  # type: ignore[no-untyped-def]
    """Each window's per-step noise comes from its own key, not from its batch's first
    window: batch_size 16 and 1 agree to float rounding (they differed by up to 1.13)."""
    rng = np.random.default_rng(9)
    ds, _ = _dataset(rng, model.variables, (2, 12, 20), ["t", "y", "x"], 0.4, 0.0, "float32")
    kw = {"steps": 4, "sampler": sampler, "seed": 3, "members": 2}
    big = sparsediff.fill(ds, model, batch_size=16, **kw)
    one = sparsediff.fill(ds, model, batch_size=1, **kw)
    for v in model.variables:
        gaps = big[f"{v}_fill_flag"].values == 1
        a, b = big[v].values, one[v].values
        assert gaps.sum() > 50
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4 * float(ds[v].std()))
        # the members differ (the noise is not the same for every window either)
        assert not np.allclose(a[0][gaps], a[1][gaps])


def test_noise_keys_differ_by_time_step_tile_and_member() -> None:
    # identical data at two time steps and in two tiles: only the keys tell them apart,
    # so equal fills would mean a key lost its time step, its tile origin or its member
    model = make_model(["a"], ["y", "x"], [8, 8], seed=2)
    rng = np.random.default_rng(0)
    tile = rng.normal(size=(8, 8)).astype("float32")
    tile[2:6, 2:6] = np.nan
    field = np.concatenate([tile, tile], axis=1)  # two identical 8 x 8 tiles side by side
    data = np.stack([field, field])  # two identical time steps
    ds = xr.Dataset({"a": (("t", "y", "x"), data)})
    out = sparsediff.fill(ds, model, members=2, steps=3, overlap=0)["a"].values
    gap = np.isnan(tile)
    left, right = out[..., :8], out[..., 8:]
    assert not np.allclose(out[:, 0][..., :8][:, gap], out[:, 1][..., :8][:, gap])  # time step
    assert not np.allclose(left[..., gap], right[..., gap])  # tile origin
    assert not np.allclose(out[0][..., :8][:, gap], out[1][..., :8][:, gap])  # member
