"""``laplace_eof``: Laplace relaxation around the record's EOFs, interpolated optimally per step."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sparsediff.errors import ConfigError
from sparsediff.evaluation.baselines import LaplaceEOF, get_baseline


def _record(steps: int = 40, seed: int = 0) -> tuple[xr.DataArray, np.ndarray]:
    """Two large-scale modes with random amplitudes per step, small noise; a box gap per step."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, np.pi, 24), np.linspace(0, 2 * np.pi, 32), indexing="ij")
    modes = np.stack([np.sin(y) * np.cos(x), np.cos(2 * y) * np.sin(x)])
    amp = rng.normal(size=(steps, 2)) * [2.0, 1.0]
    truth = 10.0 + np.tensordot(amp, modes, axes=1) + 0.02 * rng.normal(size=(steps, 24, 32))
    hole = np.zeros(truth.shape, dtype=bool)
    for t in range(steps):
        i, j = rng.integers(0, 12), rng.integers(0, 16)
        hole[t, i : i + 12, j : j + 16] = True  # a quarter of the field, one box
    da = xr.DataArray(truth, dims=("time", "y", "x"), name="v")
    return da, hole


def test_eof_background_beats_laplace_on_a_low_rank_record() -> None:
    truth, hole = _record()
    data = truth.where(~hole)
    eof = LaplaceEOF()
    got = eof.fill(data, dims=("y", "x")).values
    lap = get_baseline("laplace").fill(data, dims=("y", "x")).values
    rmse_eof = np.sqrt(np.mean((got - truth.values)[hole] ** 2))
    rmse_lap = np.sqrt(np.mean((lap - truth.values)[hole] ** 2))
    assert rmse_eof < 0.3 * rmse_lap, (rmse_eof, rmse_lap)
    # the two modes need at least two EOFs; cross-validation saw every candidate < steps
    assert eof.chosen_modes_ == [min(eof.cv_errors_[0], key=eof.cv_errors_[0].__getitem__)]
    assert eof.chosen_modes_[0] >= 2
    assert set(eof.cv_errors_[0]) == {1, 2, 4, 8, 16, 32}
    np.testing.assert_array_equal(got[~hole], truth.values[~hole])  # observed kept exactly


def test_same_seed_same_fill_and_cv_hides_only_observed_points() -> None:
    truth, hole = _record(steps=12, seed=1)
    data = truth.where(~hole)
    a = LaplaceEOF(seed=3).fill(data, dims=("y", "x")).values
    b = LaplaceEOF(seed=3).fill(data, dims=("y", "x")).values
    np.testing.assert_array_equal(a, b)
    eof = LaplaceEOF(cv_fraction=0.05)
    observed = ~hole
    cv = eof._cv_points(observed, np.ones_like(observed))
    assert cv.any()
    assert not (cv & hole).any()
    # whole copied gaps (each a quarter of a field here): the first, then none that overflow
    assert cv.sum() <= max(0.05 * observed.sum(), hole.reshape(12, -1).sum(axis=1).max())
    for t in np.flatnonzero(cv.reshape(12, -1).any(axis=1)):  # a whole gap of another step
        assert any((cv[t] == observed[t] & hole[u]).all() for u in range(12) if u != t)


def test_a_record_without_gaps_is_validated_at_random_points_and_modes_reset() -> None:
    truth, _ = _record(steps=12, seed=2)
    eof = LaplaceEOF(cv_fraction=0.1)
    full = np.ones(truth.shape, dtype=bool)
    cv = eof._cv_points(full, full)
    assert 0.05 * full.sum() < cv.sum() < 0.15 * full.sum()  # random points, about 10 %
    gappy = truth.copy()
    gappy[5, 2:6, 3:9] = np.nan  # one gap: the only donor, copied onto the other steps
    eof.fill(gappy, dims=("y", "x"))
    eof.fill(gappy, dims=("y", "x"))
    assert len(eof.chosen_modes_) == 1  # one block per call, reset by each call
    assert set(eof.cv_errors_[0]) == {1, 2, 4, 8}  # at most steps - 2 modes


def test_short_record_and_bad_options() -> None:
    truth, hole = _record(steps=2)
    short = LaplaceEOF()
    out = short.fill(truth.where(~hole), dims=("y", "x"))  # too short: Laplace's fill
    assert short.chosen_modes_ == [0]
    lap = get_baseline("laplace").fill(truth.where(~hole), dims=("y", "x"))
    xr.testing.assert_allclose(out, lap)
    with pytest.raises(ConfigError, match="modes"):
        LaplaceEOF(modes=[0, 4])
    with pytest.raises(ConfigError, match="cv_fraction"):
        LaplaceEOF(cv_fraction=1.5)


def test_nothing_to_hide_for_the_validation_gives_laplaces_fill() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(4, 6, 6))
    observed = np.zeros(values.shape, dtype=bool)
    for t, (i, j) in enumerate([(0, 0), (1, 2), (3, 4), (5, 5)]):
        observed[t, i, j] = True  # one observed point per step: no copied gap can take it
    eof = LaplaceEOF(cv_fraction=0.01)
    assert not eof._cv_points(observed, np.ones_like(observed)).any()
    data = xr.DataArray(np.where(observed, values, np.nan), dims=("time", "y", "x"))
    got = eof.fill(data, dims=("y", "x"))
    assert eof.chosen_modes_ == [0]
    assert eof.cv_errors_ == [{}]
    xr.testing.assert_allclose(got, get_baseline("laplace").fill(data, dims=("y", "x")))
