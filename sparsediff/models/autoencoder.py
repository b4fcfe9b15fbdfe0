"""Mask-aware variational autoencoder (stage 1 of the method, DESIGN §3).

The encoder sees the variables zero-filled at non-observed points together with
their ``observed`` masks (``True`` = observed) as extra channels, plus optional
context channels (climatology, static fields). It returns the mean and
log-variance of a Gaussian latent that is ``factor = 2 ** (len(widths) - 1)``
times smaller along every spatial dim. The decoder maps a latent back to all
variables at all points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparsediff.errors import ConfigError, InputError
from sparsediff.models.blocks import (
    AttentionBlock,
    Downsample,
    GroupNorm,
    ResBlock,
    Upsample,
    check_divisible,
    check_spatial_dims,
    checkpoint_call,
    conv_nd,
)

__all__ = ["MaskedAutoencoder"]

_LOGVAR_MIN, _LOGVAR_MAX = -30.0, 20.0


class MaskedAutoencoder(nn.Module):
    """Variational autoencoder for incomplete 2D or 3D fields.

    Parameters
    ----------
    n_vars : int
        Number of variables (channels of ``x``).
    spatial_dims : int, default 2
        2 for ``(B, C, H, W)`` tensors, 3 for ``(B, C, D, H, W)``.
    widths : sequence of int, default (32, 64, 128)
        Channels per resolution level; ``len(widths) - 1`` halvings.
    latent_channels : int, default 4
        Channels of the latent.
    context_channels : int, default 0
        Extra input channels the encoder accepts (``context`` argument).
    blocks_per_level : int, default 1
        Residual blocks per level in the encoder and in the decoder.
    attention : bool, default False
        Self-attention in the middle (coarsest) block of encoder and decoder.
    checkpointing : bool, default False
        Activation checkpointing of every block while training (less memory,
        about 30 % more compute, same results).

    Attributes
    ----------
    config : dict
        The constructor arguments (JSON-able); ``MaskedAutoencoder(**config)`` rebuilds the net.
    factor : int
        Down-sampling factor per spatial dim.
    """

    def __init__(
        self,
        n_vars: int,
        *,
        spatial_dims: int = 2,
        widths: Sequence[int] = (32, 64, 128),
        latent_channels: int = 4,
        context_channels: int = 0,
        blocks_per_level: int = 1,
        attention: bool = False,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        widths = [int(w) for w in widths]
        if n_vars < 1:
            raise ConfigError(f"MaskedAutoencoder n_vars must be ≥ 1, got {n_vars}")
        if not widths or min(widths) < 1:
            raise ConfigError(f"MaskedAutoencoder widths must be positive integers, got {widths}")
        if latent_channels < 1 or context_channels < 0 or blocks_per_level < 1:
            raise ConfigError(
                "MaskedAutoencoder needs latent_channels ≥ 1, context_channels ≥ 0 and "
                f"blocks_per_level ≥ 1, got {latent_channels}, {context_channels}, "
                f"{blocks_per_level}"
            )
        self.config: dict[str, Any] = {
            "n_vars": int(n_vars),
            "spatial_dims": int(spatial_dims),
            "widths": widths,
            "latent_channels": int(latent_channels),
            "context_channels": int(context_channels),
            "blocks_per_level": int(blocks_per_level),
            "attention": bool(attention),
            "checkpointing": bool(checkpointing),
        }
        self.n_vars = int(n_vars)
        self.spatial_dims = int(spatial_dims)
        self.latent_channels = int(latent_channels)
        self.context_channels = int(context_channels)
        self.checkpointing = bool(checkpointing)
        self.factor = 2 ** (len(widths) - 1)
        sd = spatial_dims

        # encoder
        self.enc_in = conv_nd(sd, 2 * n_vars + context_channels, widths[0], 3)
        enc: list[nn.Module] = []
        ch = widths[0]
        for level, w in enumerate(widths):
            for _ in range(blocks_per_level):
                enc.append(ResBlock(ch, w, spatial_dims=sd))
                ch = w
            if level < len(widths) - 1:
                enc.append(Downsample(ch, spatial_dims=sd))
        enc += self._mid(ch, attention)
        self.enc_blocks = nn.ModuleList(enc)
        self.enc_norm = GroupNorm(ch)
        self.enc_out = conv_nd(sd, ch, 2 * latent_channels, 3)

        # decoder
        self.dec_in = conv_nd(sd, latent_channels, ch, 3)
        dec: list[nn.Module] = self._mid(ch, attention)
        for level in reversed(range(len(widths))):
            for _ in range(blocks_per_level):
                dec.append(ResBlock(ch, widths[level], spatial_dims=sd))
                ch = widths[level]
            if level > 0:
                dec.append(Upsample(ch, spatial_dims=sd))
        self.dec_blocks = nn.ModuleList(dec)
        self.dec_norm = GroupNorm(ch)
        self.dec_out = conv_nd(sd, ch, n_vars, 3)

    def _mid(self, ch: int, attention: bool) -> list[nn.Module]:
        mid: list[nn.Module] = [ResBlock(ch, ch, spatial_dims=self.spatial_dims)]
        if attention:
            mid.append(AttentionBlock(ch, spatial_dims=self.spatial_dims))
        mid.append(ResBlock(ch, ch, spatial_dims=self.spatial_dims))
        return mid

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> MaskedAutoencoder:
        """Build a fresh (untrained) autoencoder from :attr:`config`.

        Parameters
        ----------
        cfg : dict
            A dict as stored in :attr:`config`.

        Returns
        -------
        MaskedAutoencoder
        """
        return cls(**cfg)

    def latent_shape(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of one latent (without batch) for data of ``spatial_shape``.

        Parameters
        ----------
        spatial_shape : sequence of int
            Spatial sizes of the data (``spatial_dims`` of them).

        Returns
        -------
        tuple of int
            ``(latent_channels, *[s // factor for s in spatial_shape])``.

        Raises
        ------
        InputError
            If the number of sizes is wrong or a size is not a multiple of :attr:`factor`.
        """
        spatial_shape = tuple(int(s) for s in spatial_shape)
        if len(spatial_shape) != self.spatial_dims:
            raise InputError(
                f"MaskedAutoencoder is {self.spatial_dims}D but got spatial shape {spatial_shape}"
            )
        check_divisible(spatial_shape, self.factor, "MaskedAutoencoder")
        return (self.latent_channels, *(s // self.factor for s in spatial_shape))

    def _check_input(
        self, x: torch.Tensor, mask: torch.Tensor, context: torch.Tensor | None
    ) -> None:
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.n_vars:
            raise InputError(
                f"MaskedAutoencoder expects x of shape (B, {self.n_vars}, "
                f"{', '.join(['S'] * self.spatial_dims)}), got {tuple(x.shape)}"
            )
        if mask.shape != x.shape:
            raise InputError(
                f"MaskedAutoencoder: mask shape {tuple(mask.shape)} differs from x shape "
                f"{tuple(x.shape)}"
            )
        if self.context_channels:
            expected = (x.shape[0], self.context_channels, *x.shape[2:])
            if context is None or tuple(context.shape) != expected:
                got = None if context is None else tuple(context.shape)
                raise InputError(
                    f"MaskedAutoencoder was built with context_channels={self.context_channels}; "
                    f"context must have shape {expected}, got {got}"
                )
        elif context is not None:
            raise InputError(
                "MaskedAutoencoder was built with context_channels=0 but got a context tensor"
            )
        check_divisible(tuple(x.shape[2:]), self.factor, "MaskedAutoencoder")

    def _run(self, blocks: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            h = checkpoint_call(block, h, enabled=self.checkpointing)
        return h

    def encode(
        self, x: torch.Tensor, mask: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode observed values to the parameters of the latent Gaussian.

        Values of ``x`` where ``mask`` is false never reach the network (they are
        replaced by zeros with :func:`torch.where`, so NaN there is fine).

        Parameters
        ----------
        x : torch.Tensor
            ``(B, n_vars, *spatial)``; any value (NaN included) at non-observed points.
        mask : torch.Tensor
            Same shape as ``x``; bool (``True`` = observed) or float (non-zero = observed).
        context : torch.Tensor, optional
            ``(B, context_channels, *spatial)``, required iff ``context_channels > 0``.

        Returns
        -------
        mean, logvar : torch.Tensor
            Each ``(B, latent_channels, *spatial/factor)``; ``logvar`` clamped to [-30, 20].

        Raises
        ------
        InputError
            On wrong shapes or spatial sizes not divisible by :attr:`factor`.
        """
        self._check_input(x, mask, context)
        observed = mask if mask.dtype == torch.bool else mask != 0
        x_in = torch.where(observed, x, torch.zeros((), dtype=x.dtype, device=x.device))
        parts = [x_in, observed.to(x.dtype)]
        if context is not None:
            parts.append(context.to(x.dtype))
        h = self.enc_in(torch.cat(parts, dim=1))
        h = self._run(self.enc_blocks, h)
        h = self.enc_out(F.silu(self.enc_norm(h)))
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(_LOGVAR_MIN, _LOGVAR_MAX)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a latent to all variables at all points.

        Parameters
        ----------
        z : torch.Tensor
            ``(B, latent_channels, *latent_spatial)``.

        Returns
        -------
        torch.Tensor
            ``(B, n_vars, *latent_spatial * factor)``.
        """
        if z.ndim != self.spatial_dims + 2 or z.shape[1] != self.latent_channels:
            raise InputError(
                f"MaskedAutoencoder.decode expects z of shape (B, {self.latent_channels}, "
                f"{', '.join(['S'] * self.spatial_dims)}), got {tuple(z.shape)}"
            )
        h = self.dec_in(z)
        h = self._run(self.dec_blocks, h)
        return self.dec_out(F.silu(self.dec_norm(h)))

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, draw (or take the mean of) the latent, decode.

        Parameters
        ----------
        x, mask, context
            As in :meth:`encode`.
        sample : bool, default True
            Draw ``z = mean + exp(logvar / 2) * eps``; ``False`` uses ``z = mean``.
        generator : torch.Generator, optional
            Source of ``eps`` (on the device of ``x``), for reproducible draws.

        Returns
        -------
        x_hat, mean, logvar : torch.Tensor
            Reconstruction ``(B, n_vars, *spatial)`` and the latent parameters.
        """
        mean, logvar = self.encode(x, mask, context)
        z = mean
        if sample:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mean, logvar
