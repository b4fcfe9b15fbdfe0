"""Tests of sparsediff.diffusion.parameterizations: agreement with the definitions."""

from __future__ import annotations

import pytest
import torch

from sparsediff.diffusion import parameterizations as P
from sparsediff.errors import InputError

torch.set_num_threads(1)

# float64: to 1e-10 over sigma in [1e-3, 1e3];
# float32: to 1e-5 (rtol and atol) over sigma in [1e-2, 1e1].
CASES = [(torch.float64, 1e-10, (-3.0, 3.0)), (torch.float32, 1e-5, (-2.0, 1.0))]


def _batch(dtype: torch.dtype, logrange: tuple[float, float], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(64, 3, 5, generator=g, dtype=dtype)
    eps = torch.randn(64, 3, 5, generator=g, dtype=dtype)
    lo, hi = logrange
    sigma = 10 ** (lo + (hi - lo) * torch.rand(64, generator=g, dtype=dtype))
    x = x0 + sigma.view(-1, 1, 1) * eps
    return x0, eps, sigma, x


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize(("dtype", "tol", "logrange"), CASES)
def test_targets_from_x0_match_their_definitions(
    dtype: torch.dtype, tol: float, logrange: tuple[float, float]
) -> None:
    x0, eps, sigma, x = _batch(dtype, logrange)
    s = sigma.view(-1, 1, 1)
    _close(P.eps_from_x0(x, x0, sigma), eps, tol)
    # v = alpha eps - sigma_vp x0, alpha = 1 / sqrt(1 + sigma^2), sigma_vp = sigma alpha
    alpha = torch.rsqrt(1 + s**2)
    v = P.v_from_x0_eps(x0, eps, sigma)
    _close(v, alpha * eps - s * alpha * x0, tol)
    _close(P.v_from_x0(x, x0, sigma), v, tol)


@pytest.mark.parametrize(("dtype", "tol", "logrange"), CASES)
def test_flow_state_maps_to_the_ve_state(
    dtype: torch.dtype, tol: float, logrange: tuple[float, float]
) -> None:
    x0, eps, sigma, x = _batch(dtype, logrange)
    # rectified flow: x_t = (1 - t) x0 + t eps with t = sigma / (1 + sigma)
    t = sigma / (1 + sigma)
    tb = t.view(-1, 1, 1)
    x_t = (1 - tb) * x0 + tb * eps
    x_back, sigma_back = P.flow_to_ve(x_t, t)
    assert sigma_back.shape == t.shape
    _close(x_back, x, tol)
    _close(sigma_back, sigma, tol)
    u = P.velocity_from_x0_eps(x0, eps)
    _close(u, eps - x0, tol)
    _close(P.velocity_from_x0(x_t, x0, t), u, tol)


def test_velocity_is_the_time_derivative_of_the_flow_state() -> None:
    x0, eps, sigma, _ = _batch(torch.float64, (-2.0, 2.0), seed=1)
    tb = (sigma / (1 + sigma)).view(-1, 1, 1)
    dt = 1e-6
    x_t = (1 - tb) * x0 + tb * eps
    x_t2 = (1 - tb - dt) * x0 + (tb + dt) * eps
    torch.testing.assert_close(
        (x_t2 - x_t) / dt, P.velocity_from_x0_eps(x0, eps), rtol=0, atol=1e-6
    )


def test_scalar_and_broadcast_sigma() -> None:
    x0, eps, _, _ = _batch(torch.float64, (0.0, 0.0))
    x = x0 + 0.5 * eps
    for sigma in (0.5, torch.tensor(0.5, dtype=torch.float64), torch.full((64,), 0.5)):
        torch.testing.assert_close(P.eps_from_x0(x, x0, sigma), eps)
    full = torch.full((64, 1, 5), 0.5, dtype=torch.float64)
    torch.testing.assert_close(P.eps_from_x0(x, x0, full), eps)
    assert P.broadcast_sigma(torch.ones(64), x).shape == (64, 1, 1)


def test_broadcast_sigma_rejects_wrong_batch() -> None:
    with pytest.raises(InputError, match="does not fit"):
        P.broadcast_sigma(torch.ones(7), torch.zeros(64, 3))
