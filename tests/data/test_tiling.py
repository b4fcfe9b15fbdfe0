"""Tests of sparsediff.data.tiling: coverage, exact identity stitching, blending."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsediff.data.tiling import Tile, TilePlan, blend_weights, plan_tiles, window_starts
from sparsediff.errors import InputError


def _stitch(
    plan: TilePlan, outputs: list[np.ndarray], weights: np.ndarray | None = None
) -> np.ndarray:
    """Blend one output per tile (in plan order), as a fill does tile by tile."""
    assert len(outputs) == len(plan.tiles)
    acc = plan.accumulator(weights)
    for tile, output in zip(plan.tiles, outputs, strict=True):
        acc.add(tile, output)
    return acc.result()


def _identity(plan: TilePlan, array: np.ndarray) -> np.ndarray:
    return _stitch(plan, [plan.extract(array, tile) for tile in plan])


def _coverage(plan: TilePlan) -> np.ndarray:
    """How many times each point is pasted by the plan's tiles."""
    count = np.zeros(plan.shape, dtype=int)
    for tile in plan:
        for combo in itertools.product(*tile.segments):
            count[tuple(g for _, g in combo)] += 1
    return count


CASES = [
    # shape, window, overlap, periodic
    ((18, 432), (16, 64), None, (False, True)),  # OSTIA-like global grid
    ((100, 100), (32, 32), None, None),
    ((37, 53), (16, 16), (5, 3), None),  # odd sizes
    ((5, 7), (8, 8), None, None),  # domain smaller than the window: padding
    ((5, 7), (8, 8), None, (True, True)),  # smaller and periodic: wrapping
    ((3, 1), (4, 4), (1, 1), None),  # single-point dim
    ((9, 33, 21), (4, 8, 8), None, (False, False, True)),  # 3D, periodic last dim
    ((7, 19, 40), (8, 8, 8), (2, 0, 3), None),  # 3D, a dim smaller than the window
    ((16, 16), (16, 16), (0, 0), None),  # exactly one tile
]


@pytest.mark.parametrize(("shape", "window", "overlap", "periodic"), CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_stitch_is_exact(shape, window, overlap, periodic, dtype) -> None:
    plan = plan_tiles(shape, window, overlap=overlap, periodic=periodic)
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((2, 3, *shape)) * 1e3).astype(dtype)
    array[0, 0].reshape(-1)[:: max(1, array[0, 0].size // 7)] = np.nan  # NaNs survive too
    out = _identity(plan, array)
    assert out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)
    # no leading dims either
    np.testing.assert_array_equal(_identity(plan, array[1, 2]), array[1, 2])


@pytest.mark.parametrize(("shape", "window", "overlap", "periodic"), CASES)
def test_tiles_cover_domain_with_requested_overlap(shape, window, overlap, periodic) -> None:
    plan = plan_tiles(shape, window, overlap=overlap, periodic=periodic)
    assert _coverage(plan).min() >= 1
    assert len(plan) == int(np.prod(plan.grid))
    assert [t.index for t in plan] == list(range(len(plan)))
    origins = {t.origin for t in plan}
    assert len(origins) == len(plan)  # origins identify tiles (seeds for noise)
    array = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    for tile in plan:
        assert plan.extract(array, tile).shape == plan.window
    for d, (n, w, o) in enumerate(zip(plan.shape, plan.window, plan.overlap)):
        origin_d = sorted({t.origin[d] for t in plan})
        if n < w and not plan.periodic[d]:
            assert origin_d == [0]
            assert plan.tiles[0].pad[d] == ((w - n) // 2, w - n - (w - n) // 2)
            continue
        steps = np.diff(origin_d)
        if plan.periodic[d]:
            # evenly spread around the circle, neighbours share at least `overlap` points
            wrap = origin_d[0] + n - origin_d[-1]
            all_steps = [*steps.tolist(), wrap]
            assert max(all_steps) - min(all_steps) <= 1
            assert max(all_steps) <= w - o
        else:
            assert origin_d[0] == 0
            assert origin_d[-1] == n - w
            assert all(s <= w - o for s in steps)
            assert all(s == w - o for s in steps[:-1])


def test_periodic_longitude_has_no_seam() -> None:
    """Tiles wrap across the date line: the first and last columns share tiles."""
    plan = plan_tiles((18, 432), (16, 64), periodic=(False, True))
    wrapping = [t for t in plan if len(t.segments[1]) == 2]
    assert wrapping, "some tile must wrap around the longitude"
    lon = np.broadcast_to(np.arange(432.0), (18, 432))
    for tile in wrapping:
        cols = plan.extract(lon, tile)[0]
        assert cols[0] > cols[-1]  # e.g. 400 ... 431, 0 ... 31
        np.testing.assert_array_equal(np.diff(cols) % 432, 1)


def test_padding_reflects_and_is_cropped() -> None:
    plan = plan_tiles((3, 10), (7, 4), overlap=(0, 0), pad_mode="reflect")
    array = np.arange(30.0).reshape(3, 10)
    tile = plan.tiles[0]
    assert tile.pad[0] == (2, 2)
    np.testing.assert_array_equal(plan.extract(array, tile)[:, 0], [20, 10, 0, 10, 20, 10, 0])
    edge = plan_tiles((3, 10), (7, 4), overlap=(0, 0), pad_mode="edge")
    np.testing.assert_array_equal(
        edge.extract(array, edge.tiles[0])[:, 0], [0, 0, 0, 10, 20, 20, 20]
    )
    # padded values never leak into the result
    outputs = [plan.extract(array, t).copy() for t in plan]
    for out, t in zip(outputs, plan):
        before, after = t.pad[0]
        out[:before] = out[out.shape[0] - after :] = 1e9
    np.testing.assert_array_equal(_stitch(plan, outputs), array)


@pytest.mark.parametrize(("shape", "window", "overlap", "periodic"), CASES)
def test_blending_a_constant_gives_the_constant(shape, window, overlap, periodic) -> None:
    plan = plan_tiles(shape, window, overlap=overlap, periodic=periodic)
    outputs = [np.full((2, *plan.window), 0.1) for _ in plan]
    np.testing.assert_array_equal(_stitch(plan, outputs), np.full((2, *shape), 0.1))


def test_blending_is_a_smooth_weighted_mean() -> None:
    """Tile outputs that disagree are averaged with the cosine weights (no jumps)."""
    plan = plan_tiles((64,), 32, overlap=16)
    assert [t.origin for t in plan] == [(0,), (16,), (32,)]
    outputs = [np.full(32, float(i)) for i in range(3)]
    out = _stitch(plan, outputs)
    np.testing.assert_array_equal(out[:16], 0.0)
    np.testing.assert_array_equal(out[-16:], 2.0)
    assert np.all(np.diff(out) >= 0)
    assert np.abs(np.diff(out)).max() < 0.2
    # in the overlap of two neighbours the weights form a partition of unity
    w = blend_weights(32, 16)
    np.testing.assert_allclose(w[16:] + w[:16], 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(out[16:32], w[16:] * 0 + w[:16] * 1, atol=1e-12)


def test_blend_weights_properties() -> None:
    w = blend_weights((16, 12, 8), (4, 3, 0))
    assert w.shape == (16, 12, 8)
    assert w.dtype == np.float64
    assert w.min() > 0
    assert w.max() == 1.0
    assert np.all(w[4:12, 3:9, :] == 1.0)
    np.testing.assert_array_equal(w, w[::-1, ::-1, ::-1])  # symmetric
    assert np.all(blend_weights((5, 5), (0, 0)) == 1.0)
    heavy = blend_weights(6, 5)  # ramps longer than half the window: still positive
    assert heavy.min() > 0
    assert np.all(heavy == heavy[::-1])


def test_accumulator_streams_in_any_order() -> None:
    plan = plan_tiles((40, 90), (16, 32), periodic=(False, True))
    rng = np.random.default_rng(1)
    outputs = [rng.standard_normal((3, *plan.window)) for _ in plan]
    full = _stitch(plan, outputs)
    acc = plan.accumulator()
    for i in rng.permutation(len(plan)):  # batches arrive in any order
        acc.add(plan.tiles[i], outputs[i])
    np.testing.assert_allclose(acc.result(), full, rtol=1e-14, atol=1e-14)


def test_uncovered_points_are_nan_and_custom_weights() -> None:
    plan = plan_tiles((20, 20), (8, 8), overlap=(2, 2))
    acc = plan.accumulator()
    acc.add(plan.tiles[0], np.ones((8, 8)))
    out = acc.result()
    assert np.isnan(out[10:, 10:]).all()
    assert (out[:8, :8] == 1).all()
    weights = np.ones((8, 8))
    flat = _stitch(plan, [np.full((8, 8), float(t.index)) for t in plan], weights=weights)
    # equal weights: the overlap of tiles 0 and 1 is their plain mean
    assert flat[0, 6] == 0.5


def test_bad_input_is_rejected() -> None:
    with pytest.raises(InputError, match="overlap"):
        plan_tiles((32, 32), 16, overlap=16)
    with pytest.raises(InputError, match="spatial dims"):
        plan_tiles((32, 32), (16, 16, 16))
    with pytest.raises(InputError, match="periodic"):
        plan_tiles((32, 32), 16, periodic=(True,))
    with pytest.raises(InputError, match="pad_mode"):
        plan_tiles((32, 32), 16, pad_mode="zeros")  # type: ignore[arg-type]
    plan = plan_tiles((32, 32), 16)
    with pytest.raises(InputError, match="last 2 dims"):
        plan.extract(np.zeros((32, 31)), plan.tiles[0])
    with pytest.raises(InputError, match="tile output"):
        plan.accumulator().add(plan.tiles[0], np.zeros((15, 16)))
    with pytest.raises(InputError, match="positive"):
        plan.accumulator(np.zeros((16, 16)))


def test_window_starts() -> None:
    assert window_starts(10, 4, 4) == [0, 4, 6]
    assert window_starts(8, 4, 4) == [0, 4]
    assert window_starts(4, 4, 1) == [0]
    assert window_starts(10, 3, 2) == [0, 2, 4, 6, 7]
    with pytest.raises(InputError):
        window_starts(3, 4, 4)


def test_extract_works_on_dask_arrays() -> None:
    da = pytest.importorskip("dask.array")
    array = np.random.default_rng(2).standard_normal((2, 30, 50))
    lazy = da.from_array(array, chunks=(1, 10, 25))
    plan = plan_tiles((30, 50), (16, 16), periodic=(False, True))
    for tile in plan:
        np.testing.assert_array_equal(
            np.asarray(plan.extract(lazy, tile)), plan.extract(array, tile)
        )


@st.composite
def _plans(draw: st.DrawFn) -> tuple[TilePlan, tuple[int, ...]]:
    ndim = draw(st.sampled_from([1, 2, 3]))
    top = {1: 60, 2: 30, 3: 12}[ndim]
    shape = tuple(draw(st.integers(1, top)) for _ in range(ndim))
    window = tuple(draw(st.integers(1, 16)) for _ in range(ndim))
    overlap = tuple(draw(st.integers(0, w - 1)) for w in window)
    periodic = tuple(draw(st.booleans()) for _ in range(ndim))
    pad_mode = draw(st.sampled_from(["reflect", "edge"]))
    lead = draw(st.sampled_from([(), (2,)]))
    plan = plan_tiles(shape, window, overlap=overlap, periodic=periodic, pad_mode=pad_mode)
    return plan, lead


@settings(max_examples=100, deadline=None)
@given(_plans(), st.integers(0, 2**32 - 1))
def test_property_identity_and_coverage(case: tuple[TilePlan, tuple[int, ...]], seed: int) -> None:
    plan, lead = case
    assert _coverage(plan).min() >= 1
    rng = np.random.default_rng(seed)
    array = rng.standard_normal((*lead, *plan.shape)).astype(rng.choice([np.float32, np.float64]))
    np.testing.assert_array_equal(_identity(plan, array), array)
    constant = np.full(plan.shape, 2.5)
    np.testing.assert_array_equal(_identity(plan, constant), constant)
    assert isinstance(plan.tiles[0], Tile)


def test_gaps_and_tiling_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sparsediff.data.gaps, sparsediff.data.tiling; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_variance_preserving_blend_keeps_the_spread_in_overlaps() -> None:
    from sparsediff.data.tiling import plan_tiles

    plan = plan_tiles((8, 40), (8, 16), overlap=(0, 8))
    rng = np.random.default_rng(0)
    plain, kept = [], []
    for _ in range(400):
        a, b = plan.accumulator(), plan.accumulator(variance_preserving=True)
        for t in plan.tiles:
            x = rng.normal(size=(8, 16))
            a.add(t, x)
            b.add(t, x)
        plain.append(a.result())
        kept.append(b.result())
    var_plain = np.var(plain, axis=0).mean(axis=0)
    var_kept = np.var(kept, axis=0).mean(axis=0)
    # averaging independent tiles shrinks the variance where they overlap ...
    assert var_plain.min() < 0.7
    # ... a variance-preserving blend keeps it at 1 everywhere
    np.testing.assert_allclose(var_kept, 1.0, atol=0.15)
