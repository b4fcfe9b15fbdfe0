"""EDM preconditioning: turn a backbone into the denoiser ``D(x, sigma, cond) -> x0_hat``.

Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative
Models", Table 1::

    c_skip  = sigma_data² / (sigma² + sigma_data²)
    c_out   = sigma * sigma_data / sqrt(sigma² + sigma_data²)
    c_in    = 1 / sqrt(sigma² + sigma_data²)
    c_noise = log(sigma) / 4
    D(x, sigma) = c_skip * x + c_out * F(c_in * x, c_noise)

The coefficients are computed in float32 (or the input's precision if higher).
Condition dropout replaces the condition of a random share of the samples by
zeros ("nothing observed"), so the same net also learns the unconditional
denoiser used by classifier-free guidance (``force_uncond=True``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sparsediff.errors import ConfigError, InputError
from sparsediff.networks.unet import UNet

__all__ = ["BACKBONES", "EDMPrecond"]

#: Backbone classes `EDMPrecond.from_config` can rebuild, by ``config["backbone_class"]``.
BACKBONES: dict[str, type[nn.Module]] = {"UNet": UNet}


class EDMPrecond(nn.Module):
    """EDM-preconditioned denoiser around a backbone.

    Parameters
    ----------
    backbone : torch.nn.Module
        A [`UNet`][sparsediff.networks.unet.UNet], or any module with
        ``forward(x, noise_labels, cond)`` returning a tensor shaped like ``x``
        (and a ``config`` dict, to be saved).
    sigma_data : float, default 1.0
        Standard deviation of the clean data.
    cond_channels : int, default 0
        Channels of the condition; must equal ``backbone.cond_channels`` where the
        backbone has that attribute.
    cond_dropout : float, default 0.0
        Probability, per sample and in training mode only, of replacing the
        condition by zeros.

    Attributes
    ----------
    config : dict
        ``{"sigma_data", "cond_channels", "cond_dropout", "backbone", "backbone_class"}``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        sigma_data: float = 1.0,
        cond_channels: int = 0,
        cond_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not sigma_data > 0:
            raise ConfigError(f"EDMPrecond sigma_data must be > 0, got {sigma_data}")
        if not 0.0 <= cond_dropout <= 1.0:
            raise ConfigError(f"EDMPrecond cond_dropout must be in [0, 1], got {cond_dropout}")
        if cond_channels < 0:
            raise ConfigError(f"EDMPrecond cond_channels must be ≥ 0, got {cond_channels}")
        bb_cond = getattr(backbone, "cond_channels", None)
        if bb_cond is not None and int(bb_cond) != int(cond_channels):
            raise ConfigError(
                f"EDMPrecond cond_channels={cond_channels} but the backbone has "
                f"cond_channels={bb_cond}"
            )
        self.backbone = backbone
        self.sigma_data = float(sigma_data)
        self.cond_channels = int(cond_channels)
        self.cond_dropout = float(cond_dropout)

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able description; [`from_config`][from_config] rebuilds an untrained copy."""
        return {
            "sigma_data": self.sigma_data,
            "cond_channels": self.cond_channels,
            "cond_dropout": self.cond_dropout,
            "backbone": dict(getattr(self.backbone, "config", {})),
            "backbone_class": type(self.backbone).__name__,
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> EDMPrecond:
        """Rebuild from `config` (backbone class looked up in `BACKBONES`).

        Parameters
        ----------
        cfg : dict
            A dict as stored in `config`.

        Returns
        -------
        EDMPrecond

        Raises
        ------
        ConfigError
            On an unknown backbone class.
        """
        name = cfg.get("backbone_class", "UNet")
        if name not in BACKBONES:
            raise ConfigError(
                f"EDMPrecond: unknown backbone_class {name!r}; known: {sorted(BACKBONES)}"
            )
        backbone_cls: Any = BACKBONES[name]
        backbone = backbone_cls.from_config(cfg["backbone"])
        return cls(
            backbone,
            sigma_data=cfg.get("sigma_data", 1.0),
            cond_channels=cfg.get("cond_channels", 0),
            cond_dropout=cfg.get("cond_dropout", 0.0),
        )

    def coefficients(
        self, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The EDM coefficients for a tensor of noise levels.

        Parameters
        ----------
        sigma : torch.Tensor
            Noise levels (≥ 0), any shape, float32 or float64.

        Returns
        -------
        c_skip, c_out, c_in, c_noise : torch.Tensor
            Same shape as ``sigma``. ``c_noise`` uses ``sigma`` clamped to ≥ 1e-20 so
            that ``sigma = 0`` gives a finite label (and ``D = x`` exactly).
        """
        sd2 = self.sigma_data**2
        s2 = sigma.square()
        c_skip = sd2 / (s2 + sd2)
        c_out = sigma * self.sigma_data / (s2 + sd2).sqrt()
        c_in = 1.0 / (s2 + sd2).sqrt()
        c_noise = sigma.clamp_min(1e-20).log() / 4
        return c_skip, c_out, c_in, c_noise

    def forward(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor | float,
        cond: torch.Tensor | None = None,
        *,
        force_uncond: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Denoise: estimate the clean sample ``x0`` from ``x = x0 + sigma * n``.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, C, *spatial)`` noisy sample.
        sigma : float or torch.Tensor
            Noise level: a scalar or a ``(B,)`` tensor (also accepted: any shape with
            ``B`` elements, e.g. ``(B, 1, 1, 1)``).
        cond : torch.Tensor, optional
            ``(B, cond_channels, *spatial)``; ``None`` means zeros (unconditional).
        force_uncond : bool, default False
            Replace the condition by zeros (for classifier-free guidance).
        generator : torch.Generator, optional
            Source of the condition-dropout draw (on the device of ``x``).

        Returns
        -------
        torch.Tensor
            ``x0_hat``, shaped like ``x``, in float32 (float64 if ``x`` is float64).
        """
        b = x.shape[0]
        dtype = torch.promote_types(x.dtype, torch.float32)
        sigma_t = torch.as_tensor(sigma, dtype=dtype, device=x.device)
        if sigma_t.numel() == 1:
            sigma_t = sigma_t.reshape(1).expand(b)
        elif sigma_t.numel() == b:
            sigma_t = sigma_t.reshape(b)
        else:
            raise InputError(
                f"EDMPrecond: sigma must be a scalar or have {b} elements, got shape "
                f"{tuple(sigma_t.shape)}"
            )
        if self.cond_channels:
            cond = self._prepare_cond(x, cond, force_uncond, generator)
        elif cond is not None:
            raise InputError("EDMPrecond was built with cond_channels=0 but got a cond tensor")

        c_skip, c_out, c_in, c_noise = self.coefficients(sigma_t)
        view = (b,) + (1,) * (x.ndim - 1)
        x_hp = x.to(dtype)
        x_in = (c_in.reshape(view) * x_hp).to(x.dtype)
        f_x = self.backbone(x_in, c_noise, cond)
        return c_skip.reshape(view) * x_hp + c_out.reshape(view) * f_x.to(dtype)

    def _prepare_cond(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None,
        force_uncond: bool,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        b = x.shape[0]
        expected = (b, self.cond_channels, *x.shape[2:])
        if cond is None or force_uncond:
            if cond is not None and tuple(cond.shape) != expected:
                raise InputError(
                    f"EDMPrecond expects cond of shape {expected}, got {tuple(cond.shape)}"
                )
            return x.new_zeros(expected)
        if tuple(cond.shape) != expected:
            raise InputError(
                f"EDMPrecond expects cond of shape {expected}, got {tuple(cond.shape)}"
            )
        if self.training and self.cond_dropout > 0:
            drop = (
                torch.rand(b, generator=generator, device=x.device) < self.cond_dropout
            ).reshape((b,) + (1,) * (cond.ndim - 1))
            cond = torch.where(drop, torch.zeros((), dtype=cond.dtype, device=cond.device), cond)
        return cond
