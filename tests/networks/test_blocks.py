"""Tests of sparsediff.networks.blocks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsediff.errors import ConfigError, InputError
from sparsediff.networks.blocks import (
    AttentionBlock,
    Downsample,
    GroupNorm,
    NoiseEmbedding,
    ResBlock,
    Upsample,
    check_divisible,
    checkpoint_call,
    conv_nd,
    group_count,
)

torch.set_num_threads(1)


def _shape(spatial_dims: int, b: int, c: int, n: int = 8) -> tuple[int, ...]:
    return (b, c, *([n] * spatial_dims))


@pytest.mark.parametrize(("sd", "cls"), [(2, nn.Conv2d), (3, nn.Conv3d)])
def test_conv_nd_type_and_same_padding(sd: int, cls: type) -> None:
    conv = conv_nd(sd, 3, 5, 3)
    assert isinstance(conv, cls)
    assert conv(torch.randn(_shape(sd, 2, 3))).shape == _shape(sd, 2, 5)
    strided = conv_nd(sd, 3, 5, 3, stride=2)
    assert strided(torch.randn(_shape(sd, 1, 3))).shape == _shape(sd, 1, 5, 4)


def test_conv_nd_rejects_bad_dims() -> None:
    with pytest.raises(ConfigError, match="spatial_dims"):
        conv_nd(1, 3, 3)


@pytest.mark.parametrize(
    ("channels", "groups"), [(64, 32), (32, 32), (48, 24), (6, 6), (1, 1), (37, 1), (20, 20)]
)
def test_group_count_is_largest_divisor(channels: int, groups: int) -> None:
    assert group_count(channels) == groups
    assert GroupNorm(channels).num_groups == groups


@pytest.mark.parametrize("sd", [2, 3])
@pytest.mark.parametrize(("cin", "cout"), [(8, 8), (8, 16)])
def test_resblock_shapes(sd: int, cin: int, cout: int) -> None:
    block = ResBlock(cin, cout, spatial_dims=sd)
    assert block(torch.randn(_shape(sd, 2, cin))).shape == _shape(sd, 2, cout)


@pytest.mark.parametrize("sd", [2, 3])
def test_resblock_film_uses_embedding(sd: int) -> None:
    torch.manual_seed(0)
    block = ResBlock(8, 8, spatial_dims=sd, emb_dim=12)
    x = torch.randn(_shape(sd, 2, 8))
    e1, e2 = torch.randn(2, 12), torch.randn(2, 12)
    y1, y2 = block(x, e1), block(x, e2)
    assert y1.shape == x.shape
    assert not torch.allclose(y1, y2)
    # per-sample conditioning: sample 0 only depends on embedding 0
    e3 = e2.clone()
    e3[0] = e1[0]
    torch.testing.assert_close(block(x, e3)[0], y1[0])
    with pytest.raises(InputError, match="embedding"):
        block(x)


@pytest.mark.parametrize("sd", [2, 3])
def test_down_and_upsample_shapes(sd: int) -> None:
    x = torch.randn(_shape(sd, 1, 4, 8))
    assert Downsample(4, spatial_dims=sd)(x).shape == _shape(sd, 1, 4, 4)
    assert Upsample(4, spatial_dims=sd)(x).shape == _shape(sd, 1, 4, 16)


def _reference_attention(block: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
    b, c = x.shape[:2]
    h = block.norm(x).reshape(b, c, -1).transpose(1, 2)
    q, k, v = block.qkv(h).chunk(3, dim=-1)
    heads, d = block.heads, c // block.heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, -1, heads, d).transpose(1, 2)

    q, k, v = split(q), split(k), split(v)
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (w @ v).transpose(1, 2).reshape(b, -1, c)
    return x + block.proj(out).transpose(1, 2).reshape(x.shape)


@pytest.mark.parametrize("sd", [2, 3])
def test_attention_matches_reference(sd: int) -> None:
    torch.manual_seed(0)
    block = AttentionBlock(128, spatial_dims=sd, head_channels=32)
    assert block.heads == 4
    x = torch.randn(_shape(sd, 2, 128, 4))
    y = block(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, _reference_attention(block, x), rtol=1e-4, atol=1e-5)


def test_attention_is_global_and_permutation_equivariant() -> None:
    torch.manual_seed(0)
    block = AttentionBlock(16, spatial_dims=2)
    x = torch.randn(1, 16, 6, 6)
    perm = torch.randperm(36)
    y = block(x).reshape(1, 16, 36)[:, :, perm]
    y_perm = block(x.reshape(1, 16, 36)[:, :, perm].reshape(1, 16, 6, 6)).reshape(1, 16, 36)
    torch.testing.assert_close(y, y_perm, rtol=1e-5, atol=1e-5)
    # a change at one corner reaches the opposite corner in a single block
    x2 = x.clone()
    x2[..., 0, 0] += 5.0
    assert not torch.allclose(block(x2)[..., 5, 5], block(x)[..., 5, 5])


@pytest.mark.parametrize("kind", ["fourier", "positional"])
def test_noise_embedding(kind: str) -> None:
    torch.manual_seed(0)
    emb = NoiseEmbedding(32, kind=kind)
    labels = torch.tensor([-1.0, 0.0, 0.5])
    out = emb(labels)
    assert out.shape == (3, 32)
    assert not torch.allclose(out[0], out[2])
    # features are fixed by construction, so a fresh module has the same buffer
    torch.testing.assert_close(NoiseEmbedding(32, kind=kind).freqs, emb.freqs, rtol=0, atol=0)
    assert "freqs" in emb.state_dict()


def test_noise_embedding_bad_kind() -> None:
    with pytest.raises(ConfigError, match="kind"):
        NoiseEmbedding(16, kind="cosine")


def test_checkpoint_call_same_output_and_grads() -> None:
    torch.manual_seed(0)
    block = ResBlock(8, 16, spatial_dims=3, emb_dim=4)
    x = torch.randn(1, 8, 6, 6, 6, requires_grad=True)
    e = torch.randn(1, 4)
    results = []
    for enabled in (False, True):
        block.zero_grad()
        x.grad = None
        y = checkpoint_call(block, x, e, enabled=enabled)
        y.square().sum().backward()
        grads = [p.grad.clone() for p in block.parameters()]
        results.append((y.detach(), x.grad.clone(), grads))
    (y0, gx0, g0), (y1, gx1, g1) = results
    torch.testing.assert_close(y1, y0, rtol=0, atol=0)
    torch.testing.assert_close(gx1, gx0, rtol=1e-6, atol=1e-7)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_check_divisible_message() -> None:
    check_divisible((16, 32), 8, "Net")
    with pytest.raises(InputError) as info:
        check_divisible((16, 30), 8, "Net")
    msg = str(info.value)
    assert "30" in msg
    assert "factor 8" in msg
    assert "24 or 32" in msg
    with pytest.raises(InputError, match=r"nearest valid sizes: 8$"):
        check_divisible((5,), 8, "Net")


def test_upsample_is_nearest_then_conv() -> None:
    up = Upsample(1, spatial_dims=2)
    with torch.no_grad():
        up.conv.weight.zero_()
        up.conv.weight[0, 0, 1, 1] = 1.0
        up.conv.bias.zero_()
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    torch.testing.assert_close(up(x), F.interpolate(x, scale_factor=2, mode="nearest"))
