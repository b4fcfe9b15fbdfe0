"""Tests of sparsediff.models.autoencoder and sparsediff.models.ae_loss."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsediff.errors import InputError
from sparsediff.models.ae_loss import autoencoder_loss, kl_divergence, masked_mse
from sparsediff.models.autoencoder import MaskedAutoencoder

torch.set_num_threads(1)

SMALL = (8, 16, 16)  # factor 4
SMALL8 = (8, 8, 16, 16)  # factor 8


def _data(
    shape: tuple[int, ...], seed: int = 0, p_obs: float = 0.7
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    mask = torch.rand(shape, generator=g) < p_obs
    return x, mask


def _randomize(net: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("sd", "widths", "spatial"),
    [
        (2, SMALL, (16, 32)),
        (2, SMALL8, (16, 32)),
        (3, SMALL, (8, 16, 12)),
        (3, SMALL8, (16, 8, 8)),
    ],
)
@pytest.mark.parametrize("attention", [False, True])
def test_shapes(
    sd: int, widths: tuple[int, ...], spatial: tuple[int, ...], attention: bool
) -> None:
    ae = MaskedAutoencoder(
        2, spatial_dims=sd, widths=widths, latent_channels=3, attention=attention
    )
    assert ae.factor == 2 ** (len(widths) - 1)
    x, mask = _data((2, 2, *spatial))
    x_hat, mean, logvar = ae(x, mask)
    latent = tuple(s // ae.factor for s in spatial)
    assert x_hat.shape == x.shape
    assert mean.shape == logvar.shape == (2, 3, *latent)
    assert ae.latent_shape(spatial) == (3, *latent)
    assert ae.decode(mean).shape == x.shape
    assert torch.isfinite(x_hat).all()


def test_context_channels() -> None:
    ae = MaskedAutoencoder(1, widths=SMALL, context_channels=2)
    x, mask = _data((2, 1, 8, 8))
    ctx = torch.randn(2, 2, 8, 8)
    m1, _ = ae.encode(x, mask, ctx)
    m2, _ = ae.encode(x, mask, ctx + 1.0)
    assert not torch.allclose(m1, m2)
    with pytest.raises(InputError, match="context_channels=2"):
        ae.encode(x, mask)
    with pytest.raises(InputError, match="context_channels=0"):
        MaskedAutoencoder(1, widths=SMALL).encode(x, mask, ctx)


@pytest.mark.parametrize(
    ("sd", "widths", "spatial", "bad", "nearest"),
    [
        (2, SMALL, (16, 30), "30", "28 or 32"),
        (2, SMALL8, (20, 32), "20", "16 or 24"),
        (3, SMALL, (8, 8, 6), "6", "4 or 8"),
        (3, SMALL8, (4, 8, 8), "4", "8"),
    ],
)
def test_non_divisible_sizes_raise_clear_error(
    sd: int, widths: tuple[int, ...], spatial: tuple[int, ...], bad: str, nearest: str
) -> None:
    ae = MaskedAutoencoder(1, spatial_dims=sd, widths=widths)
    x = torch.zeros(1, 1, *spatial)
    for call in (lambda: ae(x, x > 0), lambda: ae.latent_shape(spatial)):
        with pytest.raises(InputError) as info:
            call()
        msg = str(info.value)
        assert isinstance(info.value, ValueError)
        assert f"spatial size {bad}" in msg
        assert f"factor {ae.factor}" in msg
        assert f"nearest valid sizes: {nearest}" in msg


def test_bad_shapes() -> None:
    ae = MaskedAutoencoder(2, widths=SMALL)
    x, mask = _data((1, 2, 8, 8))
    with pytest.raises(InputError, match="mask shape"):
        ae(x, mask[:, :1])
    with pytest.raises(InputError, match="expects x"):
        ae(x[:, :1], mask[:, :1])
    with pytest.raises(InputError, match="is 2D"):
        ae.latent_shape((8, 8, 8))


# ----------------------------------------------------------------------------- masking


@pytest.mark.parametrize("sd", [2, 3])
def test_encoder_ignores_unobserved_values(sd: int) -> None:
    ae = MaskedAutoencoder(2, spatial_dims=sd, widths=SMALL)
    _randomize(ae)
    x, mask = _data((2, 2, *([8] * sd)))
    mean, logvar = ae.encode(x, mask)
    for fill in (float("nan"), 1e30, -7.0, float("inf")):
        x2 = torch.where(mask, x, torch.full_like(x, fill))
        m2, lv2 = ae.encode(x2, mask)
        torch.testing.assert_close(m2, mean, rtol=0, atol=0)
        torch.testing.assert_close(lv2, logvar, rtol=0, atol=0)
    # float masks are accepted and mean the same
    m3, _ = ae.encode(x, mask.float())
    torch.testing.assert_close(m3, mean, rtol=0, atol=0)
    # the observed values and the mask itself do matter
    assert not torch.allclose(ae.encode(x + mask * 1.0, mask)[0], mean)
    assert not torch.allclose(ae.encode(x, ~mask)[0], mean)


def test_masked_mse_values_and_weights() -> None:
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0])
    target = torch.tensor([0.0, 0.0, float("nan"), 1.0])
    mask = torch.tensor([True, True, False, True])
    torch.testing.assert_close(masked_mse(pred, target, mask), torch.tensor((1 + 4 + 9) / 3))
    w = torch.tensor([1.0, 0.0, float("nan"), 2.0])
    torch.testing.assert_close(masked_mse(pred, target, mask, w), torch.tensor((1 + 18) / 3))
    assert masked_mse(pred, target, torch.zeros(4, dtype=torch.bool)).item() == 0.0
    # a per-variable mask broadcasts
    p2 = torch.arange(6.0).reshape(1, 2, 3)
    m2 = torch.tensor([True, False]).reshape(1, 2, 1)
    torch.testing.assert_close(masked_mse(p2, torch.zeros_like(p2), m2), torch.tensor(5 / 3))


def test_masked_loss_ignores_unobserved_targets_and_gradients() -> None:
    ae = MaskedAutoencoder(1, widths=SMALL)
    x, mask = _data((2, 1, 16, 16), seed=1)
    results = []
    for fill in (None, float("nan"), 1e30, float("-inf")):
        xt = x if fill is None else torch.where(mask, x, torch.full_like(x, fill))
        ae.zero_grad()
        loss, parts = autoencoder_loss(ae, xt, mask, generator=torch.Generator().manual_seed(3))
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in ae.parameters()]))
        assert torch.isfinite(loss)
        assert set(parts) == {"loss", "rec", "rec_hidden", "kl"}
    ref_loss, ref_grads = results[0]
    for loss, grads in results[1:]:
        torch.testing.assert_close(loss, ref_loss, rtol=0, atol=0)
        for a, b in zip(grads, ref_grads):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_kl_divergence_closed_form() -> None:
    assert kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, (0.5 * logvar).exp()),
        torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean)),
    ).mean()
    torch.testing.assert_close(kl_divergence(mean, logvar), ref)


def test_autoencoder_loss_hide_and_reconstruct() -> None:
    ae = MaskedAutoencoder(1, widths=SMALL)
    _randomize(ae)
    x, observed = _data((2, 1, 16, 16), seed=2)
    hidden = torch.rand(x.shape, generator=torch.Generator().manual_seed(5)) < 0.5
    kl_weight = 0.1
    loss, parts = autoencoder_loss(
        ae,
        x,
        observed,
        hidden=hidden,
        kl_weight=kl_weight,
        generator=torch.Generator().manual_seed(7),
    )
    # the same computation by hand: the encoder sees observed & hidden, all observed are scored
    x_hat, mean, logvar = ae(x, observed & hidden, generator=torch.Generator().manual_seed(7))
    rec = masked_mse(x_hat, x, observed)
    torch.testing.assert_close(loss, rec + kl_weight * kl_divergence(mean, logvar))
    torch.testing.assert_close(parts["rec"], rec)
    torch.testing.assert_close(parts["rec_hidden"], masked_mse(x_hat, x, observed & ~hidden))
    # values at hidden points are scored but never seen by the encoder
    x2 = torch.where(observed & ~hidden, x + 3.0, x)
    _, parts2 = autoencoder_loss(
        ae,
        x2,
        observed,
        hidden=hidden,
        kl_weight=kl_weight,
        generator=torch.Generator().manual_seed(7),
    )
    torch.testing.assert_close(parts2["kl"], parts["kl"], rtol=0, atol=0)
    assert parts2["rec"] > parts["rec"]


# --------------------------------------------------------------------- sampling, checkpointing


def test_sampling_is_reproducible() -> None:
    ae = MaskedAutoencoder(1, widths=SMALL)
    x, mask = _data((1, 1, 8, 8))
    a = ae(x, mask, generator=torch.Generator().manual_seed(0))[0]
    b = ae(x, mask, generator=torch.Generator().manual_seed(0))[0]
    c = ae(x, mask, generator=torch.Generator().manual_seed(1))[0]
    d = ae(x, mask, sample=False)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    torch.testing.assert_close(d, ae.decode(ae.encode(x, mask)[0]), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("sd", "spatial", "attention"), [(2, (16, 16), True), (3, (8, 8, 8), False)]
)
def test_checkpointing_same_output_and_grads(
    sd: int, spatial: tuple[int, ...], attention: bool
) -> None:
    ref = MaskedAutoencoder(1, spatial_dims=sd, widths=SMALL, attention=attention)
    _randomize(ref)
    ckpt = MaskedAutoencoder.from_config({**ref.config, "checkpointing": True})
    ckpt.load_state_dict(ref.state_dict())
    x, mask = _data((1, 1, *spatial))
    outs = []
    for net in (ref, ckpt):
        x_hat, mean, _ = net(x, mask, generator=torch.Generator().manual_seed(0))
        (x_hat.square().mean() + mean.square().mean()).backward()
        outs.append((x_hat.detach(), [p.grad for p in net.parameters()]))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=0, atol=0)
    for a, b in zip(outs[1][1], outs[0][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- config, state dict


def test_state_dict_round_trip_is_bit_identical() -> None:
    ae = MaskedAutoencoder(
        2, spatial_dims=2, widths=SMALL8, latent_channels=3, context_channels=1, attention=True
    )
    _randomize(ae, seed=4)
    cfg = json.loads(json.dumps(ae.config))
    assert cfg == ae.config
    buf = io.BytesIO()
    torch.save(ae.state_dict(), buf)
    buf.seek(0)
    clone = MaskedAutoencoder.from_config(cfg)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    x, mask = _data((1, 2, 16, 16))
    ctx = torch.randn(1, 1, 16, 16)
    for a, b in zip(ae(x, mask, ctx, sample=False), clone(x, mask, ctx, sample=False), strict=True):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- real data


def _ostia_patch() -> tuple[torch.Tensor, torch.Tensor]:
    netCDF4 = pytest.importorskip("netCDF4")
    iris_sample_data = pytest.importorskip("iris_sample_data")
    path = Path(iris_sample_data.__file__).parent / "sample_data" / "ostia_monthly.nc"
    with netCDF4.Dataset(path) as ds:
        window = ds["surface_temperature"][0, 1:17, 128:192].filled(np.nan).astype(np.float32)
    observed = np.isfinite(window)
    assert 0.2 < 1 - observed.mean() < 0.6  # the window has land (unobserved)
    mu, sd = window[observed].mean(), window[observed].std()
    x = torch.from_numpy((window - mu) / sd)[None, None]  # NaN stays at land points
    return x, torch.from_numpy(observed)[None, None]


def test_overfits_one_ostia_patch() -> None:
    x, observed = _ostia_patch()
    torch.manual_seed(0)
    ae = MaskedAutoencoder(1, widths=(16, 32, 64), latent_channels=4)
    opt = torch.optim.Adam(ae.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    rec = []
    for _ in range(200):
        loss, parts = autoencoder_loss(ae, x, observed, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.append(parts["rec"].item())
    assert np.isfinite(rec).all()
    first, last = rec[0], float(np.mean(rec[-10:]))
    assert first / last > 10, (first, last)
    with torch.no_grad():
        x_hat = ae(x, observed, sample=False)[0]
    assert torch.isfinite(x_hat).all()  # filled everywhere, land included
