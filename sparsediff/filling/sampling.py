"""Stage 3 on tensors: fill a batch of windows with a trained model.

Each window carries a *key* (integers: batch position, tile origin, member);
its initial noise is drawn from a generator seeded by that key alone, so a
window gets the same noise whatever batch it is computed in, whatever the
chunking, worker or resumption.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sparsediff.diffusion.samplers import SAMPLERS
from sparsediff.diffusion.schedules import karras_sigmas
from sparsediff.errors import ConfigError
from sparsediff.model import Model
from sparsediff.models.conditioning import latent_condition, pixel_condition
from sparsediff.rng import generator_for

__all__ = ["FillOptions", "fill_windows"]


@dataclass(frozen=True)
class FillOptions:
    """How to sample; the defaults are what a user should never have to touch.

    Attributes
    ----------
    members
        Ensemble size K.
    steps
        Solver steps (DPM-Solver++(2M) at 16 steps matches long ancestral
        sampling closely, see the benchmarks page).
    sampler
        ``"dpmpp_2m"``, ``"heun"``, ``"euler"``, ``"ddim"`` or ``"ancestral"``.
    seed
        Global seed; each window's noise is keyed by (seed, its position, member).
    guidance
        Strength of decoder-gradient data-consistency guidance (0 = off).
    cfg_scale
        Classifier-free guidance scale (1 = plain conditional sampling).
    sigma_min, sigma_max
        Noise range of the Karras schedule.
    batch_size
        Windows per model call.
    """

    members: int = 1
    steps: int = 16
    sampler: str = "dpmpp_2m"
    seed: int = 0
    guidance: float = 0.0
    cfg_scale: float = 1.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {sorted(SAMPLERS)}")
        if self.members < 1:
            raise ConfigError(f"members must be >= 1, got {self.members}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.guidance < 0:
            raise ConfigError(f"guidance must be >= 0, got {self.guidance}")


def _denoiser(
    prior: torch.nn.Module, cfg_scale: float
) -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
    if cfg_scale == 1.0:
        return lambda x, sigma, cond: prior(x, sigma, cond)

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
        d_c = prior(x, sigma, cond)
        d_u = prior(x, sigma, torch.zeros_like(cond) if cond is not None else None)
        return d_u + cfg_scale * (d_c - d_u)

    return guided


def _consistency(
    decode: Callable[[Tensor], Tensor], values: Tensor, observed: Tensor, strength: float
) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """Decoder-gradient data consistency: nudge ``x0_hat`` so its decoding fits the data."""
    n_obs = observed.flatten(1).sum(1).clamp_min(1).view(-1, *([1] * (values.ndim - 1)))

    def guide(x0_hat: Tensor, x: Tensor, sigma: Tensor) -> Tensor:
        with torch.enable_grad():
            z = x0_hat.detach().requires_grad_(True)
            rec = decode(z)
            err = torch.where(observed, rec - values, torch.zeros_like(rec))
            loss = ((err**2) / n_obs).sum()
            (grad,) = torch.autograd.grad(loss, z)
        return x0_hat - strength * grad

    return guide


@torch.no_grad()
def fill_windows(
    model: Model,
    values: Tensor,
    observed: Tensor,
    keys: Sequence[tuple[int, ...]],
    opts: FillOptions,
) -> Tensor:
    """Sample one completion of each window.

    Parameters
    ----------
    model
        A trained model with a prior.
    values
        ``(N, C, *window)`` normalized values, any value at non-observed points.
    observed
        ``(N, C, *window)`` bool, True where observed.
    keys
        One integer key per window (noise of window i comes from ``(seed, *keys[i])``).
    opts
        Sampling options.

    Returns
    -------
    Tensor
        ``(N, C, *window)`` normalized completions (every point predicted; the
        caller copies observed points back).
    """
    if model.prior is None:
        raise ConfigError("this model has no prior (autoencoder-only); train stage 'prior' first")
    device = values.device
    values = torch.where(observed, values, torch.zeros_like(values))
    sigmas = karras_sigmas(opts.steps, sigma_min=opts.sigma_min, sigma_max=opts.sigma_max)
    sigmas = sigmas.to(device)
    mode = model.config.get("mode", "latent")
    if mode == "latent":
        ae = model.autoencoder
        assert ae is not None
        scale = float(model.config.get("latent_scale", 1.0))
        cond = latent_condition(ae, values, observed, scale)
        shape = (ae.latent_channels, *cond.shape[2:])

        def decode(z: Tensor) -> Tensor:
            return ae.decode(z / scale)
    else:
        cond = pixel_condition(values, observed)
        shape = tuple(values.shape[1:])

        def decode(z: Tensor) -> Tensor:
            return z

    noise = torch.stack(
        [torch.randn(shape, generator=generator_for(opts.seed, *k)) for k in keys]
    ).to(device)
    x = noise * sigmas[0]
    guidance = _consistency(decode, values, observed, opts.guidance) if opts.guidance else None
    sampler = SAMPLERS[opts.sampler]
    gen = (
        generator_for(opts.seed, 0x5A, *keys[0]) if opts.sampler in ("ancestral", "ddim") else None
    )
    z = sampler(
        _denoiser(model.prior, opts.cfg_scale),
        x,
        sigmas,
        cond=cond,
        guidance=guidance,
        generator=gen,
    )
    return decode(z).float()
