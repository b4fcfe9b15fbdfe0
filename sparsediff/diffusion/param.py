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

Targets a network may predict, and the formulas used here:

==========  ==================================  =====================================
target      definition                          back to x0 (VE state ``x``)
==========  ==================================  =====================================
eps         ``(x - x0) / sigma``                ``x0 = x - sigma * eps``
score       ``(x0 - x) / sigma**2`` (Tweedie)   ``x0 = x + sigma**2 * score``
v           ``alpha * eps - sigma_vp * x0``     ``x0 = alpha**2 * x - sigma_vp * v``
velocity    ``eps - x0`` (= ``d x_t / d t``)    ``x0 = x_t - t * velocity``
==========  ==================================  =====================================

Functions of the VE form and of ``v`` take the VE state ``x`` and ``sigma``;
the rectified-flow velocity functions take the flow state ``x_t`` and ``t``
(:func:`ve_to_flow` / :func:`flow_to_ve` move between the two). ``score`` is
the score of the VE marginal, ``grad_x log p_sigma(x)``; the VP score is
``score / alpha``.

``sigma`` (or ``t``) may be a Python float, a 0-d tensor, a ``(B,)`` tensor
(one level per batch element, broadcast over the trailing dims of ``x``) or any
tensor that already broadcasts against ``x``. The VE formulas with ``eps`` or
``score`` divide by ``sigma``: they need ``sigma > 0``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparsediff.errors import InputError

__all__ = [
    "broadcast_sigma",
    "eps_from_v",
    "eps_from_x0",
    "flow_to_ve",
    "score_from_x0",
    "v_from_x0",
    "v_from_x0_eps",
    "ve_to_flow",
    "ve_to_vp",
    "velocity_from_x0",
    "velocity_from_x0_eps",
    "vp_to_ve",
    "x0_from_eps",
    "x0_from_score",
    "x0_from_v",
    "x0_from_velocity",
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


# --------------------------------------------------------------------------- VE: eps, score


def eps_from_x0(x: Tensor, x0: Tensor, sigma: Tensor | float) -> Tensor:
    """Noise from the clean estimate: ``eps = (x - x0) / sigma`` (VE state ``x``)."""
    return (x - x0) / broadcast_sigma(sigma, x)


def x0_from_eps(x: Tensor, eps: Tensor, sigma: Tensor | float) -> Tensor:
    """Clean estimate from the noise: ``x0 = x - sigma * eps`` (VE state ``x``)."""
    return x - broadcast_sigma(sigma, x) * eps


def score_from_x0(x: Tensor, x0: Tensor, sigma: Tensor | float) -> Tensor:
    """Score of the VE marginal by Tweedie's formula: ``(x0 - x) / sigma**2``.

    With ``x0`` the posterior mean ``E[x0 | x]`` this is ``grad_x log p_sigma(x)``.
    """
    return (x0 - x) / broadcast_sigma(sigma, x) ** 2


def x0_from_score(x: Tensor, score: Tensor, sigma: Tensor | float) -> Tensor:
    """Posterior mean from the score (Tweedie): ``x0 = x + sigma**2 * score``."""
    return x + broadcast_sigma(sigma, x) ** 2 * score


# --------------------------------------------------------------------------- VP and v


def ve_to_vp(x: Tensor, sigma: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
    """VE state to VP state: ``x_vp = alpha * x``, ``alpha = 1 / sqrt(1 + sigma**2)``.

    Parameters
    ----------
    x : Tensor
        VE state ``x0 + sigma * eps``.
    sigma : Tensor or float
        VE noise level.

    Returns
    -------
    tuple of Tensor
        ``(x_vp, alpha, sigma_vp)`` with ``x_vp = alpha * x0 + sigma_vp * eps``;
        ``alpha`` and ``sigma_vp`` are shaped to broadcast against ``x``.
    """
    s = broadcast_sigma(sigma, x)
    alpha = torch.rsqrt(1.0 + s**2)
    return alpha * x, alpha, s * alpha


def vp_to_ve(
    x_vp: Tensor, alpha: Tensor | float, sigma_vp: Tensor | float
) -> tuple[Tensor, Tensor]:
    """VP state to VE state: ``x = x_vp / alpha``, ``sigma = sigma_vp / alpha``.

    Parameters
    ----------
    x_vp : Tensor
        VP state ``alpha * x0 + sigma_vp * eps``.
    alpha, sigma_vp : Tensor or float
        VP coefficients (scalars, ``(B,)`` or broadcastable).

    Returns
    -------
    tuple of Tensor
        ``(x, sigma)``; ``sigma`` keeps the shape ``alpha / sigma_vp`` broadcast to.
    """
    a = torch.as_tensor(alpha, dtype=x_vp.dtype, device=x_vp.device)
    sv = torch.as_tensor(sigma_vp, dtype=x_vp.dtype, device=x_vp.device)
    return x_vp / broadcast_sigma(a, x_vp), sv / a


def v_from_x0_eps(x0: Tensor, eps: Tensor, sigma: Tensor | float) -> Tensor:
    """The v target (Salimans & Ho 2022): ``v = alpha * eps - sigma_vp * x0``.

    In VE terms ``v = (eps - sigma * x0) / sqrt(1 + sigma**2)``.
    """
    s = broadcast_sigma(sigma, x0)
    return (eps - s * x0) * torch.rsqrt(1.0 + s**2)


def v_from_x0(x: Tensor, x0: Tensor, sigma: Tensor | float) -> Tensor:
    """The v target from the VE state and a clean estimate (``eps`` from :func:`eps_from_x0`)."""
    return v_from_x0_eps(x0, eps_from_x0(x, x0, sigma), sigma)


def x0_from_v(x: Tensor, v: Tensor, sigma: Tensor | float) -> Tensor:
    """Clean estimate from v: ``x0 = x / (1 + sigma**2) - sigma * v / sqrt(1 + sigma**2)``.

    (``= alpha * x_vp - sigma_vp * v`` in VP terms.)
    """
    s = broadcast_sigma(sigma, x)
    return x / (1.0 + s**2) - s * v * torch.rsqrt(1.0 + s**2)


def eps_from_v(x: Tensor, v: Tensor, sigma: Tensor | float) -> Tensor:
    """Noise from v: ``eps = sigma * x / (1 + sigma**2) + v / sqrt(1 + sigma**2)``.

    (``= sigma_vp * x_vp + alpha * v`` in VP terms.)
    """
    s = broadcast_sigma(sigma, x)
    return s * x / (1.0 + s**2) + v * torch.rsqrt(1.0 + s**2)


# --------------------------------------------------------------------------- rectified flow


def ve_to_flow(x: Tensor, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
    """VE state to rectified-flow state: ``t = sigma / (1 + sigma)``, ``x_t = (1 - t) * x``.

    Parameters
    ----------
    x : Tensor
        VE state ``x0 + sigma * eps``.
    sigma : Tensor or float
        VE noise level.

    Returns
    -------
    tuple of Tensor
        ``(x_t, t)`` with ``x_t = (1 - t) * x0 + t * eps``; ``t`` has ``sigma``'s shape.
    """
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return x / (1.0 + broadcast_sigma(s, x)), s / (1.0 + s)


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


def x0_from_velocity(x_t: Tensor, velocity: Tensor, t: Tensor | float) -> Tensor:
    """Clean estimate from a velocity: ``x0 = x_t - t * velocity``."""
    return x_t - broadcast_sigma(t, x_t) * velocity
