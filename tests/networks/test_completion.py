"""The asymmetric completion autoencoder: shapes, masking, zero start, checkpointing, configs."""

from __future__ import annotations

import json

import pytest
import torch

from sparsediff.errors import ConfigError, InputError
from sparsediff.networks.completion import CompletionAutoencoder, space_to_depth, upsample_latent


def _randomize(net: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _net(sd: int = 2, **kw: object) -> CompletionAutoencoder:
    args: dict[str, object] = {
        "spatial_dims": sd,
        "encoder_widths": (8, 8, 8),
        "decoder_widths": (8, 8),
        "latent_channels": 3,
    }
    args.update(kw)
    return CompletionAutoencoder(2, 5, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("sd", [2, 3])
def test_shapes_and_zero_departure_at_init(sd: int) -> None:
    net = _net(sd)
    spatial = (8,) * sd
    inputs = torch.randn(3, 5, *spatial)
    values = torch.randn(3, 2, *spatial)
    observed = torch.rand(3, 2, *spatial) > 0.3
    mean, logvar = net.encode(values, observed, inputs)
    assert mean.shape == logvar.shape == (3, 3, *(s // 4 for s in spatial))
    assert net.latent_shape(spatial) == (3, *(s // 4 for s in spatial))
    out = net.decode(inputs, mean)
    assert out.shape == (3, 2, *spatial)
    # an untrained decoder departs from the first guess by exactly zero
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("sd", [2, 3])
def test_encoder_ignores_unobserved_values(sd: int) -> None:
    net = _net(sd)
    _randomize(net)
    spatial = (8,) * sd
    inputs = torch.randn(2, 5, *spatial)
    values = torch.randn(2, 2, *spatial)
    observed = torch.rand(2, 2, *spatial) > 0.4
    mean, logvar = net.encode(values, observed, inputs)
    for fill in (float("nan"), 1e30, -7.0, float("inf")):
        v2 = torch.where(observed, values, torch.full_like(values, fill))
        m2, lv2 = net.encode(v2, observed, inputs)
        assert torch.equal(m2, mean)
        assert torch.equal(lv2, logvar)
    # observed values, the mask and the inputs all matter
    assert not torch.allclose(net.encode(values + observed * 1.0, observed, inputs)[0], mean)
    assert not torch.allclose(net.encode(values, ~observed, inputs)[0], mean)
    assert not torch.allclose(net.encode(values, observed, inputs + 1.0)[0], mean)


def test_decoder_uses_the_latent_and_the_inputs() -> None:
    net = _net()
    _randomize(net, seed=2)
    inputs = torch.randn(1, 5, 8, 8)
    z = torch.randn(1, 3, 2, 2)
    out = net.decode(inputs, z)
    assert not torch.allclose(net.decode(inputs, torch.zeros_like(z)), out)
    assert not torch.allclose(net.decode(inputs * 2.0, z), out)


def test_bad_shapes_and_configs() -> None:
    net = _net()
    with pytest.raises(InputError, match="inputs of shape"):
        net.decode(torch.zeros(1, 4, 8, 8), torch.zeros(1, 3, 2, 2))
    with pytest.raises(InputError, match="z of shape"):
        net.decode(torch.zeros(1, 5, 8, 8), torch.zeros(1, 3, 4, 4))
    with pytest.raises(InputError, match="multiple"):
        net.decode(torch.zeros(1, 5, 6, 8), torch.zeros(1, 3, 1, 2))
    with pytest.raises(ConfigError, match="positive"):
        CompletionAutoencoder(1, 4, encoder_widths=(8, 0))
    with pytest.raises(ConfigError, match=">= 1"):
        CompletionAutoencoder(0, 4)


@pytest.mark.parametrize("sd", [2, 3])
def test_checkpointing_gives_the_same_output_and_grads(sd: int) -> None:
    ref = _net(sd, attention=True)
    _randomize(ref, seed=1)
    ckpt = CompletionAutoencoder.from_config({**ref.config, "checkpointing": True})
    ckpt.load_state_dict(ref.state_dict())
    spatial = (8,) * sd
    inputs = torch.randn(1, 5, *spatial)
    values = torch.randn(1, 2, *spatial)
    observed = torch.rand(1, 2, *spatial) > 0.3
    outs = []
    for net in (ref, ckpt):
        net.train()
        mean, _ = net.encode(values, observed, inputs)
        y = net.decode(inputs, mean)
        (y.square().mean() + mean.square().mean()).backward()
        outs.append((y.detach(), [p.grad for p in net.parameters()]))
    assert torch.equal(outs[0][0], outs[1][0])
    for a, b in zip(outs[0][1], outs[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_config_round_trip_is_bit_identical() -> None:
    net = _net(attention=True)
    _randomize(net, seed=4)
    cfg = json.loads(json.dumps(net.config))
    assert cfg == net.config
    clone = CompletionAutoencoder.from_config(cfg)
    clone.load_state_dict(net.state_dict())
    inputs = torch.randn(2, 5, 8, 8)
    z = torch.randn(2, 3, 2, 2)
    assert torch.equal(net.decode(inputs, z), clone.decode(inputs, z))


@pytest.mark.parametrize("sd", [2, 3])
def test_space_to_depth_is_a_lossless_fold(sd: int) -> None:
    x = torch.arange(2 * 3 * 4**sd, dtype=torch.float32).reshape(2, 3, *([4] * sd))
    y = space_to_depth(x, 2)
    assert y.shape == (2, 3 * 2**sd, *([2] * sd))
    assert sorted(y.flatten().tolist()) == sorted(x.flatten().tolist())
    if sd == 2:
        torch.testing.assert_close(y, torch.nn.functional.pixel_unshuffle(x, 2))
    up = upsample_latent(torch.arange(4.0).reshape(1, 1, 2, 2), 2)
    assert up[0, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
