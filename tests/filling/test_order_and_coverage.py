"""Results that used to be silently wrong: steps out of order, a rule that removes every
observation, steps without observations (issue 19, items 1, 2 and 4)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.data.coverage import MAX_REMOVED_SHARE
from sparsediff.errors import ConfigError, InputError, SparsediffWarning
from tests.filling.conftest import make_model

DATA = {"mean": 20.0, "std": 5.0}
CONTEXT = make_model(["v"], ["y", "x"], [8, 8], context_dim="time", context_offsets=[-1, 1], **DATA)
PLAIN = make_model(["v"], ["y", "x"], [8, 8], **DATA)
TIMES = np.array(
    ["2001-01-16", "2001-02-15", "2001-03-16", "2001-04-16", "2001-05-16", "2001-06-16"],
    dtype="datetime64[ns]",
)


def _series(seed: int = 0, gap: float = 0.4) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    values = rng.normal(20.0, 5.0, size=(TIMES.size, 10, 12)).astype("float32")
    values[rng.random(values.shape) < gap] = np.nan
    return xr.Dataset(
        {"v": (("time", "y", "x"), values)},
        coords={"time": TIMES, "y": np.arange(10.0), "x": np.arange(12.0)},
    )


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "dask"])
def test_shuffled_steps_give_the_sorted_fill_in_the_input_order(lazy: bool) -> None:
    ds = _series()
    order = [3, 0, 5, 1, 4, 2]
    shuffled = ds.isel(time=order)
    if lazy:
        shuffled = shuffled.chunk({"time": 2})
    ref = sparsediff.fill(ds, CONTEXT, seed=3)
    got = sparsediff.fill(shuffled, CONTEXT, seed=3)
    np.testing.assert_array_equal(got["time"].values, TIMES[order])
    expected = ref.isel(time=order)
    np.testing.assert_allclose(got["v"].values, expected["v"].values, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got["v_fill_flag"].values, expected["v_fill_flag"].values)
    # observed points are still the input's, at the input's positions
    obs = np.isfinite(shuffled["v"].values)
    np.testing.assert_array_equal(got["v"].values[obs], shuffled["v"].values[obs])
    # taken by position, the context differs (so the test above can fail)
    by_position = sparsediff.fill(shuffled.assign_coords(time=TIMES), CONTEXT, seed=3)
    assert not np.allclose(by_position["v"].values, expected["v"].values)


def test_decreasing_steps_are_filled_in_increasing_order() -> None:
    ds = _series(1)
    ref = sparsediff.fill(ds, CONTEXT, seed=0)
    got = sparsediff.fill(ds.isel(time=slice(None, None, -1)), CONTEXT, seed=0)
    np.testing.assert_allclose(got["v"].values, ref["v"].values[::-1], rtol=0, atol=1e-6)


def test_repeated_steps_of_the_context_dim_are_refused() -> None:
    ds = _series().assign_coords(time=TIMES[[0, 1, 1, 2, 3, 4]])
    with pytest.raises(
        InputError, match=r"the 'time' coordinate repeats 1 value\(s\) \(2001-02-15"
    ):
        sparsediff.fill(ds, CONTEXT)
    # a model without context does not care about the order
    assert sparsediff.fill(ds, PLAIN)["v"].shape == ds["v"].shape


@pytest.mark.parametrize("below", [np.inf, 1e6])
def test_a_rule_that_removes_every_observation_is_refused(below: float) -> None:
    with pytest.raises(InputError, match=r"the invalid rule \(.*values <= .*\) marks all of the"):
        sparsediff.fill(_series(), PLAIN, invalid_below=below)


def test_a_rule_that_removes_nearly_every_observation_is_refused_and_half_is_not() -> None:
    ds = _series(gap=0.0)
    flat = np.sort(ds["v"].values.ravel())
    share = MAX_REMOVED_SHARE + 0.005
    cut = float(flat[int(share * flat.size)])
    with pytest.raises(InputError, match=r"marks 99\.\d% \(\d+,?\d*\) of the 720 observed"):
        sparsediff.fill(ds, PLAIN, invalid_below=cut)
    out = sparsediff.fill(ds, PLAIN, invalid_below=float(np.median(flat)))
    assert 0.45 < float((out["v_fill_flag"] == 2).mean()) < 0.55


def test_a_user_mask_that_covers_every_observation_is_refused() -> None:
    ds = _series()
    mask = xr.DataArray(np.ones((10, 12), bool), dims=("y", "x"))
    with pytest.raises(InputError, match=r"the invalid rule \(the invalid mask given\) marks all"):
        sparsediff.fill(ds, PLAIN, invalid=mask)


def _with_empty_steps(ds: xr.Dataset, steps: list[int]) -> xr.Dataset:
    ds = ds.copy(deep=True)
    ds["v"][steps] = np.nan
    return ds


def test_steps_without_observations_warn_with_the_steps_and_count() -> None:
    ds = _with_empty_steps(_series(), [1, 4])
    with pytest.warns(SparsediffWarning) as caught:
        out = sparsediff.fill(ds, PLAIN)
    texts = [str(w.message) for w in caught if "no observed point" in str(w.message)]
    assert len(texts) == 1, [str(w.message) for w in caught]
    assert "2 of 6 steps of 'v'" in texts[0]
    assert "time=2001-02-15 (0%)" in texts[0]
    assert "time=2001-05-16 (0%)" in texts[0]
    assert (out["v_fill_flag"].isel(time=[1, 4]) == 1).all()
    with warnings.catch_warnings():  # complete steps: no warning
        warnings.simplefilter("error", SparsediffWarning)
        sparsediff.fill(_series(), PLAIN)


def test_min_observed_share_refuses_steps_below_it() -> None:
    ds = _series(gap=0.4)
    ds["v"][2, :, :6] = np.nan  # step 2: about 30 % observed
    with pytest.raises(
        InputError,
        match=r"1 of 6 steps of 'v' have an observed share below 0\.45: time=2001-03-16 \(\d+%\)",
    ):
        sparsediff.fill(ds, PLAIN, min_observed_share=0.45)
    out = sparsediff.fill(ds, PLAIN, min_observed_share=0.2)
    assert out["v"].shape == ds["v"].shape
    # invalid points do not count against a step: 50 % land, the sea all observed
    land = _series(gap=0.0)
    land["v"][:, :, :6] = np.nan
    sparsediff.fill(land, PLAIN, min_observed_share=1.0, invalid_along="time")


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_min_observed_share_must_be_a_share(bad: object) -> None:
    with pytest.raises(ConfigError, match="min_observed_share must be a number in"):
        sparsediff.fill(_series(), PLAIN, min_observed_share=bad)  # type: ignore[arg-type]


def test_a_half_written_zarr_input_warns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A store whose last steps are not written yet reads as NaN there."""
    ds = _series(gap=0.2)
    store = tmp_path / "half.zarr"
    # compute=False writes numpy data at once: the dask-backed variable is left unwritten
    ds.chunk({"time": 1}).to_zarr(store, compute=False)
    ds.isel(time=slice(0, 4)).drop_vars(["y", "x"]).to_zarr(
        store, region={"time": slice(0, 4)}, mode="r+"
    )
    with pytest.warns(SparsediffWarning, match=r"2 of 6 steps of 'v' have no observed point"):
        sparsediff.fill(sparsediff.open(store), PLAIN)
