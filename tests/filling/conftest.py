"""Small untrained models for fill tests (the fill invariants hold for any weights)."""

from __future__ import annotations

import torch

from sparsediff.data.stats import Stats, VariableStats
from sparsediff.model import Model
from sparsediff.models.autoencoder import MaskedAutoencoder
from sparsediff.models.precond import EDMPrecond
from sparsediff.models.unet import UNet


def make_model(
    variables: list[str],
    dims: list[str],
    window: list[int],
    *,
    mode: str = "latent",
    units: dict[str, str] | None = None,
    seed: int = 0,
    mean: float = 0.0,
    std: float = 1.0,
) -> Model:
    """A randomly initialised model of the smallest sensible size."""
    torch.manual_seed(seed)
    n = len(variables)
    nd = len(dims)
    ae = None
    if mode == "latent":
        ae = MaskedAutoencoder(n, spatial_dims=nd, widths=(8, 8), latent_channels=2)
        ch, cond = 2, 2 + n
    else:
        ch, cond = n, 2 * n
    unet = UNet(
        spatial_dims=nd,
        in_channels=ch,
        out_channels=ch,
        cond_channels=cond,
        widths=(8, 8),
        blocks_per_level=1,
        attention_levels=(),
    )
    prior = EDMPrecond(unet, cond_channels=cond)
    stats = Stats({v: VariableStats(mean=mean, std=std, count=1) for v in variables})
    config = {
        "variables": variables,
        "dims": dims,
        "window": window,
        "units": units or {},
        "grid_spacing": {},
        "mode": mode,
        "latent_scale": 1.0,
    }
    return Model(ae, prior, stats, config).eval()
