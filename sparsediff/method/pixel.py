"""The pixel-space baseline: the same denoiser on full-resolution departures.

A diffusion prior over the departure from the first guess at every point of
the window, conditioned on the same inputs as the latent method (shown
values, masks, first guess, context), trained by hide and reconstruct on one
of two losses:

* ``"masked"``: scored on observed points only (the fair variant);
* ``"zero_filled"``: scored everywhere, with the departure of unobserved
  points set to 0 (training on zero-filled images, as the seed paper's pixel
  baseline).

A completion is ``guess + sample``; the spread is not calibrated
(``spread_scale`` is not used, [`Method.uncalibrated`][sparsediff.method.base.Method.uncalibrated]
says so), and the windows are not coarsened (no autoencoder: the window
size need only suit the prior U-Net).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sparsediff.diffusion.samplers import sample
from sparsediff.method.base import Method, NetworkClass, TrainBatch, TrainSettings
from sparsediff.method.guidance import cfg_denoiser, consistency_guidance
from sparsediff.method.inputs import centre_inputs, guess_of, n_inputs
from sparsediff.method.objectives import PriorObjective
from sparsediff.method.options import FillOptions
from sparsediff.method.spec import ModelSpec
from sparsediff.networks.precond import EDMPrecond
from sparsediff.networks.unet import UNet
from sparsediff.rng import Stream

__all__ = ["PixelMethod"]

_STAGE_KEY = 3


class PixelMethod(Method):
    """Pixel-space diffusion of the departure from the first guess (a baseline)."""

    mode: ClassVar[str] = "pixel"
    stages: ClassVar[tuple[str, ...]] = ("prior",)
    required: ClassVar[tuple[str, ...]] = ("prior",)
    networks: ClassVar[dict[str, NetworkClass]] = {"prior": EDMPrecond}
    own_keys: ClassVar[tuple[str, ...]] = ("prior.pixel_loss",)

    @torch.no_grad()
    def complete(
        self, inputs: Tensor, keys: Sequence[tuple[int, ...]], opts: FillOptions
    ) -> Tensor:
        """``guess + sample`` per row."""
        self.check_ready()
        n_vars = self.spec.n_vars
        guess = guess_of(inputs, n_vars)
        sigmas = self.sigmas(opts, inputs.device)
        x = self.noise((n_vars, *inputs.shape[2:]), keys, opts.seed, inputs.device) * sigmas[0]
        guidance = None
        if opts.guidance:
            shown = inputs[:, n_vars : 2 * n_vars] > 0
            guidance = consistency_guidance(
                lambda d: guess + d, inputs[:, :n_vars], shown, opts.guidance
            )
        d = sample(
            opts.sampler,
            cfg_denoiser(
                self.accelerated("prior", self.nets["prior"], opts, inputs.device), opts.cfg_scale
            ),
            x,
            sigmas,
            cond=centre_inputs(inputs, n_vars, self.spec.n_context)[0],
            guidance=guidance,
            generator=self.step_generators(keys, opts.seed),
        )
        return guess + d.float()

    @classmethod
    def new_net(cls, stage: str, spec: ModelSpec, arch: dict[str, Any]) -> nn.Module:
        """The pixel denoiser: a U-Net over the departure, conditioned on the inputs."""
        p = arch["prior"]
        n_in = n_inputs(spec.n_vars, spec.n_context)
        backbone = UNet(
            spatial_dims=len(spec.dims),
            in_channels=spec.n_vars,
            out_channels=spec.n_vars,
            cond_channels=n_in,
            widths=p["widths"],
            blocks_per_level=p["blocks_per_level"],
            attention_levels=p["attention_levels"],
            dropout=p["dropout"],
        )
        return EDMPrecond(backbone, sigma_data=1.0, cond_channels=n_in, cond_dropout=0.0)

    def objective(self, stage: str, net: nn.Module, settings: TrainSettings) -> nn.Module:
        """[`PriorObjective`][PriorObjective] around the denoiser."""
        assert isinstance(net, EDMPrecond)
        return PriorObjective(net, settings.objective)

    @torch.no_grad()
    def prepare(
        self,
        stage: str,
        batch: TrainBatch,
        settings: TrainSettings,
        *,
        purpose: int = Stream.HIDE,
    ) -> dict[str, Any]:
        """Objective arguments: the departure at observed points, keyed noise and dropout."""
        w = self.windows(batch, settings.prior_hide, settings, stream=purpose, stage_key=_STAGE_KEY)
        guess = guess_of(w.inputs, self.spec.n_vars)
        x0 = torch.where(w.observed, w.values.float() - guess, torch.zeros_like(guess))
        weight = w.observed.to(x0.dtype) if self.spec.pixel_loss == "masked" else None
        net_in, _ = centre_inputs(w.inputs, self.spec.n_vars, self.spec.n_context)
        return self.diffusion_args(x0, net_in, batch.positions, settings, _STAGE_KEY, weight)
