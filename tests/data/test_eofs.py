"""EOFs of a record and their optimal interpolation (`sparsediff.data.eofs`)."""

from __future__ import annotations

import numpy as np

from sparsediff.data import eofs


def _low_rank(steps: int = 30, points: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    modes = np.linalg.qr(rng.normal(size=(points, 2)))[0].T  # two orthonormal patterns
    return (rng.normal(size=(steps, 2)) * [10.0, 4.0]) @ modes


def test_truncated_is_the_svd_truncation() -> None:
    x = np.random.default_rng(1).normal(size=(12, 40))
    for wide in (x, x.T):
        got = eofs.truncated(wide, 3)
        uu, ss, vv = np.linalg.svd(wide, full_matrices=False)
        np.testing.assert_allclose(got, (uu[:, :3] * ss[:3]) @ vv[:3], atol=1e-10)


def test_interpolation_recovers_a_low_rank_step_from_half_its_points() -> None:
    x = _low_rank()
    basis = eofs.eof_basis(x)
    assert basis.patterns.shape == (200, 30)
    assert basis.variance[0] >= basis.variance[1] > 1e3 * basis.variance[2]
    shown = np.random.default_rng(2).random(x.shape) < 0.5
    got = eofs.interpolate(basis, np.where(shown, x, np.nan), shown, 2)
    np.testing.assert_allclose(got, x, atol=1e-3 * np.abs(x).max())
    # one mode cannot: the second pattern is left out
    assert np.abs(eofs.interpolate(basis, x, shown, 1) - x).max() > 0.1
    # a step with no shown point is 0; a single step works as (P,)
    empty = shown.copy()
    empty[0] = False
    assert (eofs.interpolate(basis, x, empty, 2)[0] == 0).all()
    np.testing.assert_allclose(eofs.interpolate(basis, x[3], shown[3], 2), got[3])


def test_shrinks_towards_zero_when_the_points_say_little() -> None:
    x = _low_rank()
    basis = eofs.eof_basis(x)
    few = np.zeros(x.shape, dtype=bool)
    few[:, :1] = True  # one point per step
    got = eofs.interpolate(basis, x, few, 2)
    assert np.linalg.norm(got, axis=1).mean() < np.linalg.norm(x, axis=1).mean()


def test_complete_low_rank_fills_missing_entries() -> None:
    x = _low_rank(seed=3) + 5.0  # a mean the sweeps take out and put back
    missing = np.random.default_rng(4).random(x.shape) < 0.3
    start = np.where(missing, 0.0, x)
    got = eofs.complete_low_rank(start, missing, 2, sweeps=500, tol=1e-9)
    np.testing.assert_array_equal(got[~missing], x[~missing])  # known entries untouched
    np.testing.assert_allclose(got[missing], x[missing], atol=1e-3 * np.abs(x).max())
    assert not np.shares_memory(got, start)
    same = eofs.complete_low_rank(x, np.zeros_like(missing), 2)
    np.testing.assert_array_equal(same, x)
