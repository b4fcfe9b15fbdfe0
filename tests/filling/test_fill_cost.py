"""The cost levers of a fill keep its numbers (issue 17).

Rows per call from the free memory, windows without a gap skipped, bfloat16
autocast and ``torch.compile``: observed points stay bit-identical, a fill
does not depend on the rows per call beyond float rounding, and the options
that are off by default give the same fill within stated tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import sparsediff
from sparsediff.data.masks import GAP
from sparsediff.filling.block import MAX_ROWS, _calls, row_bytes, rows_per_call, tile_plan_for
from sparsediff.method.base import _COMPILED
from tests.filling.conftest import make_model

MODEL = make_model(["a"], ["y", "x"], [8, 8], seed=4)


def _data(seed: int = 0, shape: tuple[int, int, int] = (3, 16, 32)) -> xr.Dataset:
    """Smooth values with one gap box at t=0, two at t=1 and none at t=2."""
    rng = np.random.default_rng(seed)
    t, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    values = np.sin(x / 5.0) + np.cos(y / 4.0) + 0.1 * t + 0.05 * rng.standard_normal(shape)
    values = values.astype("float32")
    values[0, 2:5, 3:7] = np.nan
    values[1, 9:12, 20:26] = np.nan
    values[1, 1:3, 28:31] = np.nan
    values[:, 14:, :4] = np.nan  # a corner missing at every step: invalid
    return xr.Dataset({"a": (("t", "y", "x"), values)})


def test_rows_per_call_is_a_power_of_two_within_bounds() -> None:
    per_row = row_bytes(MODEL, (8, 8))
    assert per_row > 8 * 8 * 4  # at least one float map of the window
    assert row_bytes(MODEL, (16, 16)) > 2 * per_row  # grows with the window
    rows = rows_per_call(MODEL, (8, 8))
    assert 1 <= rows <= MAX_ROWS
    assert rows & (rows - 1) == 0


def test_windows_without_a_gap_are_not_computed() -> None:
    ds = _data()
    plan = tile_plan_for(MODEL, (16, 32))
    missing = ds["a"].isnull().values
    invalid = missing.all(axis=0)  # the corner
    for t, expected_min in ((0, 1), (1, 2)):
        gap = (missing[t] & ~invalid)[None]
        calls = _calls(plan, gap, per_call=100, regroup=True)
        tiles = [tile for call in calls for tile in call]
        assert expected_min <= len(tiles) < len(plan.tiles)
        for tile in plan.tiles:
            has_gap = bool(plan.extract(gap[0], tile).any())
            assert has_gap == (tile in tiles)
    no_gap = np.zeros((1, 16, 32), dtype=bool)
    assert _calls(plan, no_gap, per_call=4, regroup=True) == []
    assert _calls(plan, no_gap, per_call=4, regroup=False) == []
    # an explicit batch size keeps the plan-order calls (whole calls skipped only)
    some = np.zeros((1, 16, 32), dtype=bool)
    some[0, 0, 0] = True
    kept = _calls(plan, some, per_call=4, regroup=False)
    assert kept == [plan.tiles[:4]]


def test_default_rows_and_skipping_give_the_fill_of_small_batches() -> None:
    ds = _data()
    auto = sparsediff.fill(ds, MODEL, members=3, steps=3, seed=2, invalid_along="t", device="cpu")
    small = sparsediff.fill(
        ds, MODEL, members=3, steps=3, seed=2, batch_size=3, invalid_along="t", device="cpu"
    )
    big = sparsediff.fill(
        ds, MODEL, members=3, steps=3, seed=2, batch_size=999, invalid_along="t", device="cpu"
    )
    flag = auto["a_fill_flag"].values
    assert (flag == GAP).sum() > 30
    assert (flag == 2).sum() == 3 * 2 * 4  # the corner, at every step
    observed = flag == 0
    for other in (small, big):
        np.testing.assert_array_equal(other["a_fill_flag"].values, flag)
        np.testing.assert_allclose(other["a"].values, auto["a"].values, rtol=1e-5, atol=1e-5)
    for out in (auto, small, big):
        for k in range(3):
            member = out["a"].values[k]
            np.testing.assert_array_equal(member[observed], ds["a"].values[observed])
            assert np.isnan(member[flag == 2]).all()
            assert np.isfinite(member[flag == GAP]).all()
    # the step without gaps is the input itself
    np.testing.assert_array_equal(
        auto["a"].values[:, 2], np.broadcast_to(ds["a"].values[2], (3, 16, 32))
    )
    # chunking along time gives the same bytes with the default rows
    lazy = sparsediff.fill(
        ds.chunk({"t": 1}), MODEL, members=3, steps=3, seed=2, invalid_along="t", device="cpu"
    )
    np.testing.assert_array_equal(lazy["a"].values, auto["a"].values)


def test_bfloat16_autocast_stays_within_its_tolerance() -> None:
    ds = _data(1)
    ref = sparsediff.fill(ds, MODEL, members=2, steps=3, seed=0, device="cpu")
    bf16 = sparsediff.fill(
        ds, MODEL, members=2, steps=3, seed=0, precision="bfloat16", device="cpu"
    )
    gaps = ref["a_fill_flag"].values == GAP
    a, b = ref["a"].values, bf16["a"].values
    observed = ref["a_fill_flag"].values == 0
    for k in range(2):
        np.testing.assert_array_equal(b[k][observed], ds["a"].values[observed])
    diff = np.abs(a[:, gaps] - b[:, gaps])
    scale = float(ds["a"].std())
    # stated tolerance: bf16 has 8 mantissa bits (rel. 0.4 %); through the networks
    # the fill moves by at most 5 % of the data's spread, 1 % on average
    assert diff.max() <= 0.05 * scale
    assert diff.mean() <= 0.01 * scale
    assert diff.max() > 0  # it did run in bfloat16


def test_compile_gives_the_same_fill() -> None:
    pytest.importorskip("torch._dynamo")
    ds = _data(2, shape=(2, 8, 16))
    model = make_model(["a"], ["y", "x"], [8, 8], seed=5)
    ref = sparsediff.fill(ds, model, members=2, steps=2, seed=0, device="cpu")
    torch._dynamo.reset()
    comp = sparsediff.fill(ds, model, members=2, steps=2, seed=0, compile="aot_eager", device="cpu")
    # the captured graphs run the same kernels: float rounding at most
    np.testing.assert_allclose(comp["a"].values, ref["a"].values, rtol=1e-5, atol=1e-5)
    assert ("decode", "aot_eager") in _COMPILED[model.nets["autoencoder"]]
    assert ("prior", "aot_eager") in _COMPILED[model.nets["prior"]]
