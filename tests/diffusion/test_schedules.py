"""Tests of sparsediff.diffusion.schedules."""

from __future__ import annotations

import math

import pytest
import torch

from sparsediff.diffusion import schedules as sch
from sparsediff.errors import ConfigError

torch.set_num_threads(1)
F64 = torch.float64
NAMES = ["karras", "vp_linear", "vp_cosine", "flow"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_shape_order_and_trailing_zero(name: str, n: int) -> None:
    s = sch.get_sigmas(name, n, dtype=F64)
    assert s.shape == (n + 1,)
    assert s.dtype == F64
    assert s[-1].item() == 0.0
    assert torch.all(s[:-1] > 0)
    assert torch.all(s[1:] < s[:-1])


@pytest.mark.parametrize("name", ["karras", "vp_cosine", "flow"])
def test_endpoints_are_sigma_max_and_sigma_min(name: str) -> None:
    s = sch.get_sigmas(name, 12, sigma_min=0.01, sigma_max=50.0, dtype=F64)
    assert s[0].item() == pytest.approx(50.0, rel=1e-12)
    assert s[-2].item() == pytest.approx(0.01, rel=1e-9)


def test_named_functions_equal_dispatcher() -> None:
    torch.testing.assert_close(sch.karras_sigmas(9, rho=5.0), sch.get_sigmas("karras", 9, rho=5.0))
    torch.testing.assert_close(sch.vp_linear_sigmas(9), sch.get_sigmas("vp_linear", 9))
    torch.testing.assert_close(sch.vp_cosine_sigmas(9), sch.get_sigmas("vp_cosine", 9))
    torch.testing.assert_close(sch.flow_sigmas(9), sch.get_sigmas("flow", 9))


def _evenly_spaced(v: torch.Tensor) -> None:
    d = torch.diff(v)
    torch.testing.assert_close(d, torch.full_like(d, d.mean().item()), rtol=0, atol=1e-9)


def test_karras_even_in_sigma_to_one_over_rho() -> None:
    s = sch.karras_sigmas(10, 0.002, 80.0, 7.0, dtype=F64)[:-1]
    _evenly_spaced(s ** (1 / 7))


def test_vp_linear_even_in_time() -> None:
    bmin, bmax, eps_s = 0.1, 20.0, 1e-3
    s = sch.vp_linear_sigmas(10, bmin, bmax, eps_s, dtype=F64)[:-1]
    bd = bmax - bmin
    # invert sigma^2 = expm1(bd t^2 / 2 + bmin t)
    t = (-bmin + torch.sqrt(bmin**2 + 2 * bd * torch.log1p(s**2))) / bd
    assert t[0].item() == pytest.approx(1.0, rel=1e-12)
    assert t[-1].item() == pytest.approx(eps_s, rel=1e-9)
    _evenly_spaced(t)


def test_vp_cosine_even_in_time() -> None:
    off = 0.008
    s = sch.vp_cosine_sigmas(10, s=off, dtype=F64)[:-1]
    phi0 = off / (1 + off) * math.pi / 2
    t = torch.arccos(math.cos(phi0) / torch.sqrt(1 + s**2)) * 2 / math.pi * (1 + off) - off
    _evenly_spaced(t)
    assert 0.0 < t[-1].item() < t[0].item() < 1.0


def test_flow_even_in_flow_time() -> None:
    s = sch.flow_sigmas(10, dtype=F64)[:-1]
    _evenly_spaced(sch.sigma_to_flow_t(s))


def test_default_dtype_and_single_step() -> None:
    s = sch.karras_sigmas(1)
    assert s.dtype == torch.get_default_dtype()
    torch.testing.assert_close(s, torch.tensor([80.0, 0.0]))


@pytest.mark.parametrize(
    ("name", "n", "kw"),
    [
        ("karras", 0, {}),
        ("karras", 5, {"sigma_min": 2.0, "sigma_max": 1.0}),
        ("karras", 5, {"rho": 0.0}),
        ("vp_linear", 5, {"eps_s": 1.5}),
        ("vp_cosine", 5, {"sigma_min": -1.0}),
        ("flow", 5, {"rho": 7.0}),
        ("cosine", 5, {}),
    ],
)
def test_bad_arguments_raise_config_error(name: str, n: int, kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        sch.get_sigmas(name, n, **kw)


def test_vp_and_flow_conversions() -> None:
    sigma = torch.logspace(-3, 2, 50, dtype=F64)
    alpha, sigma_vp = sch.sigma_to_alpha_sigma_vp(sigma)
    torch.testing.assert_close(alpha**2 + sigma_vp**2, torch.ones_like(sigma))
    torch.testing.assert_close(sch.alpha_sigma_vp_to_sigma(alpha, sigma_vp), sigma)
    t = sch.sigma_to_flow_t(sigma)
    assert torch.all((t > 0) & (t < 1))
    torch.testing.assert_close(sch.flow_t_to_sigma(t), sigma)


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
    t = sch.sigma_to_flow_t(s)
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
