"""Per-sample training objectives, as modules so that DDP can wrap them.

Each objective's ``forward`` returns one loss per sample, shape ``(B,)``, and
a per-sample diagnostic; the trainer averages the losses. Averaging per-sample
losses (instead of pooling all points of the batch) makes a 2-rank DDP step
equal to a 1-process step over the same global batch. All randomness (hidden
points, noise, noise levels, dropouts) is drawn by
[`sparsediff.method.base.Method.prepare`][sparsediff.method.base.Method.prepare] from keys and
passed in.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsediff.diffusion.losses import get_loss
from sparsediff.networks.completion import CompletionAutoencoder
from sparsediff.networks.precond import EDMPrecond

__all__ = ["CompletionObjective", "PriorObjective", "per_sample_masked_mse"]


def per_sample_masked_mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared error over the points where ``mask`` is True, one value per sample.

    Values of ``target`` where ``mask`` is False do not matter (NaN is fine);
    a sample with no masked point has loss 0.
    """
    m = mask.to(pred.dtype)
    err = torch.where(mask, (pred - torch.where(mask, target, pred)) ** 2, torch.zeros_like(pred))
    dims = tuple(range(1, pred.ndim))
    return err.sum(dims) / m.sum(dims).clamp_min(1.0)


class CompletionObjective(nn.Module):
    """Stage 1 of the latent method: hide and reconstruct with an asymmetric autoencoder.

    The encoder sees the target where observed (and the inputs); the decoder
    sees only the inputs (built from the shown points) and the latent. The
    loss is the squared error of ``guess + departure`` on the ``scored``
    points — observed points hidden from the inputs — plus ``kl_weight``
    times the mean KL divergence of the latent. A sample whose latent is
    dropped (``keep_latent`` False) decodes from ``z = 0`` and pays no KL: it
    trains the regression.
    """

    def __init__(self, autoencoder: CompletionAutoencoder, kl_weight: float) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.kl_weight = float(kl_weight)

    def forward(
        self,
        inputs: torch.Tensor,
        guess: torch.Tensor,
        offset: torch.Tensor,
        values: torch.Tensor,
        observed: torch.Tensor,
        scored: torch.Tensor,
        eps: torch.Tensor,
        keep_latent: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(loss, squared error on the scored points)`` per sample.

        ``inputs`` are the centred network inputs, ``offset`` their shift (the
        encoder sees the target shifted the same way) and ``guess`` the
        uncentred first guess the departure is added to.
        """
        ae = self.autoencoder
        mean, logvar = ae.encode(values - offset, observed, inputs)
        keep = keep_latent.to(mean.dtype).view(-1, *([1] * (mean.ndim - 1)))
        z = (mean + torch.exp(0.5 * logvar) * eps.to(mean.dtype)) * keep
        pred = guess.float() + ae.decode(inputs, z).float()
        mse = per_sample_masked_mse(pred, values.float(), scored)
        kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float())
        kl = kl.flatten(1).mean(1) * keep.flatten()
        return mse + self.kl_weight * kl, mse


class PriorObjective(nn.Module):
    """A diffusion loss (EDM, epsilon, v or flow) over ``D(x, sigma, cond)``, per sample."""

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
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample loss for clean ``x0`` at the given noise level and noise (twice)."""
        per = self.loss(
            self.precond,
            x0,
            cond=cond,
            weight=weight,
            noise_level=noise_level,
            noise=noise,
            reduction="none",
        )
        return per, per.detach()
