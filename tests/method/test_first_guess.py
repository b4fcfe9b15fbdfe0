"""The first guess: exact at shown points, 0 at inactive ones, close to the exact Laplace solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsediff.errors import InputError
from sparsediff.laplace.sparse import harmonic_solve
from sparsediff.method.first_guess import first_guess, harmonic_fill, normalized_convolution


def _smooth(shape: tuple[int, ...]) -> np.ndarray:
    grids = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    return np.sin(2.0 * grids[0]) + np.cos(1.5 * grids[1]) + (grids[2] if len(shape) == 3 else 0)


def _box(shape: tuple[int, ...], size: int) -> np.ndarray:
    known = np.ones(shape, dtype=bool)
    centre = tuple(slice(n // 2 - size // 2, n // 2 - size // 2 + size) for n in shape)
    known[centre] = False
    return known


@pytest.mark.parametrize("name", ["laplace", "normconv", "zero"])
@pytest.mark.parametrize("shape", [(12, 20), (8, 10, 12)])
def test_shown_points_are_kept_and_inactive_points_are_zero(
    name: str, shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(0)
    values = torch.from_numpy(rng.normal(size=(2, 1, *shape)))
    known = torch.from_numpy(rng.random((2, 1, *shape)) > 0.5)
    active = torch.from_numpy(rng.random((2, 1, *shape)) > 0.1)
    # values at unknown points must not matter (NaN there is fine)
    poisoned = torch.where(known, values, torch.full_like(values, float("nan")))
    out = first_guess(name, poisoned, known, active)
    keep = known & active
    assert torch.equal(out[keep], values[keep])
    assert torch.equal(out[~active], torch.zeros_like(out[~active]))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("shape", [(24, 40), (16, 16, 20)])
def test_laplace_recovers_a_smooth_field_through_a_small_gap(shape: tuple[int, ...]) -> None:
    truth = _smooth(shape)
    known = _box(shape, 4)
    out = harmonic_fill(torch.from_numpy(truth)[None, None], torch.from_numpy(known)[None, None])[
        0, 0
    ].numpy()
    err = np.abs(out - truth)[~known]
    # stated tolerance: a 4-point gap in a field varying by O(1) over the domain
    assert err.max() < 0.05, err.max()
    # the same harmonic interpolant as the exact sparse solve of the baseline
    exact = harmonic_solve(
        truth,
        known,
        np.ones(shape, bool),
        (False,) * len(shape),
        tol=1e-12,
        iters=10_000,
        direct_max=100_000,
    )
    assert np.abs(out - exact)[~known].max() < 1e-3


def test_laplace_matches_the_exact_solve_on_a_large_anisotropic_gap() -> None:
    rng = np.random.default_rng(3)
    shape = (18, 432)  # the OSTIA grid: coarsening must not stop at the short dim
    truth = np.cumsum(rng.normal(size=shape), axis=1) / 10
    known = np.ones(shape, bool)
    known[3:15, 100:300] = False
    out = harmonic_fill(
        torch.from_numpy(truth)[None, None],
        torch.from_numpy(known)[None, None],
        periodic=(False, True),
    )[0, 0].numpy()
    exact = harmonic_solve(
        truth,
        known,
        np.ones(shape, bool),
        (False, True),
        tol=1e-12,
        iters=20_000,
        direct_max=100_000,
    )
    scale = np.abs(exact[~known]).max()
    assert np.abs(out - exact)[~known].max() < 0.02 * scale


def test_periodic_dim_wraps() -> None:
    shape = (4, 32)
    values = np.zeros(shape)
    known = np.zeros(shape, bool)
    values[:, 2], values[:, 29] = 1.0, -1.0
    known[:, [2, 29]] = True
    v, k = torch.from_numpy(values)[None, None], torch.from_numpy(known)[None, None]
    wrapped = harmonic_fill(v, k, periodic=(False, True))[0, 0]
    flat = harmonic_fill(v, k, periodic=(False, False))[0, 0]
    # without wrapping, the edge columns copy their nearest known column (zero flux)
    assert torch.allclose(flat[:, 0], torch.ones(4, dtype=flat.dtype), atol=1e-3)
    # with wrapping, they lie on the short path from -1 (column 29) to 1 (column 2)
    expected = -1.0 + 2.0 * (32 - 29) / 5  # column 0 is 3 of the 5 steps along
    assert torch.allclose(wrapped[:, 0], torch.full((4,), expected, dtype=flat.dtype), atol=1e-3)


def test_normalized_convolution_is_smooth_and_bounded() -> None:
    shape = (20, 30)
    truth = _smooth(shape)
    known = _box(shape, 6)
    out = normalized_convolution(
        torch.from_numpy(truth)[None, None], torch.from_numpy(known)[None, None]
    )[0, 0].numpy()
    assert out[~known].min() >= truth[known].min() - 1e-9
    assert out[~known].max() <= truth[known].max() + 1e-9
    assert np.abs(out - truth)[~known].max() < 0.3


def test_nothing_known_gives_zeros_and_bad_input_is_clear() -> None:
    v = torch.ones(1, 1, 8, 8)
    k = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    assert torch.equal(harmonic_fill(v, k), torch.zeros_like(v))
    with pytest.raises(InputError, match="unknown first guess"):
        first_guess("kriging", v, k)
    with pytest.raises(InputError, match="one shape"):
        harmonic_fill(v, k[..., :4])
    with pytest.raises(InputError, match="spatial dims"):
        harmonic_fill(v[0], k[0])


def test_batched_rows_do_not_interact() -> None:
    # converged rows stay put while others iterate (a converged system iterated on
    # amplifies rounding into NaN); rows without known points stay finite
    rng = np.random.default_rng(7)
    n, shape = 12, (20, 40)
    values = torch.from_numpy(rng.normal(size=(n, 1, *shape)).cumsum(-1))
    known = torch.from_numpy(rng.random((n, 1, *shape)) > rng.uniform(0.05, 0.95, (n, 1, 1, 1)))
    known[3] = False
    known[5, :, :, 10:] = False
    together = harmonic_fill(values, known)
    assert torch.isfinite(together).all()
    for i in range(n):
        alone = harmonic_fill(values[i : i + 1], known[i : i + 1])
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-6, atol=1e-6)
