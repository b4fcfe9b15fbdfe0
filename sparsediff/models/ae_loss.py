"""Losses of the mask-aware autoencoder: masked reconstruction + KL (DESIGN §3, stage 1).

Reconstruction is scored only on observed points. "Hide and reconstruct": a
further share of the observed points is hidden from the encoder (``hidden``
mask, ``True`` = kept visible) and still scored, so the encoder learns to infer
what it cannot see.
"""

from __future__ import annotations

import torch

from sparsediff.errors import InputError
from sparsediff.models.autoencoder import MaskedAutoencoder

__all__ = ["autoencoder_loss", "kl_divergence", "masked_mse"]


def _as_bool(mask: torch.Tensor) -> torch.Tensor:
    return mask if mask.dtype == torch.bool else mask != 0


def masked_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error over the points where ``mask`` is true.

    Values of ``target`` (and ``weight``) at points where ``mask`` is false do not
    matter at all, NaN and Inf included: they are discarded with :func:`torch.where`,
    so neither the loss nor its gradient depends on them.

    Parameters
    ----------
    pred : torch.Tensor
        Prediction.
    target : torch.Tensor
        Target, same shape as ``pred``.
    mask : torch.Tensor
        Bool (``True`` = scored) or 0/1 float, broadcastable to ``pred``.
    weight : torch.Tensor, optional
        Non-negative weights broadcastable to ``pred`` (e.g. per-variable or
        area weights); the result is the weighted mean.

    Returns
    -------
    torch.Tensor
        A scalar; 0 when no point is scored.
    """
    if pred.shape != target.shape:
        raise InputError(
            f"masked_mse: pred shape {tuple(pred.shape)} differs from target {tuple(target.shape)}"
        )
    m = _as_bool(mask).expand_as(pred)
    zero = torch.zeros((), dtype=pred.dtype, device=pred.device)
    sq = torch.where(m, pred - target, zero).square()
    if weight is None:
        w = m.to(pred.dtype)
    else:
        w = torch.where(m, weight.to(pred.dtype).expand_as(pred), zero)
        sq = sq * w
    return sq.sum() / w.sum().clamp_min(torch.finfo(pred.dtype).tiny)


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL divergence of ``N(mean, exp(logvar))`` from ``N(0, 1)``, averaged over elements.

    Parameters
    ----------
    mean, logvar : torch.Tensor
        Latent parameters as returned by :meth:`MaskedAutoencoder.encode`.

    Returns
    -------
    torch.Tensor
        ``mean(0.5 * (mean² + exp(logvar) - 1 - logvar))``, a scalar.
    """
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()


def autoencoder_loss(
    model: MaskedAutoencoder,
    x: torch.Tensor,
    observed: torch.Tensor,
    *,
    hidden: torch.Tensor | None = None,
    kl_weight: float = 1e-6,
    context: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Hide-and-reconstruct loss of the autoencoder.

    The encoder sees ``observed & hidden``; the reconstruction is scored on all
    ``observed`` points (the hidden ones included).

    Parameters
    ----------
    model : MaskedAutoencoder
        The autoencoder (or any module with the same ``forward`` contract).
    x : torch.Tensor
        ``(B, n_vars, *spatial)``; any value (NaN included) at non-observed points.
    observed : torch.Tensor
        Bool, same shape as ``x``; ``True`` = observed.
    hidden : torch.Tensor, optional
        Bool, same shape; ``True`` = kept visible to the encoder, ``False`` = hidden
        from it. ``None`` hides nothing.
    kl_weight : float, default 1e-6
        Weight of the KL term.
    context : torch.Tensor, optional
        Context channels passed to the encoder.
    generator : torch.Generator, optional
        For the latent draw.

    Returns
    -------
    loss : torch.Tensor
        ``rec + kl_weight * kl`` (scalar, differentiable).
    parts : dict of str to torch.Tensor
        Detached scalars: ``"rec"`` (all observed points), ``"rec_hidden"`` (observed
        points hidden from the encoder; 0 if none), ``"kl"``, ``"loss"``.
    """
    obs = _as_bool(observed)
    enc_mask = obs if hidden is None else obs & _as_bool(hidden)
    x_hat, mean, logvar = model(x, enc_mask, context, sample=True, generator=generator)
    rec = masked_mse(x_hat, x, obs)
    kl = kl_divergence(mean, logvar)
    loss = rec + kl_weight * kl
    with torch.no_grad():
        rec_hidden = masked_mse(x_hat, x, obs & ~enc_mask)
    parts = {
        "loss": loss.detach(),
        "rec": rec.detach(),
        "rec_hidden": rec_hidden,
        "kl": kl.detach(),
    }
    return loss, parts
