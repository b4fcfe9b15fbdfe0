"""Tests of sparsediff.diffusion.schedules."""

from __future__ import annotations

import math

import pytest
import torch

from sparsediff.diffusion import schedules as sch
from sparsediff.errors import ConfigError

torch.set_num_threads(1)
F64 = torch.float64


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_karras_shape_order_and_trailing_zero(n: int) -> None:
    s = sch.karras_sigmas(n, dtype=F64)
    assert s.shape == (n + 1,)
    assert s.dtype == F64
    assert s[-1].item() == 0.0
    assert torch.all(s[:-1] > 0)
    assert torch.all(s[1:] < s[:-1])


def test_karras_endpoints_are_sigma_max_and_sigma_min() -> None:
    s = sch.karras_sigmas(12, sigma_min=0.01, sigma_max=50.0, dtype=F64)
    assert s[0].item() == pytest.approx(50.0, rel=1e-12)
    assert s[-2].item() == pytest.approx(0.01, rel=1e-9)


def _evenly_spaced(v: torch.Tensor) -> None:
    d = torch.diff(v)
    torch.testing.assert_close(d, torch.full_like(d, d.mean().item()), rtol=0, atol=1e-9)


def test_karras_even_in_sigma_to_one_over_rho() -> None:
    s = sch.karras_sigmas(10, 0.002, 80.0, 7.0, dtype=F64)[:-1]
    _evenly_spaced(s ** (1 / 7))


def _draw(name: str, **kw: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Training sigmas of a schedule, and the uniform ramp values ``u`` they come from."""
    sigma = sch.sample_training_sigma(name, 200, torch.Generator().manual_seed(5), dtype=F64, **kw)
    u = torch.rand(200, generator=torch.Generator().manual_seed(5), dtype=F64)
    return sigma, u


def test_vp_linear_training_sigma_is_uniform_in_time() -> None:
    bmin, bmax, eps_s = 0.1, 20.0, 1e-3
    sigma, u = _draw("vp_linear", beta_min=bmin, beta_max=bmax, eps_s=eps_s)
    bd = bmax - bmin
    # invert sigma^2 = expm1(bd t^2 / 2 + bmin t): t runs from 1 (u = 0) to eps_s (u = 1)
    t = (-bmin + torch.sqrt(bmin**2 + 2 * bd * torch.log1p(sigma**2))) / bd
    torch.testing.assert_close(t, 1 + u * (eps_s - 1), rtol=0, atol=1e-9)


def test_vp_cosine_training_sigma_is_uniform_in_time() -> None:
    off, lo, hi = 0.008, 0.01, 50.0
    sigma, u = _draw("vp_cosine", sigma_min=lo, sigma_max=hi, s=off)
    phi0 = off / (1 + off) * math.pi / 2

    def time(sig: torch.Tensor) -> torch.Tensor:
        return torch.arccos(math.cos(phi0) / torch.sqrt(1 + sig**2)) * 2 / math.pi * (1 + off) - off

    t_hi, t_lo = time(torch.tensor(hi, dtype=F64)), time(torch.tensor(lo, dtype=F64))
    torch.testing.assert_close(time(sigma), t_hi + u * (t_lo - t_hi), rtol=0, atol=1e-9)
    assert 0.0 < t_lo.item() < t_hi.item() < 1.0


def test_flow_training_sigma_is_uniform_in_flow_time() -> None:
    lo, hi = 0.01, 20.0
    sigma, u = _draw("flow", sigma_min=lo, sigma_max=hi)
    t_hi, t_lo = hi / (1 + hi), lo / (1 + lo)
    torch.testing.assert_close(sigma / (1 + sigma), t_hi + u * (t_lo - t_hi), rtol=0, atol=1e-12)


def test_default_dtype_and_single_step() -> None:
    s = sch.karras_sigmas(1)
    assert s.dtype == torch.get_default_dtype()
    torch.testing.assert_close(s, torch.tensor([80.0, 0.0]))


def test_karras_bad_step_count() -> None:
    with pytest.raises(ConfigError, match="n must be an int"):
        sch.karras_sigmas(0)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("karras", {"sigma_min": 2.0, "sigma_max": 1.0}),
        ("karras", {"rho": 0.0}),
        ("vp_linear", {"eps_s": 1.5}),
        ("vp_cosine", {"sigma_min": -1.0}),
        ("flow", {"rho": 7.0}),
        ("cosine", {}),
    ],
)
def test_bad_arguments_raise_config_error(name: str, kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        sch.sample_training_sigma(name, 5, **kw)


def test_edm_training_sigma_is_lognormal_and_seeded() -> None:
    g = torch.Generator().manual_seed(3)
    s = sch.sample_training_sigma_edm((20000,), -1.2, 1.2, generator=g, dtype=F64)
    assert s.shape == (20000,)
    assert torch.all(s > 0)
    # standard error of the mean of log(sigma): 1.2 / sqrt(20000) = 0.0085
    assert s.log().mean().item() == pytest.approx(-1.2, abs=0.04)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.04)
    again = sch.sample_training_sigma_edm(
        (20000,), generator=torch.Generator().manual_seed(3), dtype=F64
    )
    assert torch.equal(s, again)
    other = sch.sample_training_sigma_edm(
        (20000,), generator=torch.Generator().manual_seed(4), dtype=F64
    )
    assert not torch.equal(s, other)


@pytest.mark.parametrize("name", ["karras", "vp_cosine", "flow"])
def test_training_sigma_from_schedule_in_range(name: str) -> None:
    g = torch.Generator().manual_seed(0)
    s = sch.sample_training_sigma(name, (4, 1000), g, sigma_min=0.01, sigma_max=20.0, dtype=F64)
    assert s.shape == (4, 1000)
    assert s.min().item() >= 0.01 * (1 - 1e-9)
    assert s.max().item() <= 20.0 * (1 + 1e-9)


def test_training_sigma_flow_is_uniform_in_t() -> None:
    g = torch.Generator().manual_seed(0)
    s = sch.sample_training_sigma("flow", 40000, g, sigma_min=0.01, sigma_max=20.0, dtype=F64)
    t = s / (1 + s)
    lo, hi = 0.01 / 1.01, 20.0 / 21.0
    # mean of U(lo, hi); standard error (hi - lo) / sqrt(12 * 40000) = 0.0014
    assert t.mean().item() == pytest.approx((lo + hi) / 2, abs=0.006)


def test_training_sigma_rejects_unknown_options() -> None:
    with pytest.raises(ConfigError, match="P_mean"):
        sch.sample_training_sigma("vp_cosine", 3, P_mean=0.0)
    with pytest.raises(ConfigError, match="rho"):
        sch.sample_training_sigma("edm", 3, rho=7.0)


@pytest.mark.parametrize("dist", ["uniform", "logit_normal"])
def test_sample_flow_t(dist: str) -> None:
    t = sch.sample_flow_t(5000, 0.01, 0.9, dist, generator=torch.Generator().manual_seed(1))
    assert t.shape == (5000,)
    assert t.min().item() >= 0.01
    assert t.max().item() <= 0.9
    again = sch.sample_flow_t(5000, 0.01, 0.9, dist, generator=torch.Generator().manual_seed(1))
    assert torch.equal(t, again)


def test_sample_flow_t_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        sch.sample_flow_t(3, 0.5, 0.4)
    with pytest.raises(ConfigError):
        sch.sample_flow_t(3, dist="beta")
