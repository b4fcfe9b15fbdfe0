"""Building blocks shared by the autoencoder and the denoiser U-Net.

Every block is dims-generic: ``spatial_dims`` is 2 (images, ``(B, C, H, W)``) or
3 (volumes, ``(B, C, D, H, W)``) and the same code serves both. The blocks hold no
knowledge of xarray or of the data; they map tensors to tensors.

Activation checkpointing ([`checkpoint_call`][checkpoint_call]) trades compute for memory: the
activations inside a checkpointed block are recomputed during the backward pass
instead of being stored. It gives the same outputs and the same gradients; it is
what makes 3D training fit in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from sparsediff.errors import ConfigError, InputError

__all__ = [
    "AttentionBlock",
    "Downsample",
    "GroupNorm",
    "NoiseEmbedding",
    "ResBlock",
    "Upsample",
    "check_divisible",
    "check_spatial_dims",
    "checkpoint_call",
    "conv_nd",
    "group_count",
]


def check_spatial_dims(spatial_dims: int) -> int:
    """Validate ``spatial_dims`` (2 or 3) and return it.

    Parameters
    ----------
    spatial_dims : int
        Number of spatial dimensions of the tensors a network handles.

    Returns
    -------
    int
        ``spatial_dims`` unchanged.

    Raises
    ------
    ConfigError
        If it is not 2 or 3.
    """
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return int(spatial_dims)


def conv_nd(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    padding: int | None = None,
    bias: bool = True,
) -> nn.Module:
    """A 2D or 3D convolution.

    Parameters
    ----------
    spatial_dims : int
        2 for `torch.nn.Conv2d`, 3 for `torch.nn.Conv3d`.
    in_channels, out_channels : int
        Channel counts.
    kernel_size : int, default 3
        Cubic kernel size.
    stride : int, default 1
        Stride along every spatial dim.
    padding : int, optional
        Zero padding; ``kernel_size // 2`` ("same" for odd kernels) when omitted.
    bias : bool, default True
        Whether the convolution has a bias.

    Returns
    -------
    torch.nn.Module
        The convolution module.
    """
    check_spatial_dims(spatial_dims)
    cls = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
    pad = kernel_size // 2 if padding is None else padding
    return cls(in_channels, out_channels, kernel_size, stride=stride, padding=pad, bias=bias)


def group_count(channels: int, max_groups: int = 32) -> int:
    """Number of GroupNorm groups for ``channels``: the largest divisor ≤ ``max_groups``.

    Parameters
    ----------
    channels : int
        Number of channels to normalise.
    max_groups : int, default 32
        Upper bound on the group count.

    Returns
    -------
    int
        A divisor of ``channels`` (1 when ``channels`` is prime and larger than ``max_groups``).
    """
    if channels < 1:
        raise ConfigError(f"channel count must be positive, got {channels}")
    groups = min(max_groups, channels)
    while channels % groups:
        groups -= 1
    return groups


class GroupNorm(nn.GroupNorm):
    """`torch.nn.GroupNorm` whose group count adapts to the channel count.

    Parameters
    ----------
    channels : int
        Number of channels.
    max_groups : int, default 32
        At most this many groups; the actual count is [`group_count`][group_count].
    eps : float, default 1e-6
        Numerical stabiliser.
    """

    def __init__(self, channels: int, max_groups: int = 32, eps: float = 1e-6) -> None:
        super().__init__(group_count(channels, max_groups), channels, eps=eps, affine=True)


def checkpoint_call(fn: Callable[..., Any], *args: Any, enabled: bool) -> Any:
    """Call ``fn(*args)``, under activation checkpointing when ``enabled``.

    Checkpointing is used only while autograd records (training); in ``no_grad``
    inference it would only cost time, so ``fn`` is called directly.

    Parameters
    ----------
    fn : callable
        The function or module to run.
    *args
        Its positional arguments (tensors or ``None``).
    enabled : bool
        Whether to checkpoint.

    Returns
    -------
    Any
        What ``fn`` returns.
    """
    if enabled and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def check_divisible(spatial_shape: Sequence[int], factor: int, what: str) -> None:
    """Raise an `InputError` if a size is not a multiple of ``factor``.

    Parameters
    ----------
    spatial_shape : sequence of int
        The spatial sizes of a tensor (without batch and channel dims).
    factor : int
        The total down-sampling factor of the network.
    what : str
        The network's name, used in the message.

    Raises
    ------
    InputError
        Naming the offending size, its position, the factor and the nearest valid sizes.
    """
    for i, n in enumerate(spatial_shape):
        n = int(n)
        if n < factor or n % factor:
            lower = (n // factor) * factor
            upper = lower + factor
            nearest = f"{lower} or {upper}" if lower >= factor else f"{upper}"
            raise InputError(
                f"{what}: spatial size {n} (spatial dim {i} of shape {tuple(spatial_shape)}) "
                f"is not a multiple of the down-sampling factor {factor}; "
                f"nearest valid sizes: {nearest}"
            )


class ResBlock(nn.Module):
    """Residual block: two 3×3(×3) convolutions with GroupNorm and SiLU.

    When ``emb_dim`` is given, an embedding vector (the noise level) modulates the
    block through FiLM: ``h = norm(h) * (1 + scale) + shift`` with ``scale, shift``
    a linear map of the embedding.

    Parameters
    ----------
    in_ch, out_ch : int
        Input and output channels (a 1×1 convolution maps the skip path when they differ).
    spatial_dims : int
        2 or 3.
    emb_dim : int, optional
        Size of the conditioning embedding; ``None`` for an unconditioned block.
    dropout : float, default 0.0
        Dropout rate before the second convolution.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        spatial_dims: int,
        emb_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.emb_dim = emb_dim
        self.norm1 = GroupNorm(in_ch)
        self.conv1 = conv_nd(spatial_dims, in_ch, out_ch, 3)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch) if emb_dim is not None else None
        self.norm2 = GroupNorm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv_nd(spatial_dims, out_ch, out_ch, 3)
        self.skip = conv_nd(spatial_dims, in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, in_ch, *spatial)``.
        emb : torch.Tensor, optional
            ``(B, emb_dim)``; required when the block was built with ``emb_dim``.

        Returns
        -------
        torch.Tensor
            ``(B, out_ch, *spatial)``.
        """
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb_proj is not None:
            if emb is None:
                raise InputError("ResBlock was built with emb_dim but got no embedding")
            params = self.emb_proj(F.silu(emb))
            params = params.reshape(*params.shape, *([1] * (h.ndim - 2)))
            scale, shift = params.chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halve every spatial size with a stride-2 3×3(×3) convolution.

    Parameters
    ----------
    channels : int
        Input and output channels.
    spatial_dims : int
        2 or 3.
    """

    def __init__(self, channels: int, *, spatial_dims: int) -> None:
        super().__init__()
        self.conv = conv_nd(spatial_dims, channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *s)`` → ``(B, C, *s/2)`` (sizes must be even)."""
        return self.conv(x)


class Upsample(nn.Module):
    """Double every spatial size: nearest-neighbour upsampling then a 3×3(×3) convolution.

    Parameters
    ----------
    channels : int
        Input and output channels.
    spatial_dims : int
        2 or 3.
    """

    def __init__(self, channels: int, *, spatial_dims: int) -> None:
        super().__init__()
        self.conv = conv_nd(spatial_dims, channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *s)`` → ``(B, C, *2s)``."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all spatial positions, with a residual connection.

    Uses `torch.nn.functional.scaled_dot_product_attention`, which picks a
    memory-efficient kernel where one exists. Cost grows with the square of the
    number of positions, so use it only at coarse levels.

    Parameters
    ----------
    channels : int
        Number of channels.
    spatial_dims : int
        2 or 3 (the block flattens every spatial dim, so this is only checked).
    head_channels : int, default 64
        Channels per head; ``max(1, channels // head_channels)`` heads.
    """

    def __init__(self, channels: int, *, spatial_dims: int, head_channels: int = 64) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        heads = max(1, channels // head_channels)
        while channels % heads:
            heads -= 1
        self.heads = heads
        self.norm = GroupNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *s)`` → ``(B, C, *s)``."""
        b, c = x.shape[:2]
        spatial = x.shape[2:]
        h = self.norm(x).reshape(b, c, -1).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(h).reshape(b, -1, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, C/heads)
        out = out.transpose(1, 2).reshape(b, -1, c)
        out = self.proj(out).transpose(1, 2).reshape(b, c, *spatial)
        return x + out


class NoiseEmbedding(nn.Module):
    """Embed a scalar noise label per sample (EDM's ``c_noise``) into a vector.

    Features, then a two-layer MLP (Linear → SiLU → Linear):

    - ``"fourier"`` (default): ``[cos(2π f x), sin(2π f x)]`` with fixed random
      frequencies ``f ~ N(0, scale²)`` drawn from a fixed seed (stored as a buffer,
      so a saved model reloads identically).
    - ``"positional"``: transformer sinusoidal features
      ``[cos(x w_k), sin(x w_k)]`` with ``w_k = (1/max_positions)^(k/(n/2))``.

    Parameters
    ----------
    emb_dim : int
        Output size.
    kind : {"fourier", "positional"}, default "fourier"
        Feature type.
    num_features : int, optional
        Number of features (even); defaults to ``emb_dim // 2`` rounded to even (≥ 2).
    scale : float, default 16.0
        Standard deviation of the Fourier frequencies.
    max_positions : int, default 10000
        Base of the positional frequencies.
    """

    def __init__(
        self,
        emb_dim: int,
        *,
        kind: str = "fourier",
        num_features: int | None = None,
        scale: float = 16.0,
        max_positions: int = 10000,
    ) -> None:
        super().__init__()
        n = num_features if num_features is not None else max(2, (emb_dim // 2) // 2 * 2)
        if n % 2 or n < 2:
            raise ConfigError(f"NoiseEmbedding num_features must be even and ≥ 2, got {n}")
        half = n // 2
        if kind == "fourier":
            gen = torch.Generator().manual_seed(0)
            freqs = torch.randn(half, generator=gen) * scale * 2 * math.pi
        elif kind == "positional":
            freqs = (1.0 / max_positions) ** (torch.arange(half, dtype=torch.float32) / half)
        else:
            raise ConfigError(
                f"NoiseEmbedding kind must be 'fourier' or 'positional', got {kind!r}"
            )
        self.kind = kind
        self.register_buffer("freqs", freqs)
        self.mlp = nn.Sequential(nn.Linear(n, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, noise_labels: torch.Tensor) -> torch.Tensor:
        """``(B,)`` noise labels → ``(B, emb_dim)`` embedding."""
        freqs: torch.Tensor = self.freqs  # type: ignore[assignment]  # a buffer
        first: nn.Linear = self.mlp[0]  # type: ignore[assignment]
        x = noise_labels.reshape(-1, 1).to(freqs.dtype) * freqs.reshape(1, -1)
        feats = torch.cat([torch.cos(x), torch.sin(x)], dim=1)
        return self.mlp(feats.to(first.weight.dtype))
