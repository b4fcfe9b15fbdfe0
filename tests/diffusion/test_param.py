"""Tests of sparsediff.diffusion.param: round trips and agreement with the definitions."""

from __future__ import annotations

import pytest
import torch

from sparsediff.diffusion import param as P
from sparsediff.errors import InputError

torch.set_num_threads(1)

# float64: round trips to 1e-10 over sigma in [1e-3, 1e3];
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
def test_eps_round_trips(dtype: torch.dtype, tol: float, logrange: tuple[float, float]) -> None:
    x0, eps, sigma, x = _batch(dtype, logrange)
    _close(P.eps_from_x0(x, x0, sigma), eps, tol)
    _close(P.x0_from_eps(x, eps, sigma), x0, tol)
    _close(P.x0_from_eps(x, P.eps_from_x0(x, x0, sigma), sigma), x0, tol)


@pytest.mark.parametrize(("dtype", "tol", "logrange"), CASES)
def test_score_round_trips(dtype: torch.dtype, tol: float, logrange: tuple[float, float]) -> None:
    x0, eps, sigma, x = _batch(dtype, logrange)
    score = P.score_from_x0(x, x0, sigma)
    _close(score * sigma.view(-1, 1, 1), -eps, tol)  # score = -eps / sigma
    _close(P.x0_from_score(x, score, sigma), x0, tol)


@pytest.mark.parametrize(("dtype", "tol", "logrange"), CASES)
def test_v_round_trips(dtype: torch.dtype, tol: float, logrange: tuple[float, float]) -> None:
    x0, eps, sigma, x = _batch(dtype, logrange)
    v = P.v_from_x0_eps(x0, eps, sigma)
    _close(P.v_from_x0(x, x0, sigma), v, tol)
    _close(P.x0_from_v(x, v, sigma), x0, tol)
    _close(P.eps_from_v(x, v, sigma), eps, tol)


@pytest.mark.parametrize(("dtype", "tol", "logrange"), CASES)
def test_flow_round_trips(dtype: torch.dtype, tol: float, logrange: tuple[float, float]) -> None:
    x0, eps, sigma, x = _batch(dtype, logrange)
    x_t, t = P.ve_to_flow(x, sigma)
    assert t.shape == sigma.shape
    x_back, sigma_back = P.flow_to_ve(x_t, t)
    _close(x_back, x, tol)
    _close(sigma_back, sigma, tol)
    u = P.velocity_from_x0_eps(x0, eps)
    _close(P.velocity_from_x0(x_t, x0, t), u, tol)
    _close(P.x0_from_velocity(x_t, u, t), x0, tol)


@pytest.mark.parametrize(("dtype", "tol", "logrange"), CASES)
def test_vp_round_trip(dtype: torch.dtype, tol: float, logrange: tuple[float, float]) -> None:
    _, _, sigma, x = _batch(dtype, logrange)
    x_vp, alpha, sigma_vp = P.ve_to_vp(x, sigma)
    x_back, sigma_back = P.vp_to_ve(x_vp, alpha.flatten(), sigma_vp.flatten())
    _close(x_back, x, tol)
    _close(sigma_back, sigma, tol)


def test_forms_match_their_definitions() -> None:
    x0, eps, sigma, x = _batch(torch.float64, (-2.0, 2.0), seed=1)
    s = sigma.view(-1, 1, 1)
    # VP: x_vp = alpha x0 + sigma_vp eps with alpha^2 + sigma_vp^2 = 1, v = alpha eps - sigma_vp x0
    x_vp, alpha, sigma_vp = P.ve_to_vp(x, sigma)
    torch.testing.assert_close(alpha**2 + sigma_vp**2, torch.ones_like(alpha))
    torch.testing.assert_close(sigma_vp / alpha, s)
    torch.testing.assert_close(x_vp, alpha * x0 + sigma_vp * eps)
    torch.testing.assert_close(P.v_from_x0_eps(x0, eps, sigma), alpha * eps - sigma_vp * x0)
    # rectified flow: x_t = (1 - t) x0 + t eps, t = sigma / (1 + sigma)
    x_t, t = P.ve_to_flow(x, sigma)
    tb = t.view(-1, 1, 1)
    torch.testing.assert_close(t, sigma / (1 + sigma))
    torch.testing.assert_close(x_t, (1 - tb) * x0 + tb * eps)
    # the velocity is the time derivative of x_t along the straight path
    dt = 1e-6
    x_t2 = (1 - tb - dt) * x0 + (tb + dt) * eps
    torch.testing.assert_close(
        (x_t2 - x_t) / dt, P.velocity_from_x0_eps(x0, eps), rtol=0, atol=1e-6
    )


def test_score_of_gaussian_from_posterior_mean() -> None:
    # data N(mu, s): posterior mean D(x) = mu + s/(s+sigma^2) (x - mu),
    # marginal score -(x - mu) / (s + sigma^2) (Tweedie)
    g = torch.Generator().manual_seed(2)
    mu, s = 0.3, 2.0
    x = torch.randn(100, 4, generator=g, dtype=torch.float64) * 3
    sigma = torch.rand(100, generator=g, dtype=torch.float64) * 5 + 0.01
    sb = sigma.view(-1, 1)
    x0_hat = mu + s / (s + sb**2) * (x - mu)
    torch.testing.assert_close(P.score_from_x0(x, x0_hat, sigma), -(x - mu) / (s + sb**2))


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
