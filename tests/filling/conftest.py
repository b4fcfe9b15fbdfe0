"""Small untrained models for fill tests (the fill invariants hold for any weights)."""

from __future__ import annotations

from typing import Any

import torch

from sparsediff.data.stats import Stats, VariableStats
from sparsediff.method import METHODS
from sparsediff.method.spec import ModelSpec
from sparsediff.model import Model

ARCH: dict[str, Any] = {
    "autoencoder": {
        "encoder_widths": [8, 8],
        "decoder_widths": [8, 8],
        "latent_channels": 2,
        "blocks_per_level": 1,
        "attention": False,
        "checkpointing": False,
    },
    "prior": {"widths": [8, 8], "blocks_per_level": 1, "attention_levels": [], "dropout": 0.0},
}


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
    **spec: Any,
) -> Model:
    """A randomly initialised model of the smallest sensible size.

    The decoder's output layer (zero at initialisation, so that an untrained
    model returns the first guess) gets random weights too, so fills depend
    on the latent and the noise.
    """
    torch.manual_seed(seed)
    full = ModelSpec(
        mode=mode,
        variables=variables,
        dims=dims,
        window=window,
        units=units or {},
        **spec,
    )
    cls = METHODS[mode]
    nets = {stage: cls.new_net(stage, full, ARCH) for stage in cls.stages}
    if "autoencoder" in nets:
        out = nets["autoencoder"].decoder.conv_out  # type: ignore[union-attr]
        with torch.no_grad():
            out.weight.normal_(0.0, 0.05)
    stats = Stats({v: VariableStats(mean=mean, std=std, count=1) for v in variables})
    return Model(full, nets, stats).eval()
