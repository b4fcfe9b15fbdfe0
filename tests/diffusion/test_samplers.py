"""Tests of sparsediff.diffusion.samplers against exact Gaussian denoisers.

For data x0 ~ N(mu, diag(s)) the ideal denoiser is
D(x, sigma) = mu + s / (s + sigma^2) (x - mu), and the probability-flow ODE
dx/dsigma = (x - D) / sigma = sigma (x - mu) / (s + sigma^2) has the closed-form
solution x(sigma) - mu = (x_T - mu) sqrt((s + sigma^2) / (s + sigma_T^2)), so
from sigma_T down to 0: x0 = mu + sqrt(s / (s + sigma_T^2)) (x_T - mu).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from sparsediff.diffusion import samplers as S
from sparsediff.diffusion.schedules import karras_sigmas
from sparsediff.errors import ConfigError, InputError

torch.set_num_threads(1)
F64 = torch.float64
MU = torch.tensor([0.5, -1.0, 0.25], dtype=F64)
VAR = torch.tensor([0.04, 1.0, 2.25], dtype=F64)
SIGMA_MAX = 80.0


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
    """Exact posterior mean for N(MU, diag(VAR)) data, x of shape (B, 3)."""
    return MU + VAR / (VAR + sigma.view(-1, 1) ** 2) * (x - MU)


def exact_ode_solution(x_T: torch.Tensor) -> torch.Tensor:
    return MU + torch.sqrt(VAR / (VAR + SIGMA_MAX**2)) * (x_T - MU)


def start_noise(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return SIGMA_MAX * torch.randn(n, 3, generator=g, dtype=F64)


def _seed(s: int) -> torch.Generator:
    return torch.Generator().manual_seed(s)


# (sampler, options, steps, allowed discretisation error of the variance ratio).
# Measured |var ratio - 1| (statistics and discretisation together; 20k points, 5 seeds):
# euler / ddim (200 steps) <= 0.051, heun / dpmpp_2m (40) <= 0.041, heun with churn (100)
# <= 0.041, ancestral / ddim eta=1 (500) <= 0.037. First-order samplers converge slowly
# on the small-variance dim (s = 0.04): euler is off by 16% at 40 steps, ancestral by 27%.
DISTRIBUTION_CASES = [
    ("euler", {}, 200, 0.05),
    ("ddim", {}, 200, 0.05),
    ("heun", {}, 40, 0.03),
    ("dpmpp_2m", {}, 40, 0.03),
    ("heun", {"S_churn": 40.0}, 100, 0.04),
    ("ddim", {"eta": 1.0}, 500, 0.04),
    ("ancestral", {}, 500, 0.04),
]


@pytest.mark.parametrize(("name", "opts", "steps", "disc_tol"), DISTRIBUTION_CASES)
def test_reproduces_gaussian_mean_and_variance(
    name: str, opts: dict[str, float], steps: int, disc_tol: float
) -> None:
    # Tolerance, per dim: mean within 5 standard errors sqrt(s/N) plus the bias of starting
    # from N(0, sigma_max^2) instead of N(mu, s + sigma_max^2), |mu| sqrt(s / (s + sigma_max^2));
    # variance ratio within 5 standard errors sqrt(2/N) plus the discretisation allowance.
    n = 20000
    out = S.sample(
        name, gaussian_denoiser, start_noise(n), karras_sigmas(steps, dtype=F64),
        generator=_seed(2), **opts,
    )  # fmt: skip
    assert out.shape == (n, 3)
    mean_tol = 5 * torch.sqrt(VAR / n) + MU.abs() * torch.sqrt(VAR / (VAR + SIGMA_MAX**2))
    assert torch.all((out.mean(0) - MU).abs() <= mean_tol), (out.mean(0), MU)
    ratio = out.var(0) / VAR
    assert torch.all((ratio - 1).abs() <= 5 * math.sqrt(2 / n) + disc_tol), ratio


def _rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b) ** 2).mean().sqrt().item()


@pytest.mark.parametrize("steps", [10, 15, 20])
def test_dpmpp_2m_beats_euler_at_equal_model_calls(steps: int) -> None:
    x_T = start_noise(2000)
    exact = exact_ode_solution(x_T)
    err_dpm = _rms(
        S.sample_dpmpp_2m(gaussian_denoiser, x_T, karras_sigmas(steps, dtype=F64)), exact
    )
    calls = S.model_calls("dpmpp_2m", steps)
    err_euler = _rms(S.sample_euler(gaussian_denoiser, x_T, karras_sigmas(calls, dtype=F64)), exact)
    assert err_dpm < 0.7 * err_euler


@pytest.mark.parametrize("steps", [15, 20])
def test_heun_beats_euler_at_equal_model_calls(steps: int) -> None:
    # Measured RMS errors (2000 points): 15 steps heun 0.066 vs euler(29 steps) 0.089;
    # 20 steps 0.035 vs 0.066. Below ~12 steps Heun's big first steps make it no better.
    x_T = start_noise(2000)
    exact = exact_ode_solution(x_T)
    err_heun = _rms(S.sample_heun(gaussian_denoiser, x_T, karras_sigmas(steps, dtype=F64)), exact)
    calls = S.model_calls("heun", steps)
    err_euler = _rms(S.sample_euler(gaussian_denoiser, x_T, karras_sigmas(calls, dtype=F64)), exact)
    assert err_heun < 0.8 * err_euler


@pytest.mark.parametrize(
    ("name", "lo", "hi"), [("euler", 1.6, 2.5), ("heun", 3.0, 8.0), ("dpmpp_2m", 3.0, 8.0)]
)
def test_order_of_convergence(name: str, lo: float, hi: float) -> None:
    # Doubling the steps from 20 to 40 divides the error by ~2 (first order) or ~4 (second).
    x_T = start_noise(2000)
    exact = exact_ode_solution(x_T)
    e20 = _rms(S.sample(name, gaussian_denoiser, x_T, karras_sigmas(20, dtype=F64)), exact)
    e40 = _rms(S.sample(name, gaussian_denoiser, x_T, karras_sigmas(40, dtype=F64)), exact)
    assert lo < e20 / e40 < hi


def test_ddim_equals_euler_and_ancestral() -> None:
    x_T = start_noise(500)
    sig = karras_sigmas(12, dtype=F64)
    torch.testing.assert_close(
        S.sample_ddim(gaussian_denoiser, x_T, sig), S.sample_euler(gaussian_denoiser, x_T, sig)
    )
    torch.testing.assert_close(
        S.sample_ddim(gaussian_denoiser, x_T, sig, eta=1.0, generator=_seed(3)),
        S.sample_euler_ancestral(gaussian_denoiser, x_T, sig, eta=1.0, generator=_seed(3)),
    )
    torch.testing.assert_close(
        S.sample_euler_ancestral(gaussian_denoiser, x_T, sig, eta=0.0),
        S.sample_euler(gaussian_denoiser, x_T, sig),
    )


STOCHASTIC = [
    ("ancestral", {}),
    ("ddim", {"eta": 1.0}),
    ("ddim", {"eta": 0.5}),
    ("heun", {"S_churn": 10.0}),
]


@pytest.mark.parametrize(("name", "opts"), STOCHASTIC)
def test_stochastic_samplers_are_seeded(name: str, opts: dict[str, float]) -> None:
    x_T = start_noise(100)
    sig = karras_sigmas(8, dtype=F64)
    a = S.sample(name, gaussian_denoiser, x_T, sig, generator=_seed(7), **opts)
    b = S.sample(name, gaussian_denoiser, x_T, sig, generator=_seed(7), **opts)
    c = S.sample(name, gaussian_denoiser, x_T, sig, generator=_seed(8), **opts)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("name", sorted(S.SAMPLERS))
@pytest.mark.parametrize("steps", [1, 2, 6])
def test_guidance_called_per_evaluation_and_used(name: str, steps: int) -> None:
    x_T = torch.randn(4, 2, 3, 3, generator=_seed(0)) * SIGMA_MAX
    model_seen: list[tuple[tuple[int, ...], torch.dtype, Any]] = []
    guide_seen: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = []

    def model(x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        model_seen.append((tuple(sigma.shape), sigma.dtype, cond))
        return x / (1 + sigma.view(-1, 1, 1, 1) ** 2)

    def guidance(x0: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        guide_seen.append((tuple(x0.shape), tuple(x.shape), tuple(sigma.shape)))
        return torch.full_like(x0, 2.5)

    out = S.sample(
        name, model, x_T, karras_sigmas(steps, dtype=F64), cond="c", guidance=guidance,
        generator=_seed(1),
    )  # fmt: skip
    calls = S.model_calls(name, steps)
    assert len(model_seen) == calls
    assert model_seen[0] == ((4,), torch.float32, "c")  # sigma in x's dtype, one per sample
    assert guide_seen == [((4, 2, 3, 3), (4, 2, 3, 3), (4,))] * calls
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full_like(out, 2.5))


@pytest.mark.parametrize("name", sorted(S.SAMPLERS))
def test_callback_and_progress(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    events: list[dict[str, Any]] = []
    x_T = start_noise(8)
    sig = karras_sigmas(5, dtype=F64)
    S.sample(name, gaussian_denoiser, x_T, sig, callback=events.append, progress=True)
    assert [e["i"] for e in events] == list(range(5))
    assert [e["sigma"] for e in events] == pytest.approx(sig[:-1].tolist())
    assert all(e["denoised"].shape == x_T.shape for e in events)
    assert "5/5" in capsys.readouterr().err


def test_model_calls() -> None:
    assert S.model_calls("heun", 18) == 35
    assert S.model_calls("heun", 1) == 1
    for name in ("euler", "dpmpp_2m", "ddim", "ancestral"):
        assert S.model_calls(name, 18) == 18
    with pytest.raises(ConfigError):
        S.model_calls("rk4", 10)


@pytest.mark.parametrize(
    "sigmas",
    [
        torch.tensor([10.0, 1.0]),  # no trailing zero
        torch.tensor([1.0, 10.0, 0.0]),  # increasing
        torch.tensor([10.0, 10.0, 0.0]),  # repeated
        torch.tensor([0.0]),  # too short
        torch.tensor([[10.0, 0.0]]),  # not 1-D
    ],
)
def test_bad_schedule_raises_input_error(sigmas: torch.Tensor) -> None:
    with pytest.raises(InputError):
        S.sample_euler(gaussian_denoiser, torch.zeros(2, 3, dtype=F64), sigmas)


def test_sample_dispatch_errors() -> None:
    x = torch.zeros(2, 3, dtype=F64)
    sig = karras_sigmas(3, dtype=F64)
    with pytest.raises(ConfigError, match="unknown sampler"):
        S.sample("plms", gaussian_denoiser, x, sig)
    with pytest.raises(ConfigError, match="eta"):
        S.sample("dpmpp_2m", gaussian_denoiser, x, sig, eta=1.0)
    with pytest.raises(InputError, match="returned shape"):
        S.sample("euler", lambda x, s, c: x[:, :2], x, sig)
