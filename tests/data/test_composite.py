"""sparsediff.data.composite: observed points kept bit for bit, invalid NaN, gaps filled."""

from __future__ import annotations

import numpy as np

from sparsediff.data.composite import composite
from sparsediff.data.masks import GAP, INVALID, OBSERVED


def _case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    state = rng.choice(np.array([OBSERVED, GAP, INVALID], dtype=np.uint8), size=(3, 5, 7))
    original = rng.normal(size=state.shape).astype(np.float32)
    original[state == GAP] = np.nan
    return original, state


def test_composite_keeps_observed_and_blanks_invalid_for_every_member() -> None:
    original, state = _case()
    filled = np.full((2, *state.shape), 9.0, dtype=np.float32)  # two members
    out = composite(filled, original, state)
    assert out is filled  # in place without a dtype
    for member in out:
        np.testing.assert_array_equal(member[state == OBSERVED], original[state == OBSERVED])
        assert np.isnan(member[state == INVALID]).all()
        assert (member[state == GAP] == 9.0).all()


def test_composite_casts_to_a_new_array() -> None:
    original, state = _case()
    filled = np.full(state.shape, 1.0 / 3.0)
    ints = np.where(np.isfinite(original), original * 10, 0).astype(np.int32)
    out = composite(filled, ints, state, dtype=np.float64)
    assert out is not filled
    assert (filled == 1.0 / 3.0).all()  # the input is untouched
    np.testing.assert_array_equal(out[state == OBSERVED], ints[state == OBSERVED])
    assert np.isnan(out[state == INVALID]).all()
