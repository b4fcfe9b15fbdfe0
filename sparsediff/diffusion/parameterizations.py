"""Conversions between diffusion parameterizations at a given noise level.

The one denoiser contract of sparsediff is ``D(x, sigma, cond) -> x0_hat`` in
the VE (EDM) form

    x = x0 + sigma * eps,                                  (VE)

and every other parameterization is a change of variables around it. The clean
signal ``x0`` and the noise ``eps`` are the *same* in all forms; only the noisy
state and the noise coordinate change:

    x_vp = alpha * x0 + sigma_vp * eps = alpha * x,        (VP)
           alpha = 1 / sqrt(1 + sigma**2),  sigma_vp = sigma * alpha
    x_t  = (1 - t) * x0 + t * eps = (1 - t) * x,           (rectified flow)
           t = sigma / (1 + sigma)

The training objectives ([`sparsediff.diffusion.losses`][sparsediff.diffusion.losses]) score a
network's prediction in the target of their parameterization, computed from
the denoiser's ``x0_hat``:

==========  ==================================  ==========================
target      definition                          from ``x0_hat``
==========  ==================================  ==========================
eps         ``(x - x0) / sigma``                [`eps_from_x0`][eps_from_x0]
v           ``alpha * eps - sigma_vp * x0``     [`v_from_x0`][v_from_x0]
velocity    ``eps - x0`` (= ``d x_t / d t``)    [`velocity_from_x0`][velocity_from_x0]
==========  ==================================  ==========================

and their true targets with [`v_from_x0_eps`][v_from_x0_eps] and
[`velocity_from_x0_eps`][velocity_from_x0_eps]. Functions of the VE form and of ``v`` take the
VE state ``x`` and ``sigma``; the rectified-flow velocity takes the flow
state ``x_t`` and ``t`` ([`flow_to_ve`][flow_to_ve] gives the VE state the denoiser
is called with).

``sigma`` (or ``t``) may be a Python float, a 0-d tensor, a ``(B,)`` tensor
(one level per batch element, broadcast over the trailing dims of ``x``) or any
tensor that already broadcasts against ``x``. [`eps_from_x0`][eps_from_x0] divides by
``sigma`` and [`velocity_from_x0`][velocity_from_x0] by ``t``: they need them ``> 0``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparsediff.errors import InputError

__all__ = [
    "broadcast_sigma",
    "eps_from_x0",
    "flow_to_ve",
    "v_from_x0",
    "v_from_x0_eps",
    "velocity_from_x0",
    "velocity_from_x0_eps",
]


def broadcast_sigma(sigma: Tensor | float, like: Tensor) -> Tensor:
    """Shape a noise level so that it broadcasts against ``like``.

    Parameters
    ----------
    sigma : Tensor or float
        A scalar, a ``(B,)`` tensor with ``B = like.shape[0]`` (reshaped to
        ``(B, 1, ..., 1)``), or a tensor with ``like.ndim`` dims that broadcasts.
    like : Tensor
        The batch the level applies to; its dtype and device are used.

    Returns
    -------
    Tensor
        ``sigma`` on ``like``'s device and dtype, broadcastable to ``like``.

    Raises
    ------
    InputError
        If ``sigma`` cannot be matched to ``like``'s batch.
    """
    s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if s.ndim == 0 or s.ndim == like.ndim:
        return s
    if s.ndim == 1 and like.ndim >= 1 and s.shape[0] == like.shape[0]:
        return s.reshape(s.shape[0], *([1] * (like.ndim - 1)))
    batch = like.shape[0] if like.ndim else 1
    raise InputError(
        f"noise level of shape {tuple(s.shape)} does not fit a batch of shape "
        f"{tuple(like.shape)}: pass a scalar, a (B,) tensor with B={batch}, "
        "or a tensor with the batch's number of dims"
    )


# --------------------------------------------------------------------------- VE: eps


def eps_from_x0(x: Tensor, x0: Tensor, sigma: Tensor | float) -> Tensor:
    """Noise from the clean estimate: ``eps = (x - x0) / sigma`` (VE state ``x``)."""
    return (x - x0) / broadcast_sigma(sigma, x)


# --------------------------------------------------------------------------- VP and v


def v_from_x0_eps(x0: Tensor, eps: Tensor, sigma: Tensor | float) -> Tensor:
    """The v target (Salimans & Ho 2022): ``v = alpha * eps - sigma_vp * x0``.

    In VE terms ``v = (eps - sigma * x0) / sqrt(1 + sigma**2)``.
    """
    s = broadcast_sigma(sigma, x0)
    return (eps - s * x0) * torch.rsqrt(1.0 + s**2)


def v_from_x0(x: Tensor, x0: Tensor, sigma: Tensor | float) -> Tensor:
    """The v target from the VE state and a clean estimate (``eps`` from `eps_from_x0`)."""
    return v_from_x0_eps(x0, eps_from_x0(x, x0, sigma), sigma)


# --------------------------------------------------------------------------- rectified flow


def flow_to_ve(x_t: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
    """Rectified-flow state to VE state: ``sigma = t / (1 - t)``, ``x = x_t / (1 - t)``.

    Parameters
    ----------
    x_t : Tensor
        Flow state ``(1 - t) * x0 + t * eps``.
    t : Tensor or float
        Flow time, ``0 <= t < 1``.

    Returns
    -------
    tuple of Tensor
        ``(x, sigma)`` with ``x = x0 + sigma * eps``; ``sigma`` has ``t``'s shape.
    """
    tt = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
    return x_t / (1.0 - broadcast_sigma(tt, x_t)), tt / (1.0 - tt)


def velocity_from_x0_eps(x0: Tensor, eps: Tensor) -> Tensor:
    """Rectified-flow velocity target ``eps - x0`` (the time derivative of ``x_t``)."""
    return eps - x0


def velocity_from_x0(x_t: Tensor, x0: Tensor, t: Tensor | float) -> Tensor:
    """Velocity from the flow state and a clean estimate: ``(x_t - x0) / t``."""
    return (x_t - x0) / broadcast_sigma(t, x_t)
