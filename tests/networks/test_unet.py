"""Tests of sparsediff.networks.unet."""

from __future__ import annotations

import io
import json

import pytest
import torch

from sparsediff.errors import ConfigError, InputError
from sparsediff.networks.unet import UNet

torch.set_num_threads(1)

SMALL = {"widths": (8, 16, 16), "blocks_per_level": 1}


def _randomize(net: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _inputs(
    b: int, c: int, spatial: tuple[int, ...], cond_c: int = 0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, *spatial, generator=g)
    labels = torch.randn(b, generator=g)
    cond = torch.randn(b, cond_c, *spatial, generator=g) if cond_c else None
    return x, labels, cond


@pytest.mark.parametrize(("sd", "spatial"), [(2, (8, 12)), (3, (4, 8, 4))])
@pytest.mark.parametrize("cond_c", [0, 3])
@pytest.mark.parametrize("attention_levels", [(), (1, 2)])
def test_shapes(
    sd: int, spatial: tuple[int, ...], cond_c: int, attention_levels: tuple[int, ...]
) -> None:
    net = UNet(
        spatial_dims=sd,
        in_channels=4,
        out_channels=2,
        cond_channels=cond_c,
        attention_levels=attention_levels,
        **SMALL,
    )
    x, labels, cond = _inputs(2, 4, spatial, cond_c)
    y = net(x, labels, cond)
    assert y.shape == (2, 2, *spatial)
    assert torch.isfinite(y).all()
    n_attn = sum(type(m).__name__ == "AttentionBlock" for m in net.modules())
    assert (n_attn > 0) == bool(attention_levels)


def test_default_config_shapes() -> None:
    net = UNet(in_channels=4, out_channels=4)
    assert net.factor == 4
    x, labels, _ = _inputs(1, 4, (8, 16))
    assert net(x, labels).shape == x.shape


def test_inputs_matter() -> None:
    torch.manual_seed(0)
    net = UNet(in_channels=2, out_channels=2, cond_channels=1, **SMALL)
    _randomize(net)
    x, labels, cond = _inputs(2, 2, (8, 8), 1)
    y = net(x, labels, cond)
    assert not torch.allclose(net(x, labels + 0.5, cond), y)
    assert not torch.allclose(net(x, labels, cond + 1.0), y)
    # missing cond means zeros (unconditional)
    torch.testing.assert_close(net(x, labels), net(x, labels, torch.zeros_like(cond)))
    # a scalar noise label is used for every sample
    torch.testing.assert_close(net(x, labels[0]), net(x, labels[:1].expand(2)))
    # samples are independent of each other
    torch.testing.assert_close(net(x[:1], labels[:1], cond[:1]), y[:1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("sd", "spatial", "bad"), [(2, (8, 10), "10"), (3, (8, 6, 8), "6")])
def test_non_divisible_sizes_raise_clear_error(sd: int, spatial: tuple[int, ...], bad: str) -> None:
    net = UNet(spatial_dims=sd, in_channels=1, out_channels=1, **SMALL)
    x, labels, _ = _inputs(1, 1, spatial)
    with pytest.raises(InputError) as info:
        net(x, labels)
    msg = str(info.value)
    assert f"spatial size {bad}" in msg
    assert "factor 4" in msg
    assert "nearest valid sizes" in msg


def test_bad_inputs_and_config() -> None:
    net = UNet(in_channels=2, out_channels=2, cond_channels=1, **SMALL)
    x, labels, cond = _inputs(2, 2, (8, 8), 1)
    with pytest.raises(InputError, match="noise_labels"):
        net(x, labels[:1])
    with pytest.raises(InputError, match="cond of shape"):
        net(x, labels, cond[:, :, :4])
    with pytest.raises(InputError, match="expects x"):
        net(x[:, :1], labels)
    with pytest.raises(InputError, match="cond_channels=0"):
        UNet(in_channels=2, out_channels=2, **SMALL)(x, labels, cond)
    with pytest.raises(ConfigError, match="attention_levels"):
        UNet(in_channels=1, out_channels=1, widths=(8, 16), attention_levels=(2,))
    with pytest.raises(ConfigError, match="spatial_dims"):
        UNet(spatial_dims=4, in_channels=1, out_channels=1)


@pytest.mark.parametrize(("sd", "spatial"), [(2, (8, 8)), (3, (4, 4, 4))])
def test_checkpointing_same_output_and_grads(sd: int, spatial: tuple[int, ...]) -> None:
    ref = UNet(
        spatial_dims=sd,
        in_channels=2,
        out_channels=2,
        cond_channels=1,
        attention_levels=(1,),
        dropout=0.1,
        **SMALL,
    )
    _randomize(ref)
    ckpt = UNet.from_config({**ref.config, "checkpointing": True})
    ckpt.load_state_dict(ref.state_dict())
    x, labels, cond = _inputs(2, 2, spatial, 1)
    outs = []
    for net in (ref, ckpt):
        net.train()  # dropout active: checkpointing must replay the same random mask
        torch.manual_seed(123)
        y = net(x, labels, cond)
        y.square().mean().backward()
        outs.append((y.detach(), [p.grad for p in net.parameters()]))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=0, atol=0)
    for a, b in zip(outs[1][1], outs[0][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_is_bit_identical() -> None:
    net = UNet(
        spatial_dims=3,
        in_channels=3,
        out_channels=3,
        cond_channels=2,
        attention_levels=(2,),
        emb_dim=24,
        **SMALL,
    )
    _randomize(net, seed=3)
    cfg = json.loads(json.dumps(net.config))
    assert cfg == net.config
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    clone = UNet.from_config(cfg)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    net.eval()
    clone.eval()
    x, labels, cond = _inputs(2, 3, (4, 8, 4), 2)
    assert torch.equal(net(x, labels, cond), clone(x, labels, cond))


def test_initial_output_is_near_zero() -> None:
    net = UNet(in_channels=2, out_channels=2, **SMALL)
    x, labels, _ = _inputs(2, 2, (8, 8))
    assert net(x, labels).abs().max() < 1e-3
