"""Noise-conditioned U-Net backbone of the denoiser (DESIGN §3, stage 2).

An ADM-style U-Net (Dhariwal & Nichol 2021): residual blocks with FiLM noise
conditioning, skip connections at every block, self-attention at chosen levels.
Conditioning fields (the latent of a masked view, the observed fraction) are
concatenated to the input channels. The net maps ``(x, noise_labels, cond)`` to
an output of ``out_channels``; [`EDMPrecond`][sparsediff.networks.precond.EDMPrecond]
turns it into a denoiser.
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
    NoiseEmbedding,
    ResBlock,
    Upsample,
    check_divisible,
    check_spatial_dims,
    checkpoint_call,
    conv_nd,
)

__all__ = ["UNet"]


class _Level(nn.Module):
    """A residual block optionally followed by self-attention."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        spatial_dims: int,
        emb_dim: int,
        dropout: float,
        attention: bool,
    ) -> None:
        super().__init__()
        self.res = ResBlock(
            in_ch, out_ch, spatial_dims=spatial_dims, emb_dim=emb_dim, dropout=dropout
        )
        self.attn = AttentionBlock(out_ch, spatial_dims=spatial_dims) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.res(x, emb)
        return self.attn(h) if self.attn is not None else h


def _check_args(
    widths: list[int],
    attention_levels: list[int],
    channels: tuple[int, int, int, int],
    dropout: float,
) -> None:
    """Refuse U-Net arguments no net can have.

    ``channels`` is ``(in_channels, out_channels, cond_channels, blocks_per_level)``.
    """
    in_channels, out_channels, cond_channels, blocks_per_level = channels
    if not widths or min(widths) < 1:
        raise ConfigError(f"UNet widths must be positive integers, got {widths}")
    if in_channels < 1 or out_channels < 1 or cond_channels < 0 or blocks_per_level < 1:
        raise ConfigError(
            "UNet needs in_channels ≥ 1, out_channels ≥ 1, cond_channels ≥ 0, "
            f"blocks_per_level ≥ 1; got {in_channels}, {out_channels}, {cond_channels}, "
            f"{blocks_per_level}"
        )
    bad = [a for a in attention_levels if not 0 <= a < len(widths)]
    if bad:
        raise ConfigError(
            f"UNet attention_levels {bad} out of range for {len(widths)} levels "
            f"(valid: 0..{len(widths) - 1})"
        )
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"UNet dropout must be in [0, 1), got {dropout}")


def _down_path(
    widths: list[int], blocks: int, attention_levels: list[int], kw: dict[str, Any]
) -> tuple[nn.ModuleList, list[int]]:
    """The down path (every module's output is a skip) and the skips' channel counts."""
    down: list[nn.Module] = []
    skip_ch = [widths[0]]
    ch = widths[0]
    for level, w in enumerate(widths):
        for _ in range(blocks):
            down.append(_Level(ch, w, attention=level in attention_levels, **kw))
            ch = w
            skip_ch.append(ch)
        if level < len(widths) - 1:
            down.append(Downsample(ch, spatial_dims=kw["spatial_dims"]))
            skip_ch.append(ch)
    return nn.ModuleList(down), skip_ch


def _up_path(
    widths: list[int],
    blocks: int,
    attention_levels: list[int],
    kw: dict[str, Any],
    skip_ch: list[int],
) -> nn.ModuleList:
    """The up path: ``blocks + 1`` blocks per level, each eats one skip (``skip_ch`` is used up)."""
    up: list[nn.Module] = []
    ch = widths[-1]
    for level in reversed(range(len(widths))):
        for _ in range(blocks + 1):
            up.append(
                _Level(
                    ch + skip_ch.pop(),
                    widths[level],
                    attention=level in attention_levels,
                    **kw,
                )
            )
            ch = widths[level]
        if level > 0:
            up.append(Upsample(ch, spatial_dims=kw["spatial_dims"]))
    return nn.ModuleList(up)


class UNet(nn.Module):
    """Noise-conditioned 2D/3D U-Net.

    Parameters
    ----------
    spatial_dims : int, default 2
        2 or 3.
    in_channels : int
        Channels of the noisy input ``x``.
    out_channels : int
        Channels of the output.
    cond_channels : int, default 0
        Channels of the conditioning field concatenated to ``x``.
    widths : sequence of int, default (64, 128, 256)
        Channels per resolution level; ``len(widths) - 1`` halvings.
    blocks_per_level : int, default 2
        Residual blocks per level on the way down (one more on the way up).
    attention_levels : sequence of int, default (2,)
        Level indices (0 = finest) with self-attention after each block. The
        middle block has attention iff the coarsest level is listed.
    emb_dim : int, optional
        Size of the noise embedding; ``4 * widths[0]`` when omitted.
    dropout : float, default 0.0
        Dropout in the residual blocks.
    checkpointing : bool, default False
        Activation checkpointing of every block while training.

    Attributes
    ----------
    config : dict
        The constructor arguments (JSON-able); ``UNet(**config)`` rebuilds the net.
    factor : int
        ``2 ** (len(widths) - 1)``; spatial sizes must be multiples of it.
    """

    def __init__(
        self,
        *,
        spatial_dims: int = 2,
        in_channels: int,
        out_channels: int,
        cond_channels: int = 0,
        widths: Sequence[int] = (64, 128, 256),
        blocks_per_level: int = 2,
        attention_levels: Sequence[int] = (2,),
        emb_dim: int | None = None,
        dropout: float = 0.0,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        widths = [int(w) for w in widths]
        attention_levels = sorted({int(a) for a in attention_levels})
        channels = (in_channels, out_channels, cond_channels, blocks_per_level)
        _check_args(widths, attention_levels, channels, dropout)
        emb = int(emb_dim) if emb_dim is not None else 4 * widths[0]
        self.config: dict[str, Any] = {
            "spatial_dims": int(spatial_dims),
            "in_channels": int(in_channels),
            "out_channels": int(out_channels),
            "cond_channels": int(cond_channels),
            "widths": widths,
            "blocks_per_level": int(blocks_per_level),
            "attention_levels": attention_levels,
            "emb_dim": emb_dim if emb_dim is None else int(emb_dim),
            "dropout": float(dropout),
            "checkpointing": bool(checkpointing),
        }
        self.spatial_dims = int(spatial_dims)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.cond_channels = int(cond_channels)
        self.checkpointing = bool(checkpointing)
        self.factor = 2 ** (len(widths) - 1)
        sd = spatial_dims
        kw: dict[str, Any] = {"spatial_dims": sd, "emb_dim": emb, "dropout": float(dropout)}

        self.noise_embed = NoiseEmbedding(emb)
        self.conv_in = conv_nd(sd, in_channels + cond_channels, widths[0], 3)

        self.down, skip_ch = _down_path(widths, blocks_per_level, attention_levels, kw)
        ch = widths[-1]
        last = len(widths) - 1
        self.mid = nn.ModuleList(
            [
                _Level(ch, ch, attention=last in attention_levels, **kw),
                _Level(ch, ch, attention=False, **kw),
            ]
        )
        self.up = _up_path(widths, blocks_per_level, attention_levels, kw, skip_ch)
        ch = widths[0]

        self.norm_out = GroupNorm(ch)
        self.conv_out = conv_nd(sd, ch, out_channels, 3)
        with torch.no_grad():  # start close to a zero output (EDM's init_zero)
            out_conv: Any = self.conv_out  # an nn.Conv2d or nn.Conv3d
            out_conv.weight.mul_(1e-5)
            if out_conv.bias is not None:
                out_conv.bias.zero_()

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> UNet:
        """Build a fresh (untrained) U-Net from `config`.

        Parameters
        ----------
        cfg : dict
            A dict as stored in `config`.

        Returns
        -------
        UNet
        """
        return cls(**cfg)

    def _call(self, block: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if isinstance(block, _Level):
            return checkpoint_call(block, h, emb, enabled=self.checkpointing)
        return checkpoint_call(block, h, enabled=self.checkpointing)

    def forward(
        self,
        x: torch.Tensor,
        noise_labels: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the U-Net.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, in_channels, *spatial)``, every spatial size a multiple of `factor`.
        noise_labels : torch.Tensor
            ``(B,)`` (or a scalar, used for every sample): the noise conditioning,
            e.g. EDM's ``c_noise = log(sigma) / 4``.
        cond : torch.Tensor, optional
            ``(B, cond_channels, *spatial)``. When the net has ``cond_channels > 0``
            and ``cond`` is ``None``, zeros are used (= nothing observed, unconditional).

        Returns
        -------
        torch.Tensor
            ``(B, out_channels, *spatial)``.

        Raises
        ------
        InputError
            On wrong shapes or spatial sizes not divisible by `factor`.
        """
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise InputError(
                f"UNet expects x of shape (B, {self.in_channels}, "
                f"{', '.join(['S'] * self.spatial_dims)}), got {tuple(x.shape)}"
            )
        check_divisible(tuple(x.shape[2:]), self.factor, "UNet")
        b = x.shape[0]
        if noise_labels.ndim == 0:
            noise_labels = noise_labels.expand(b)
        if noise_labels.shape != (b,):
            raise InputError(
                f"UNet expects noise_labels of shape ({b},), got {tuple(noise_labels.shape)}"
            )
        if self.cond_channels:
            expected = (b, self.cond_channels, *x.shape[2:])
            if cond is None:
                cond = x.new_zeros(expected)
            elif tuple(cond.shape) != expected:
                raise InputError(f"UNet expects cond of shape {expected}, got {tuple(cond.shape)}")
            x = torch.cat([x, cond.to(x.dtype)], dim=1)
        elif cond is not None:
            raise InputError("UNet was built with cond_channels=0 but got a cond tensor")

        emb = self.noise_embed(noise_labels)
        h = self.conv_in(x)
        skips = [h]
        for block in self.down:
            h = self._call(block, h, emb)
            skips.append(h)
        for block in self.mid:
            h = self._call(block, h, emb)
        for block in self.up:
            if isinstance(block, _Level):
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._call(block, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))
