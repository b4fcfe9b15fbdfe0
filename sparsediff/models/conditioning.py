"""What the prior is conditioned on: the observed view of a window.

Latent prior: the encoder mean of the shown data (scaled like the prior's
latents) and the share of shown points per latent cell. Pixel prior: the shown
values (zero elsewhere) and the view mask. Training and fill both build the
condition here, so they cannot drift apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sparsediff.models.autoencoder import MaskedAutoencoder

__all__ = ["latent_condition", "pixel_condition"]


@torch.no_grad()
def latent_condition(
    autoencoder: MaskedAutoencoder,
    values: torch.Tensor,
    view: torch.Tensor,
    latent_scale: float,
) -> torch.Tensor:
    """Conditioning of the latent prior for a view (``view`` = points shown).

    The encoder mean of the shown data (scaled like the prior's latents) and the
    share of shown points in each latent cell, concatenated as channels.
    """
    mean, _ = autoencoder.encode(values, view)
    frac = F.avg_pool2d if values.ndim == 4 else F.avg_pool3d
    share = frac(view.float(), kernel_size=autoencoder.factor)
    return torch.cat([mean.float() * latent_scale, share], dim=1)


def pixel_condition(values: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
    """Conditioning of the pixel-space prior: shown values (zero elsewhere) and the view mask."""
    shown = torch.where(view, values, torch.zeros_like(values))
    return torch.cat([shown, view.to(values.dtype)], dim=1)
