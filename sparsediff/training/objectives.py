"""Per-sample training objectives, as modules so that DDP can wrap them.

Each objective's ``forward`` returns one loss per sample, shape ``(B,)``; the
trainer averages them. Averaging per-sample losses (instead of pooling all
points of the batch) makes a 2-rank DDP step equal to a 1-process step over the
same global batch. All randomness (noise, noise levels, hidden masks, condition
dropout) is drawn by the trainer and passed in.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsediff.diffusion.losses import get_loss
from sparsediff.models.autoencoder import MaskedAutoencoder
from sparsediff.models.precond import EDMPrecond

__all__ = [
    "AutoencoderObjective",
    "PriorObjective",
    "per_sample_masked_mse",
]


def per_sample_masked_mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared error over the points where ``mask`` is True, one value per sample.

    Values of ``target`` at unobserved points (even NaN) do not matter.
    """
    m = mask.to(pred.dtype)
    err = torch.where(mask, (pred - torch.where(mask, target, pred)) ** 2, torch.zeros_like(pred))
    dims = tuple(range(1, pred.ndim))
    return err.sum(dims) / m.sum(dims).clamp_min(1.0)


class AutoencoderObjective(nn.Module):
    """Stage 1: hide and reconstruct.

    The encoder sees ``observed & shown``; the reconstruction is scored on every
    observed point, so the encoder learns to infer what it cannot see.
    """

    def __init__(self, autoencoder: MaskedAutoencoder, kl_weight: float) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.kl_weight = kl_weight

    def forward(
        self,
        values: torch.Tensor,
        observed: torch.Tensor,
        shown: torch.Tensor,
        eps: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(loss, reconstruction_mse)`` per sample."""
        enc_mask = observed & shown
        mean, logvar = self.autoencoder.encode(values, enc_mask)
        z = mean + torch.exp(0.5 * logvar) * eps
        recon = self.autoencoder.decode(z).float()
        mse = per_sample_masked_mse(recon, values, observed)
        kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float())
        kl = kl.flatten(1).mean(1)
        return mse + self.kl_weight * kl, mse


class PriorObjective(nn.Module):
    """Stage 2: one diffusion loss (EDM, epsilon, v or flow) over ``D(x, sigma, cond)``."""

    def __init__(self, precond: EDMPrecond, objective: str) -> None:
        super().__init__()
        self.precond = precond
        # only the EDM weighting depends on the data scale; the others take schedule options
        kw = {"sigma_data": precond.sigma_data} if objective == "edm" else {}
        self.loss = get_loss(objective, **kw)

    def forward(
        self,
        x0: torch.Tensor,
        cond: torch.Tensor | None,
        noise_level: torch.Tensor,
        noise: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-sample loss for clean ``x0`` at the given noise level and noise."""
        return self.loss(
            self.precond,
            x0,
            cond=cond,
            weight=weight,
            noise_level=noise_level,
            noise=noise,
            reduction="none",
        )
