"""Tests of sparsediff.data.gaps: exact missing fractions, shapes, determinism, specs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsediff.data.gaps import PATTERNS, gap_mask, parse_pattern, random_training_mask
from sparsediff.errors import InputError

SHAPES = [(16, 16), (8, 16, 16), (64, 48), (20, 30, 10), (18, 432)]
FRACTIONS = [0.0, 0.05, 0.3, 0.5, 0.8, 0.95]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("shape", SHAPES)
def test_missing_fraction_is_exact(pattern: str, shape: tuple[int, ...]) -> None:
    size = math.prod(shape)
    for missing in FRACTIONS:
        for seed in range(4):
            mask = gap_mask(shape, pattern, missing, seed=seed)
            assert mask.dtype == np.bool_
            assert mask.shape == shape
            hidden = int((~mask).sum())
            assert hidden == round(missing * size)
            assert abs(hidden / size - missing) <= 0.02


@pytest.mark.parametrize("pattern", PATTERNS)
def test_same_seed_same_mask_other_seed_other_mask(pattern: str) -> None:
    a = gap_mask((32, 40), pattern, 0.4, seed=7)
    b = gap_mask((32, 40), pattern, 0.4, seed=7)
    c = gap_mask((32, 40), pattern, 0.4, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # a generator gives the same stream as the seed it was made from, and advances
    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(gap_mask((32, 40), pattern, 0.4, rng=rng), a)
    assert not np.array_equal(gap_mask((32, 40), pattern, 0.4, rng=rng), a)


def _neighbour_agreement(mask: np.ndarray) -> float:
    """Share of neighbouring point pairs (along every axis) in the same state."""
    same = total = 0
    for axis in range(mask.ndim):
        a = np.moveaxis(mask, axis, 0)
        same += int((a[1:] == a[:-1]).sum())
        total += a[1:].size
    return same / total


@pytest.mark.parametrize("shape", [(64, 64), (16, 32, 32)])
def test_structured_patterns_are_spatially_coherent(shape: tuple[int, ...]) -> None:
    for seed in range(5):
        mcar = _neighbour_agreement(gap_mask(shape, "mcar", 0.5, seed=seed))
        assert 0.4 < mcar < 0.6  # independent pixels: a coin flip
        for pattern in ("boxes", "stripes", "swath", "cloud"):
            agreement = _neighbour_agreement(gap_mask(shape, pattern, 0.5, seed=seed))
            assert agreement > 0.65, (pattern, seed, agreement)


@pytest.mark.parametrize("shape", [(64, 48), (12, 20, 16)])
def test_stripes_are_full_length_bands(shape: tuple[int, ...]) -> None:
    for seed in range(6):
        hidden = ~gap_mask(shape, "stripes", 0.3, seed=seed)
        on_full_band = np.zeros(shape, dtype=bool)
        for axis in range(len(shape)):
            others = tuple(a for a in range(len(shape)) if a != axis)
            full = hidden.all(axis=others, keepdims=True)  # whole slices along `axis`
            on_full_band |= np.broadcast_to(full, shape)
        # every hidden point lies on a fully hidden band, except those of the last
        # stripe, which is cut to hit the exact count (at most n // 8 slices wide)
        largest_stripe = max(max(1, n // 8) * hidden.size // n for n in shape)
        assert (hidden & ~on_full_band).sum() < largest_stripe
        assert (hidden & on_full_band).sum() > 0


def test_swath_bands_are_slanted() -> None:
    for seed in range(5):
        hidden = ~gap_mask((64, 64), "swath", 0.4, seed=seed)
        # slanted bands: no row and no column is entirely hidden or entirely kept ...
        rows, cols = hidden.mean(axis=1), hidden.mean(axis=0)
        assert ((rows > 0) & (rows < 1)).mean() > 0.5
        assert ((cols > 0) & (cols < 1)).mean() > 0.5
        # ... yet the field is made of a few coherent bands
        assert _neighbour_agreement(~hidden) > 0.9


def test_3d_swath_drifts_between_slices() -> None:
    mask = gap_mask((6, 40, 40), "swath", 0.4, seed=3)
    assert not all(np.array_equal(mask[0], mask[i]) for i in range(1, 6))


def test_mcar_is_uniform() -> None:
    masks = np.stack([gap_mask((20, 20), "mcar", 0.3, seed=s) for s in range(400)])
    per_point = 1 - masks.mean(axis=0)
    assert abs(per_point.mean() - 0.3) < 1e-12
    assert per_point.min() > 0.15
    assert per_point.max() < 0.45


def test_gap_mask_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="unknown gap pattern"):
        gap_mask((16, 16), "holes", 0.3, seed=0)
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        gap_mask((16, 16), "mcar", 1.0, seed=0)
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        gap_mask((16, 16), "mcar", -0.1, seed=0)
    with pytest.raises(InputError, match="2 or 3 dims"):
        gap_mask((16,), "mcar", 0.3, seed=0)
    with pytest.raises(InputError, match="positive"):
        gap_mask((0, 16), "mcar", 0.3, seed=0)
    with pytest.raises(InputError, match="not both"):
        gap_mask((16, 16), "mcar", 0.3, seed=0, rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mcar:0.5", ("mcar", 0.5)),
        ("boxes:0.3", ("boxes", 0.3)),
        (" Cloud : 0.25 ", ("cloud", 0.25)),
        ("swath:0", ("swath", 0.0)),
        ("stripes:.1", ("stripes", 0.1)),
    ],
)
def test_parse_pattern(spec: str, expected: tuple[str, float]) -> None:
    assert parse_pattern(spec) == expected


@pytest.mark.parametrize(
    "spec", ["mcar", "mcar:", "mcar:half", "holes:0.3", "mcar:1.0", "mcar:-0.2", "a:b:c", ""]
)
def test_parse_pattern_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(InputError):
        parse_pattern(spec)


def test_random_training_mask_rates_and_patterns() -> None:
    rng = np.random.default_rng(0)
    shape = (32, 32)
    fractions = []
    for _ in range(200):
        mask = random_training_mask(shape, rng, rate=(0.2, 0.6))
        assert mask.shape == shape
        assert mask.dtype == np.bool_
        fractions.append(1 - mask.mean())
    fractions_arr = np.array(fractions)
    assert fractions_arr.min() >= 0.2 - 1 / 1024
    assert fractions_arr.max() <= 0.6 + 1 / 1024
    assert fractions_arr.std() > 0.08  # the rate really varies
    # mixed shapes: both pixel-like and coherent masks appear
    agreement = [
        _neighbour_agreement(random_training_mask(shape, rng, rate=0.5)) for _ in range(100)
    ]
    assert min(agreement) < 0.6
    assert max(agreement) > 0.8


def test_random_training_mask_is_deterministic_and_restricted() -> None:
    a = [random_training_mask((8, 16, 16), np.random.default_rng(5)) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    rng = np.random.default_rng(1)
    for _ in range(20):
        mask = random_training_mask((64, 64), rng, rate=(0.5, 0.5), patterns=("mcar",))
        assert 0.4 < _neighbour_agreement(mask) < 0.6
        assert (~mask).sum() == 2048


@pytest.mark.parametrize("rate", [(0.5, 0.2), (0.1, 1.0), (-0.1, 0.3), "abc"])
def test_random_training_mask_rejects_bad_rate(rate: object) -> None:
    with pytest.raises(InputError):
        random_training_mask((16, 16), np.random.default_rng(0), rate=rate)  # type: ignore[arg-type]


def test_random_training_mask_rejects_unknown_pattern() -> None:
    with pytest.raises(InputError, match="unknown gap pattern"):
        random_training_mask((16, 16), np.random.default_rng(0), patterns=("mcar", "holes"))
