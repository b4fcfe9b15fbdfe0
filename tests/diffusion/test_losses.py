"""Tests of sparsediff.diffusion.losses with exact Gaussian denoisers."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from sparsediff.diffusion import losses as L
from sparsediff.diffusion.schedules import sample_training_sigma
from sparsediff.errors import ConfigError, InputError

torch.set_num_threads(1)
F64 = torch.float64
NAMES = ["edm", "epsilon", "v", "flow"]


def _gaussian(mu: float, var: float):
    """Exact denoiser of N(mu, var) data: mu + var / (var + sigma^2) (x - mu)."""

    def D(x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        s2 = sigma.view(-1, *([1] * (x.ndim - 1))) ** 2
        return mu + var / (var + s2) * (x - mu)

    return D


def _data(n: int = 4096, mu: float = 0.0, var: float = 1.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return mu + math.sqrt(var) * torch.randn(n, 2, 4, generator=g, dtype=F64)


def _seed(s: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(s)


@pytest.mark.parametrize("name", NAMES)
def test_exact_denoiser_beats_perturbed(name: str) -> None:
    mu, var = 0.5, 0.3
    x0 = _data(mu=mu, var=var)
    loss = L.get_loss(name)
    D = _gaussian(mu, var)
    exact = loss(D, x0, generator=_seed())
    perturbed = [
        lambda x, s, c: D(x, s, c) + 0.05,  # biased
        lambda x, s, c: mu + 1.1 * (D(x, s, c) - mu),  # under-shrunk
        lambda x, s, c: mu + 0.9 * (D(x, s, c) - mu),  # over-shrunk
        _gaussian(mu, 1.5 * var),  # denoiser of the wrong variance
    ]
    for Dp in perturbed:
        assert loss(Dp, x0, generator=_seed()).item() > exact.item()


def test_expected_loss_of_exact_denoiser() -> None:
    # Unit-variance data, exact denoiser: per point the squared x0 error has mean
    # sigma^2 / (1 + sigma^2) (posterior variance). Each objective weights it
    # (see the module table), giving E[loss] = 1 for EDM (sigma_data=1) and v,
    # E[1 / (1 + sigma^2)] for epsilon and E[1 / ((1-t)^2 + t^2)] for flow.
    # With 4096 x 8 points the statistical error is about 0.01-0.02.
    x0 = _data()
    D = _gaussian(0.0, 1.0)
    assert L.EDMLoss()(D, x0, generator=_seed()).item() == pytest.approx(1.0, abs=0.06)
    assert L.VLoss()(D, x0, generator=_seed()).item() == pytest.approx(1.0, abs=0.06)
    sig = sample_training_sigma("vp_cosine", 10**6, _seed(9), dtype=F64)
    expected_eps = (1 / (1 + sig**2)).mean().item()
    assert L.EpsilonLoss()(D, x0, generator=_seed()).item() == pytest.approx(expected_eps, abs=0.04)
    t0, t1 = 1e-3, 0.999  # int dt / (1 - 2t + 2t^2) = arctan(2t - 1)
    expected_flow = (math.atan(2 * t1 - 1) - math.atan(2 * t0 - 1)) / (t1 - t0)
    got = L.FlowMatchingLoss()(D, x0, generator=_seed()).item()
    assert got == pytest.approx(expected_flow, abs=0.06)


class _Trainable(torch.nn.Module):
    """A small denoiser that mixes neighbouring points (so masked points could leak)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.7, dtype=F64))
        self.b = torch.nn.Parameter(torch.tensor(0.2, dtype=F64))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        c = 1 / (1 + sigma.view(-1, 1, 1) ** 2)
        return c * (self.a * x + self.b * torch.roll(x, 1, dims=-1))


@pytest.mark.parametrize("name", NAMES)
def test_zero_weight_points_are_irrelevant_even_nan(name: str) -> None:
    x0 = _data(256)
    g = torch.Generator().manual_seed(5)
    weight = (torch.rand(x0.shape, generator=g, dtype=F64) > 0.4).to(F64)
    loss = L.get_loss(name)
    results = []
    for fill in (float("nan"), 1e6, -3.0):
        net = _Trainable()
        xf = torch.where(weight > 0, x0, torch.full_like(x0, fill))
        value = loss(net, xf, weight=weight, generator=_seed(1))
        value.backward()
        assert torch.isfinite(value)
        results.append((value.detach(), net.a.grad.clone(), net.b.grad.clone()))
    for other in results[1:]:
        for got, ref in zip(other, results[0]):
            assert torch.equal(got, ref)


def _per_point(
    loss: L.DiffusionLoss, net: Any, x0: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """Unreduced loss with the draws made in the order ``__call__`` makes them."""
    level = loss.sample_noise_level(x0.shape[0], g, dtype=x0.dtype)
    noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    return loss.per_point(net, x0, cond=None, level=level, noise=noise)


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_reduction_with_keyed_noise_is_batch_invariant(name: str) -> None:
    """Per-sample losses with pre-drawn noise do not depend on how samples are batched."""
    x0 = _data(8)
    w = (torch.rand(x0.shape, generator=_seed(4), dtype=F64) > 0.3).to(F64)
    loss = L.get_loss(name)
    net = _Trainable()
    levels = torch.cat([loss.sample_noise_level(1, _seed(10 + i), dtype=F64) for i in range(8)])
    noise = torch.stack(
        [torch.randn(x0.shape[1:], generator=_seed(20 + i), dtype=F64) for i in range(8)]
    )
    whole = loss(net, x0, weight=w, noise_level=levels, noise=noise, reduction="none")
    assert whole.shape == (8,)
    halves = torch.cat(
        [
            loss(net, x0[s], weight=w[s], noise_level=levels[s], noise=noise[s], reduction="none")
            for s in (slice(0, 4), slice(4, 8))
        ]
    )
    torch.testing.assert_close(whole, halves)
    # the per-sample values are each sample's masked mean
    pp = loss.per_point(net, torch.where(w > 0, x0, 0.0), cond=None, level=levels, noise=noise)
    torch.testing.assert_close(whole[2], pp[2][w[2] > 0].mean())


@pytest.mark.parametrize("name", NAMES)
def test_weight_is_masked_mean(name: str) -> None:
    x0 = _data(128)
    weight = (torch.rand(x0.shape, generator=_seed(2), dtype=F64) > 0.5).to(F64)
    loss = L.get_loss(name)
    net = _Trainable()
    got = loss(net, x0, weight=weight, generator=_seed(3))
    per_point = _per_point(loss, net, torch.where(weight > 0, x0, 0.0), _seed(3))
    torch.testing.assert_close(got, per_point[weight > 0].mean())
    # no weight == weight of ones == plain mean
    plain = loss(net, x0, generator=_seed(3))
    torch.testing.assert_close(plain, loss(net, x0, weight=torch.ones_like(x0), generator=_seed(3)))
    torch.testing.assert_close(plain, _per_point(loss, net, x0, _seed(3)).mean())


def test_weight_broadcasts_and_bad_shape_raises() -> None:
    x0 = _data(64)
    loss = L.EDMLoss()
    w = torch.ones(64, 1, 4, dtype=F64)
    w[:, :, 0] = 0
    net = _Trainable()
    value = loss(net, x0, weight=w, generator=_seed())
    per_point = _per_point(loss, net, x0 * w, _seed())
    torch.testing.assert_close(value, per_point[..., 1:].mean())
    with pytest.raises(InputError, match="does not broadcast"):
        loss(net, x0, weight=torch.ones(64, 3, 4), generator=_seed())


def test_bool_weight_and_all_zero_weight() -> None:
    x0 = _data(32)
    net = _Trainable()
    loss = L.VLoss()
    mask = torch.rand(x0.shape, generator=_seed(4)) > 0.5
    torch.testing.assert_close(
        loss(net, x0, weight=mask, generator=_seed()),
        loss(net, x0, weight=mask.to(F64), generator=_seed()),
    )
    zero = loss(net, x0, weight=torch.zeros_like(x0), generator=_seed())
    assert zero.item() == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_loss(name: str) -> None:
    x0 = _data(64)
    loss = L.get_loss(name)
    D = _gaussian(0.0, 1.0)
    a = loss(D, x0, generator=_seed(11))
    assert torch.equal(a, loss(D, x0, generator=_seed(11)))
    assert not torch.equal(a, loss(D, x0, generator=_seed(12)))
    assert a.ndim == 0


@pytest.mark.parametrize("name", NAMES)
def test_cond_is_passed_and_sigma_is_per_sample(name: str) -> None:
    seen: list[tuple[Any, tuple[int, ...]]] = []

    def D(x: torch.Tensor, sigma: torch.Tensor, cond: Any = None) -> torch.Tensor:
        seen.append((cond, tuple(sigma.shape)))
        assert torch.all(sigma > 0)
        return x / (1 + sigma.view(-1, 1, 1) ** 2)

    L.get_loss(name)(D, _data(16), cond="c", generator=_seed())
    assert seen == [("c", (16,))]


def test_get_loss_errors_and_options() -> None:
    with pytest.raises(ConfigError, match="unknown diffusion loss"):
        L.get_loss("l1")
    with pytest.raises(ConfigError):
        L.get_loss("edm", rho=7.0)
    with pytest.raises(ConfigError):
        L.get_loss("epsilon", schedule="nope")
    with pytest.raises(ConfigError):
        L.get_loss("flow", t_dist="beta")
    eps = L.get_loss("eps", schedule="vp_linear", beta_max=10.0)
    assert isinstance(eps, L.EpsilonLoss)
    assert eps.schedule_kw == {"beta_max": 10.0}
    assert "sigma_data=0.5" in repr(L.get_loss("edm", sigma_data=0.5))
