"""The asymmetric completion autoencoder (stage 1 of the v2 method, DESIGN §3).

Two halves that see different things:

* the **encoder** sees the target (the variables zero-filled at non-observed
  points, with their masks) *and* the conditioning inputs, and returns a
  Gaussian latent ``factor`` times coarser per dim: what the inputs do not
  already say about the target;
* the **decoder** is a U-Net at full resolution over the conditioning inputs
  (shown values, their mask, the first guess, context channels — see
  [`sparsediff.method.inputs`][sparsediff.method.inputs]) with the latent upsampled and
  concatenated:
  the observation pathway has skip branches at every scale, and the latent
  only has to carry what the shown data cannot. It returns the **departure**
  from the first guess (the caller adds the guess), from a zero-initialised
  output layer: an untrained decoder departs by exactly 0.

With the latent set to zero the decoder is a regression from the inputs
(trained so by latent dropout); with latents drawn from the diffusion prior it
gives ensemble members.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparsediff.errors import ConfigError, InputError
from sparsediff.networks.blocks import (
    AttentionBlock,
    Downsample,
    GroupNorm,
    ResBlock,
    check_divisible,
    check_spatial_dims,
    checkpoint_call,
    conv_nd,
)
from sparsediff.networks.unet import UNet

__all__ = ["CompletionAutoencoder", "space_to_depth", "upsample_latent"]

_LOGVAR_MIN, _LOGVAR_MAX = -30.0, 20.0


def space_to_depth(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Fold ``factor``-sized blocks of every spatial dim into channels (lossless).

    ``(B, C, *S)`` → ``(B, C * factor**nd, *S / factor)``; 2D and 3D. The
    channel order is ``(C, offsets...)``, as `torch.nn.functional.pixel_unshuffle`.
    """
    if factor == 1:
        return x
    nd = x.ndim - 2
    b, c = x.shape[:2]
    spatial = x.shape[2:]
    check_divisible(tuple(spatial), factor, "space_to_depth")
    split: list[int] = []
    for s in spatial:
        split += [s // factor, factor]
    h = x.reshape(b, c, *split)
    coarse = [2 + 2 * i for i in range(nd)]
    fine = [3 + 2 * i for i in range(nd)]
    h = h.permute(0, 1, *fine, *coarse)
    return h.reshape(b, c * factor**nd, *(s // factor for s in spatial))


def upsample_latent(z: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour upsampling of a latent by ``factor`` per spatial dim."""
    if factor == 1:
        return z
    return F.interpolate(z, scale_factor=float(factor), mode="nearest")


class CompletionAutoencoder(nn.Module):
    """Asymmetric mask-aware autoencoder: a latent encoder and a full-resolution decoder.

    Parameters
    ----------
    n_vars : int
        Variables (channels of the target and of the departure).
    n_inputs : int
        Channels of the conditioning inputs (shown values, masks, first
        guess, context).
    spatial_dims : int, default 2
        2 or 3.
    encoder_widths : sequence of int, default (16, 32, 32)
        Encoder channels per level; the latent factor is ``2 ** (levels - 1)``.
    decoder_widths : sequence of int, default (32, 64)
        Channels per level of the decoder U-Net.
    latent_channels : int, default 4
        Channels of the latent.
    blocks_per_level : int, default 1
        Residual blocks per level (encoder and decoder).
    attention : bool, default False
        Self-attention at the coarsest level of the encoder and decoder.
    checkpointing : bool, default False
        Activation checkpointing while training (3D memory).

    Attributes
    ----------
    config : dict
        The constructor arguments (JSON-able).
    factor : int
        Latent downsampling factor per dim.
    """

    def __init__(
        self,
        n_vars: int,
        n_inputs: int,
        *,
        spatial_dims: int = 2,
        encoder_widths: Sequence[int] = (16, 32, 32),
        decoder_widths: Sequence[int] = (32, 64),
        latent_channels: int = 4,
        blocks_per_level: int = 1,
        attention: bool = False,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        enc_w = [int(w) for w in encoder_widths]
        dec_w = [int(w) for w in decoder_widths]
        if n_vars < 1 or n_inputs < 1 or latent_channels < 1 or blocks_per_level < 1:
            raise ConfigError(
                "CompletionAutoencoder needs n_vars, n_inputs, latent_channels and "
                f"blocks_per_level >= 1, got {n_vars}, {n_inputs}, {latent_channels}, "
                f"{blocks_per_level}"
            )
        if not enc_w or not dec_w or min(enc_w + dec_w) < 1:
            raise ConfigError(
                f"CompletionAutoencoder widths must be positive, got {enc_w} and {dec_w}"
            )
        self.config: dict[str, Any] = {
            "n_vars": int(n_vars),
            "n_inputs": int(n_inputs),
            "spatial_dims": int(spatial_dims),
            "encoder_widths": enc_w,
            "decoder_widths": dec_w,
            "latent_channels": int(latent_channels),
            "blocks_per_level": int(blocks_per_level),
            "attention": bool(attention),
            "checkpointing": bool(checkpointing),
        }
        self.n_vars = int(n_vars)
        self.n_inputs = int(n_inputs)
        self.spatial_dims = int(spatial_dims)
        self.latent_channels = int(latent_channels)
        self.checkpointing = bool(checkpointing)
        self.factor = 2 ** (len(enc_w) - 1)
        sd = self.spatial_dims

        self.enc_in = conv_nd(sd, 2 * n_vars + n_inputs, enc_w[0], 3)
        blocks: list[nn.Module] = []
        ch = enc_w[0]
        for level, w in enumerate(enc_w):
            for _ in range(blocks_per_level):
                blocks.append(ResBlock(ch, w, spatial_dims=sd))
                ch = w
            if level < len(enc_w) - 1:
                blocks.append(Downsample(ch, spatial_dims=sd))
        blocks.append(ResBlock(ch, ch, spatial_dims=sd))
        if attention:
            blocks.append(AttentionBlock(ch, spatial_dims=sd))
        self.enc_blocks = nn.ModuleList(blocks)
        self.enc_norm = GroupNorm(ch)
        self.enc_out = conv_nd(sd, ch, 2 * latent_channels, 3)

        self.decoder = UNet(
            spatial_dims=sd,
            in_channels=n_inputs + latent_channels,
            out_channels=n_vars,
            widths=dec_w,
            blocks_per_level=blocks_per_level,
            attention_levels=[len(dec_w) - 1] if attention else [],
            checkpointing=checkpointing,
        )
        with torch.no_grad():  # an untrained decoder departs from the guess by exactly 0
            out_conv: Any = self.decoder.conv_out  # an nn.Conv2d or nn.Conv3d
            out_conv.weight.zero_()

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> CompletionAutoencoder:
        """Build a fresh (untrained) network from `config`."""
        cfg = dict(cfg)
        return cls(cfg.pop("n_vars"), cfg.pop("n_inputs"), **cfg)

    @property
    def multiple(self) -> int:
        """Window sizes must be multiples of this (latent factor and decoder U-Net)."""
        return max(self.factor, self.decoder.factor)

    def latent_shape(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        """``(latent_channels, *spatial / factor)`` for windows of ``spatial_shape``."""
        spatial_shape = tuple(int(s) for s in spatial_shape)
        if len(spatial_shape) != self.spatial_dims:
            raise InputError(
                f"CompletionAutoencoder is {self.spatial_dims}D, got spatial shape {spatial_shape}"
            )
        check_divisible(spatial_shape, self.multiple, "CompletionAutoencoder")
        return (self.latent_channels, *(s // self.factor for s in spatial_shape))

    def _check(self, inputs: torch.Tensor) -> None:
        if inputs.ndim != self.spatial_dims + 2 or inputs.shape[1] != self.n_inputs:
            raise InputError(
                f"CompletionAutoencoder expects inputs of shape (B, {self.n_inputs}, "
                f"{', '.join(['S'] * self.spatial_dims)}), got {tuple(inputs.shape)}"
            )
        check_divisible(tuple(inputs.shape[2:]), self.multiple, "CompletionAutoencoder")

    def encode(
        self, values: torch.Tensor, observed: torch.Tensor, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent mean and log-variance of the target given the inputs.

        Parameters
        ----------
        values : torch.Tensor
            ``(B, n_vars, *S)`` target; any value (NaN too) where not observed.
        observed : torch.Tensor
            Same shape, bool: where the target is known.
        inputs : torch.Tensor
            ``(B, n_inputs, *S)`` conditioning inputs.

        Returns
        -------
        mean, logvar : torch.Tensor
            ``(B, latent_channels, *S / factor)``; ``logvar`` clamped to [-30, 20].
        """
        self._check(inputs)
        if values.shape != observed.shape or values.shape[1] != self.n_vars:
            raise InputError(
                f"CompletionAutoencoder.encode: values {tuple(values.shape)} and observed "
                f"{tuple(observed.shape)} must be (B, {self.n_vars}, *S)"
            )
        obs = observed.bool()
        x = torch.where(obs, values, torch.zeros((), dtype=values.dtype, device=values.device))
        h = self.enc_in(torch.cat([x, obs.to(x.dtype), inputs.to(x.dtype)], dim=1))
        for block in self.enc_blocks:
            h = checkpoint_call(block, h, enabled=self.checkpointing and self.training)
        h = self.enc_out(F.silu(self.enc_norm(h)))
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(_LOGVAR_MIN, _LOGVAR_MAX)

    def decode(self, inputs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The departure from the first guess, from the inputs and a latent.

        Parameters
        ----------
        inputs : torch.Tensor
            ``(B, n_inputs, *S)``.
        z : torch.Tensor
            ``(B, latent_channels, *S / factor)``; zeros give the regression.

        Returns
        -------
        torch.Tensor
            ``(B, n_vars, *S)`` departure (exactly 0 for an untrained decoder).
        """
        self._check(inputs)
        expected = (inputs.shape[0], *self.latent_shape(inputs.shape[2:]))
        if tuple(z.shape) != expected:
            raise InputError(
                f"CompletionAutoencoder.decode expects z of shape {expected}, got {tuple(z.shape)}"
            )
        h = torch.cat([inputs, upsample_latent(z.to(inputs.dtype), self.factor)], dim=1)
        return self.decoder(h, inputs.new_zeros(inputs.shape[0]))
