"""Tests of sparsediff.networks.precond (EDM preconditioning)."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from torch import nn

from sparsediff.errors import ConfigError, InputError
from sparsediff.networks.precond import EDMPrecond
from sparsediff.networks.unet import UNet

torch.set_num_threads(1)

SMALL = {"widths": (8, 16), "blocks_per_level": 1, "attention_levels": (1,)}


class _Recorder(nn.Module):
    """A backbone returning ``scale * x + offset`` and recording what it was given."""

    def __init__(self, scale: float = 0.0, offset: float = 0.0, cond_channels: int = 0) -> None:
        super().__init__()
        self.scale, self.offset = scale, offset
        self.cond_channels = cond_channels
        self.seen: dict[str, torch.Tensor | None] = {}

    def forward(
        self, x: torch.Tensor, noise_labels: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        self.seen = {"x": x, "labels": noise_labels, "cond": cond}
        return self.scale * x + self.offset


def _randomize(net: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def test_zero_backbone_gives_c_skip_x() -> None:
    sd = 0.5
    precond = EDMPrecond(_Recorder(), sigma_data=sd)
    x = torch.randn(3, 2, 4, 4)
    sigma = torch.tensor([0.01, 0.5, 20.0])
    out = precond(x, sigma)
    c_skip = torch.tensor([sd**2 / (s**2 + sd**2) for s in (0.01, 0.5, 20.0)])
    torch.testing.assert_close(out, c_skip.reshape(3, 1, 1, 1) * x)
    assert math.isclose(sd**2 / (0.5**2 + sd**2), 0.5)  # sigma = sigma_data halves x


def test_full_formula() -> None:
    sd, s = 0.7, 1.3
    backbone = _Recorder(scale=2.0, offset=0.25)
    precond = EDMPrecond(backbone, sigma_data=sd)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    out = precond(x, s)
    c_in = 1 / math.sqrt(s**2 + sd**2)
    c_out = s * sd / math.sqrt(s**2 + sd**2)
    c_skip = sd**2 / (s**2 + sd**2)
    torch.testing.assert_close(backbone.seen["x"], c_in * x)
    torch.testing.assert_close(
        backbone.seen["labels"], torch.full((2,), math.log(s) / 4, dtype=torch.float64)
    )
    torch.testing.assert_close(out, c_skip * x + c_out * (2.0 * c_in * x + 0.25))
    assert out.dtype == torch.float64


def test_scalar_and_per_sample_sigma_agree() -> None:
    net = UNet(in_channels=2, out_channels=2, **SMALL)
    _randomize(net)
    precond = EDMPrecond(net, sigma_data=0.5)
    x = torch.randn(3, 2, 8, 8)
    a = precond(x, 0.8)
    torch.testing.assert_close(precond(x, torch.tensor(0.8)), a, rtol=0, atol=0)
    torch.testing.assert_close(precond(x, torch.full((3,), 0.8)), a, rtol=0, atol=0)
    torch.testing.assert_close(precond(x, torch.full((3, 1, 1, 1), 0.8)), a, rtol=0, atol=0)
    mixed = precond(x, torch.tensor([0.8, 2.0, 0.8]))
    torch.testing.assert_close(mixed[[0, 2]], a[[0, 2]], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(mixed[1], a[1])
    with pytest.raises(InputError, match="sigma"):
        precond(x, torch.ones(2))


@pytest.mark.parametrize("sd", [2, 3])
def test_small_sigma_returns_input(sd: int) -> None:
    net = UNet(spatial_dims=sd, in_channels=1, out_channels=1, **SMALL)
    _randomize(net)
    precond = EDMPrecond(net, sigma_data=0.5)
    x = torch.randn(2, 1, *([4] * sd))
    errors = [(precond(x, s) - x).abs().max().item() for s in (1e-1, 1e-3, 1e-5)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3
    torch.testing.assert_close(precond(x, 0.0), x, rtol=0, atol=0)  # sigma = 0 exactly: D = x


def test_output_dtype_float32_for_low_precision_input() -> None:
    precond = EDMPrecond(_Recorder(scale=1.0))
    out = precond(torch.randn(2, 1, 4, 4, dtype=torch.bfloat16), 0.5)
    assert out.dtype == torch.float32


def test_cond_dropout_rate_and_determinism() -> None:
    p = 0.3
    backbone = _Recorder(cond_channels=2)
    precond = EDMPrecond(backbone, cond_channels=2, cond_dropout=p)
    b = 4000
    x = torch.randn(b, 1, 2, 2)
    cond = torch.rand(b, 2, 2, 2) + 0.5  # never zero
    precond.train()
    precond(x, 1.0, cond, generator=torch.Generator().manual_seed(0))
    seen = backbone.seen["cond"]
    dropped = (seen == 0).flatten(1).all(1)
    kept = (seen == cond).flatten(1).all(1)
    assert bool((dropped ^ kept).all())  # whole samples dropped, the rest untouched
    rate = dropped.float().mean().item()
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / b)
    # the same seed gives the same pattern, another seed another one
    precond(x, 1.0, cond, generator=torch.Generator().manual_seed(0))
    assert torch.equal((backbone.seen["cond"] == 0).flatten(1).all(1), dropped)
    precond(x, 1.0, cond, generator=torch.Generator().manual_seed(1))
    assert not torch.equal((backbone.seen["cond"] == 0).flatten(1).all(1), dropped)
    # no dropout in eval mode; force_uncond zeros the cond always
    precond.eval()
    precond(x, 1.0, cond)
    assert torch.equal(backbone.seen["cond"], cond)
    precond(x, 1.0, cond, force_uncond=True)
    assert torch.equal(backbone.seen["cond"], torch.zeros_like(cond))
    precond(x, 1.0)
    assert torch.equal(backbone.seen["cond"], torch.zeros_like(cond))


def test_force_uncond_equals_zero_cond_with_unet() -> None:
    net = UNet(in_channels=2, out_channels=2, cond_channels=3, **SMALL)
    _randomize(net)
    precond = EDMPrecond(net, cond_channels=3, cond_dropout=0.2).eval()
    x, cond = torch.randn(2, 2, 8, 8), torch.randn(2, 3, 8, 8)
    uncond = precond(x, 0.7, cond, force_uncond=True)
    torch.testing.assert_close(uncond, precond(x, 0.7, torch.zeros_like(cond)), rtol=0, atol=0)
    assert not torch.allclose(uncond, precond(x, 0.7, cond))


def test_config_errors() -> None:
    net = UNet(in_channels=1, out_channels=1, cond_channels=2, **SMALL)
    with pytest.raises(ConfigError, match="cond_channels"):
        EDMPrecond(net, cond_channels=1)
    with pytest.raises(ConfigError, match="sigma_data"):
        EDMPrecond(net, sigma_data=0.0, cond_channels=2)
    with pytest.raises(ConfigError, match="cond_dropout"):
        EDMPrecond(net, cond_channels=2, cond_dropout=1.5)
    cfg = EDMPrecond(net, cond_channels=2).config
    with pytest.raises(ConfigError, match="backbone_class"):
        EDMPrecond.from_config({**cfg, "backbone_class": "Transformer"})
    with pytest.raises(InputError, match="cond_channels=0"):
        EDMPrecond(UNet(in_channels=1, out_channels=1, **SMALL))(
            torch.zeros(1, 1, 8, 8), 1.0, torch.zeros(1, 2, 8, 8)
        )


def test_state_dict_round_trip_is_bit_identical() -> None:
    net = UNet(spatial_dims=3, in_channels=2, out_channels=2, cond_channels=1, **SMALL)
    precond = EDMPrecond(net, sigma_data=0.5, cond_channels=1, cond_dropout=0.1)
    _randomize(precond, seed=2)
    cfg = json.loads(json.dumps(precond.config))
    assert cfg == precond.config
    assert cfg["backbone_class"] == "UNet"
    assert cfg["backbone"] == net.config
    assert {k: cfg[k] for k in ("sigma_data", "cond_channels", "cond_dropout")} == {
        "sigma_data": 0.5,
        "cond_channels": 1,
        "cond_dropout": 0.1,
    }
    buf = io.BytesIO()
    torch.save(precond.state_dict(), buf)
    buf.seek(0)
    clone = EDMPrecond.from_config(cfg)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    precond.eval()
    clone.eval()
    x, cond, sigma = (
        torch.randn(2, 2, 4, 4, 4),
        torch.randn(2, 1, 4, 4, 4),
        torch.tensor([0.3, 3.0]),
    )
    assert torch.equal(precond(x, sigma, cond), clone(x, sigma, cond))
