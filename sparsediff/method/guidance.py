"""Guidance of a diffusion sampler, shared by every method that samples.

* [`cfg_denoiser`][cfg_denoiser]: the prior as a denoiser, with classifier-free
  guidance (the condition against a zero condition);
* [`consistency_guidance`][consistency_guidance]: data-consistency guidance, a
  gradient step that pulls each denoised estimate towards the shown data.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["cfg_denoiser", "consistency_guidance"]


def cfg_denoiser(
    prior: Callable[..., Tensor], cfg_scale: float
) -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
    """The prior as a denoiser, with classifier-free guidance when ``cfg_scale != 1``.

    ``D = D_u + cfg_scale * (D_c - D_u)``, where ``D_u`` sees a zero condition
    (what condition dropout trained it on). ``prior`` is the network or its
    compiled form (``Method.accelerated``).
    """
    if cfg_scale == 1.0:
        return lambda x, sigma, cond: prior(x, sigma, cond)

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
        d_c = prior(x, sigma, cond)
        d_u = prior(x, sigma, torch.zeros_like(cond) if cond is not None else None)
        return d_u + cfg_scale * (d_c - d_u)

    return guided


def consistency_guidance(
    decode: Callable[[Tensor], Tensor], values: Tensor, shown: Tensor, strength: float
) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """Data-consistency guidance: nudge ``x0_hat`` so that its decoding fits the shown data.

    One gradient step of ``strength`` on the mean squared misfit at shown
    points of each window (a larger ``strength`` pulls harder).
    """
    n_shown = shown.flatten(1).sum(1).clamp_min(1).view(-1, *([1] * (values.ndim - 1)))

    def guide(x0_hat: Tensor, x: Tensor, sigma: Tensor) -> Tensor:
        with torch.enable_grad():
            z = x0_hat.detach().requires_grad_(True)
            err = torch.where(shown, decode(z) - values, torch.zeros_like(values))
            loss = ((err**2) / n_shown).sum()
            (grad,) = torch.autograd.grad(loss, z)
        return x0_hat - strength * grad

    return guide
