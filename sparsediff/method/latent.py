"""The v2 latent method: asymmetric autoencoder + latent diffusion prior + calibrated spread.

Stage 1 (``"autoencoder"``) trains a
[`CompletionAutoencoder`][sparsediff.networks.completion.CompletionAutoencoder] by hide and
reconstruct: the decoder sees the shown points, their masks, the first guess
and the context at full resolution; the encoder also sees the target. The loss
is the error of ``guess + departure`` on the hidden observed points (never on
points nobody observed) plus a small KL term. With probability
``latent_dropout`` a sample's latent is zeroed, so that the decoder with a zero
latent is a regression: the best single estimate from the inputs.

Stage 2 (``"prior"``) trains an EDM denoiser on the encoder means (scaled to
unit RMS), conditioned on the inputs folded to the latent grid
([`space_to_depth`][sparsediff.networks.completion.space_to_depth]), with condition
dropout.

A completion ([`LatentMethod.complete`][LatentMethod.complete]) is::

    guess + r + s * (D(inputs, z) - r),    r = a * D(inputs, 0)

with ``z`` sampled from the prior, ``a`` the fitted departure scale and ``s``
the calibrated spread factor (per distance to the nearest shown point): the
regression plus a calibrated perturbation, each drawn from its own key. The
networks see the inputs centred on the window's mean first guess
([`centre_inputs`][sparsediff.method.inputs.centre_inputs]). The members of one window, made
together ([`LatentMethod.complete_parts`][LatentMethod.complete_parts] with ``repeats``), have their
perturbations centred, so that the ensemble mean is the regression.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sparsediff.diffusion.samplers import sample
from sparsediff.errors import ConfigError
from sparsediff.method.base import (
    HideSpec,
    Method,
    NetworkClass,
    TrainBatch,
    TrainSettings,
    WindowFactors,
)
from sparsediff.method.calibration import SpreadFit, fit_calibration
from sparsediff.method.guidance import cfg_denoiser, consistency_guidance
from sparsediff.method.inputs import centre_inputs, guess_of, spread_covariate
from sparsediff.method.objectives import CompletionObjective, PriorObjective
from sparsediff.method.options import FillOptions
from sparsediff.method.spec import ModelSpec
from sparsediff.method.variability import POWERS, variability_factor
from sparsediff.networks.completion import CompletionAutoencoder, space_to_depth
from sparsediff.networks.precond import EDMPrecond
from sparsediff.networks.unet import UNet
from sparsediff.rng import Stream, generator_for

__all__ = ["LatentMethod"]

_STAGE_KEY = {"autoencoder": 1, "prior": 2}


class LatentMethod(Method):
    """Asymmetric autoencoder + latent diffusion prior (see the module docstring)."""

    mode: ClassVar[str] = "latent"
    stages: ClassVar[tuple[str, ...]] = ("autoencoder", "prior")
    required: ClassVar[tuple[str, ...]] = ("autoencoder", "prior")
    networks: ClassVar[dict[str, NetworkClass]] = {
        "autoencoder": CompletionAutoencoder,
        "prior": EDMPrecond,
    }
    calibrates: ClassVar[bool] = True
    adapts: ClassVar[str | None] = "autoencoder"
    #: While the prior trains, the evaluation scores the mean of a centred ensemble: the
    #: regression, whatever the prior's weights (its val_rmse moves by float rounding only).
    unscored_stages: ClassVar[tuple[str, ...]] = ("prior",)

    @property
    def autoencoder(self) -> CompletionAutoencoder:
        """The stage-1 network."""
        net = self.nets["autoencoder"]
        assert isinstance(net, CompletionAutoencoder)
        return net

    def cond(self, centred: Tensor) -> Tensor:
        """The prior's condition: the (centred) inputs folded onto the latent grid."""
        return space_to_depth(centred, self.autoencoder.factor)

    def centred(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """The inputs as the networks see them, and the shift (see `centre_inputs`)."""
        return centre_inputs(inputs, self.spec.n_vars, self.spec.n_context)

    # ------------------------------------------------------------------ completion
    @torch.no_grad()
    def complete(
        self, inputs: Tensor, keys: Sequence[tuple[int, ...]], opts: FillOptions
    ) -> Tensor:
        """Regression plus a calibrated latent-diffusion perturbation, one per row."""
        centre, perturbation = self.complete_parts(inputs, keys, opts)
        return centre + perturbation

    @torch.no_grad()
    def complete_parts(
        self,
        inputs: Tensor,
        keys: Sequence[tuple[int, ...]],
        opts: FillOptions,
        *,
        repeats: int = 1,
    ) -> tuple[Tensor, Tensor]:
        """``(guess + regression, spread * (sample - regression))`` per key.

        With ``repeats = R`` each input row serves R consecutive keys (the
        members of one window): its regression (one decoder pass) is shared,
        and for R > 1 the members' perturbations are centred on their mean and
        rescaled by ``sqrt(R / (R - 1))``, so the ensemble mean is the
        regression exactly and the member variance stays unbiased. A single
        member (R = 1) is the raw calibrated sample.
        """
        self.check_ready()
        ae = self.autoencoder
        device = inputs.device
        prior = self.accelerated("prior", self.nets["prior"], opts, device)
        decode = self.accelerated("decode", ae.decode, opts, device)
        n_vars = self.spec.n_vars
        lat = ae.latent_shape(inputs.shape[2:])
        net_in, _ = self.centred(inputs)
        regression = decode(net_in, net_in.new_zeros((net_in.shape[0], *lat))).float()
        spread = self.spread(inputs)  # per window: computed once for its members
        if repeats > 1:
            if isinstance(spread, Tensor):
                spread = spread.repeat_interleave(repeats, dim=0)
            inputs = inputs.repeat_interleave(repeats, dim=0)
            net_in = net_in.repeat_interleave(repeats, dim=0)
            regression = regression.repeat_interleave(repeats, dim=0)
        if len(keys) != inputs.shape[0]:
            raise ValueError(f"{len(keys)} keys for {inputs.shape[0]} rows")
        guess = guess_of(inputs, n_vars)
        scale = self.spec.latent_scale
        sigmas = self.sigmas(opts, device)
        x = self.noise(lat, keys, opts.seed, device) * sigmas[0]
        guidance = None
        if opts.guidance:
            shown = inputs[:, n_vars : 2 * n_vars] > 0
            values = inputs[:, :n_vars]
            shift = guess + (self.spec.departure_scale - 1.0) * regression
            guidance = consistency_guidance(
                lambda z: shift + decode(net_in, z / scale), values, shown, opts.guidance
            )
        z = sample(
            opts.sampler,
            cfg_denoiser(prior, opts.cfg_scale),
            x,
            sigmas,
            cond=self.cond(net_in),
            guidance=guidance,
            generator=self.step_generators(keys, opts.seed),
        )
        delta = decode(net_in, z / scale).float() - regression
        if repeats > 1:
            # the members of one window: centred on the regression, so the ensemble mean
            # is the regression itself (no sampling noise of a finite ensemble in it), and
            # rescaled so that their variance stays unbiased
            d = delta.view(-1, repeats, *delta.shape[1:])
            d = (d - d.mean(dim=1, keepdim=True)) * math.sqrt(repeats / (repeats - 1))
            delta = d.reshape(delta.shape)
        # the centre uses the shrunk departure; the perturbation is the sample's
        # departure from the unshrunk regression (the latent's own contribution)
        return guess + self.spec.departure_scale * regression, spread * delta

    def spread(self, inputs: Tensor) -> Tensor | float:
        """The calibrated spread factor at every point (or one factor for all)."""
        spec = self.spec
        if not spec.spread_scales:
            return spec.spread_scale
        cov = spread_covariate(inputs, spec.n_vars, spec.spread_covariate)
        edges = torch.tensor(spec.spread_bins[1:], dtype=cov.dtype, device=cov.device)
        scales = torch.tensor(spec.spread_scales, dtype=cov.dtype, device=cov.device)
        factor = scales[torch.bucketize(cov, edges, right=True)]
        if spec.spread_variability_power > 0:
            factor = factor * variability_factor(
                inputs,
                spec.n_vars,
                spec.spread_variability_sigma,
                spec.spread_variability_power,
                spec.spread_variability_ref,
            ).to(factor.dtype)
        return factor

    @torch.no_grad()
    def regression(self, inputs: Tensor) -> Tensor:
        """The deterministic estimate ``guess + departure_scale * D(inputs, 0)`` (no sampling)."""
        if "autoencoder" not in self.nets:
            raise ConfigError("this latent model has no trained autoencoder")
        ae = self.autoencoder
        zero = inputs.new_zeros((inputs.shape[0], *ae.latent_shape(inputs.shape[2:])))
        net_in, _ = self.centred(inputs)
        departure = ae.decode(net_in, zero).float() * self.spec.departure_scale
        return guess_of(inputs, self.spec.n_vars) + departure

    # ------------------------------------------------------------------ training
    @classmethod
    def window_factors(cls, arch: dict[str, Any]) -> WindowFactors:
        """The encoder's factor ``2**(levels - 1)`` and the full-resolution decoder's."""
        a = arch["autoencoder"]
        return WindowFactors(
            latent=2 ** (len(a["encoder_widths"]) - 1),
            decoder=2 ** (len(a["decoder_widths"]) - 1),
        )

    @torch.no_grad()
    def before_stage(
        self,
        stage: str,
        sample: Callable[[int], Iterable[TrainBatch]],
        settings: TrainSettings,
        reduce: Callable[[Tensor], Tensor],
    ) -> dict[str, Any]:
        """Before the prior: ``latent_scale``, 1 / RMS of the encoder means (64 windows a rank)."""
        if stage != "prior":
            return {}
        ae = self.autoencoder
        sq, count, numel = 0.0, 0, 1
        for b in sample(64):
            w = self.windows(b, settings.prior_hide, settings, stream=Stream.HIDE, stage_key=2)
            net_in, offset = self.centred(w.inputs)
            mean, _ = ae.encode(w.values - offset, w.observed, net_in)
            sq += float((mean.float() ** 2).sum())
            count += w.values.shape[0]
            numel = mean[0].numel()
        acc = reduce(torch.tensor([sq, float(count * numel)], dtype=torch.float64))
        return {"latent_scale": float(1.0 / max(math.sqrt(float(acc[0] / acc[1])), 1e-6))}

    def stage_estimate(
        self, stage: str, inputs: Tensor, positions: Sequence[int], opts: FillOptions
    ) -> Tensor:
        """While the autoencoder trains: the regression; while the prior trains: the mean."""
        if stage == "autoencoder":
            return self.regression(inputs)
        return super().stage_estimate(stage, inputs, positions, opts)

    def uncalibrated(self) -> str | None:
        """``None`` once the prior is trained (the spread needs its samples)."""
        return None if "prior" in self.nets else "none: no latent prior"

    def calibrate(
        self,
        batches: list[TrainBatch],
        settings: TrainSettings,
        *,
        hide: HideSpec,
        members: int,
        steps: int,
        device: torch.device | str = "cpu",
        where: str = "validation",
        progress: bool | None = False,
        variability: bool = False,
        spread_fit: SpreadFit | None = None,
    ) -> tuple[dict[str, object], str]:
        """The departure scale, then the spread factors ([`fit_calibration`][fit_calibration])."""
        why = self.uncalibrated()
        if why is not None:
            return {}, why
        return fit_calibration(
            self,
            batches,
            settings,
            hide=hide,
            members=members,
            steps=steps,
            device=device,
            where=where,
            progress=progress,
            powers=POWERS if variability else (0.0,),
            spread_fit=spread_fit,
        )

    @classmethod
    def new_net(cls, stage: str, spec: ModelSpec, arch: dict[str, Any]) -> nn.Module:
        """``arch``: ``{"autoencoder": {...}, "prior": {...}}`` network settings."""
        from sparsediff.method.inputs import n_inputs

        n_in = n_inputs(spec.n_vars, spec.n_context)
        a = arch["autoencoder"]
        if stage == "autoencoder":
            return CompletionAutoencoder(
                spec.n_vars,
                n_in,
                spatial_dims=len(spec.dims),
                encoder_widths=a["encoder_widths"],
                decoder_widths=a["decoder_widths"],
                latent_channels=a["latent_channels"],
                blocks_per_level=a["blocks_per_level"],
                attention=a["attention"],
                checkpointing=a["checkpointing"],
            )
        p = arch["prior"]
        factor = cls.window_factors(arch).latent
        cond_channels = n_in * factor ** len(spec.dims)
        backbone = UNet(
            spatial_dims=len(spec.dims),
            in_channels=a["latent_channels"],
            out_channels=a["latent_channels"],
            cond_channels=cond_channels,
            widths=p["widths"],
            blocks_per_level=p["blocks_per_level"],
            attention_levels=p["attention_levels"],
            dropout=p["dropout"],
        )
        # condition dropout is drawn by prepare() (keyed), so the module's own is off
        return EDMPrecond(backbone, sigma_data=1.0, cond_channels=cond_channels, cond_dropout=0.0)

    def objective(self, stage: str, net: nn.Module, settings: TrainSettings) -> nn.Module:
        """Stage 1: [`CompletionObjective`][CompletionObjective]; stage 2: `PriorObjective`."""
        if stage == "autoencoder":
            assert isinstance(net, CompletionAutoencoder)
            return CompletionObjective(net, settings.kl_weight)
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
        """Objective arguments of a batch; every draw keyed by the sample positions."""
        sk = _STAGE_KEY[stage]
        seed = settings.seed
        hide = settings.hide if stage == "autoencoder" else settings.prior_hide
        w = self.windows(batch, hide, settings, stream=purpose, stage_key=sk)
        dev = w.inputs.device
        if stage == "autoencoder":
            lat = self.autoencoder.latent_shape(w.inputs.shape[2:])  # the net being trained
            eps = torch.stack(
                [
                    torch.randn(lat, generator=generator_for(seed, Stream.LATENT_NOISE, p))
                    for p in batch.positions
                ]
            ).to(dev)
            keep = torch.tensor(
                [
                    float(torch.rand((), generator=generator_for(seed, Stream.LATENT_DROP, p)))
                    >= settings.latent_dropout
                    for p in batch.positions
                ],
                device=dev,
            )
            net_in, offset = self.centred(w.inputs)
            return {
                "inputs": net_in,
                "guess": guess_of(w.inputs, self.spec.n_vars),
                "offset": offset,
                "values": w.values,
                "observed": w.observed,
                "scored": w.scored,
                "eps": eps,
                "keep_latent": keep,
            }
        ae = self.autoencoder
        net_in, offset = self.centred(w.inputs)
        mean, _ = ae.encode(w.values - offset, w.observed, net_in)
        x0 = mean.float() * self.spec.latent_scale
        cond = self.cond(net_in)
        return self.diffusion_args(x0, cond, batch.positions, settings, sk)
