"""Training objectives, each a small callable over the one denoiser ``D``.

Every loss is called as::

    loss = loss_fn(D, x0, cond=None, weight=None, generator=None)   # scalar

where ``D(x, sigma, cond) -> x0_hat`` is the denoiser (VE form,
``x = x0 + sigma * eps``, ``sigma`` of shape ``(B,)``) and ``x0`` a batch of
clean data (batch first). The losses differ only in how they draw the noise
level and in which target they compare; epsilon-, v- and flow-matching
objectives are computed from ``D``'s ``x0_hat`` through
[`sparsediff.diffusion.parameterizations`][sparsediff.diffusion.parameterizations], so one
network serves all of them. As weightings of the plain error ``|x0_hat - x0|**2`` they are

==============  ================================  ==============================
loss            target                            weight of ``|x0_hat - x0|**2``
==============  ================================  ==============================
EDMLoss         ``x0``                            ``(sigma**2 + sd**2) / (sigma * sd)**2``
EpsilonLoss     ``eps``                           ``1 / sigma**2``
VLoss           ``v``                             ``(1 + sigma**2) / sigma**2``
FlowMatching    velocity ``eps - x0``             ``1 / t**2 = (1 + sigma)**2 / sigma**2``
==============  ================================  ==============================

``weight`` (optional, broadcastable to ``x0``, ``>= 0``; e.g. the float
observed mask) turns the mean into the masked mean ``sum(w * err) / sum(w)``.
Points of weight 0 are replaced by 0 *before* noising (``torch.where``), so
their values — NaN included — change neither the loss nor any gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sparsediff.diffusion import parameterizations
from sparsediff.diffusion.schedules import (
    sample_flow_t,
    sample_training_sigma,
    sample_training_sigma_edm,
)
from sparsediff.errors import ConfigError, InputError

__all__ = [
    "LOSSES",
    "DiffusionLoss",
    "EDMLoss",
    "EpsilonLoss",
    "FlowMatchingLoss",
    "VLoss",
    "get_loss",
]

Denoiser = Callable[[Tensor, Tensor, Any], Tensor]
"""``D(x, sigma, cond) -> x0_hat``."""


def _check_weight(weight: Tensor | None, x0: Tensor) -> Tensor | None:
    if weight is None:
        return None
    try:
        shape = torch.broadcast_shapes(weight.shape, x0.shape)
    except RuntimeError:
        shape = None
    if shape != x0.shape:
        raise InputError(
            f"loss weight of shape {tuple(weight.shape)} does not broadcast to the data "
            f"shape {tuple(x0.shape)}"
        )
    return weight.to(dtype=x0.dtype)


def _masked_mean(err: Tensor, weight: Tensor | None) -> Tensor:
    if weight is None:
        return err.mean()
    w = weight.expand_as(err)
    err = torch.where(w > 0, err, torch.zeros_like(err))
    return (w * err).sum() / w.sum().clamp_min(torch.finfo(err.dtype).tiny)


def _noise(x0: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)


class DiffusionLoss:
    """Base class: handles ``weight`` (masked mean) and leaves the objective to subclasses.

    Subclasses implement [`per_point`][per_point], the unreduced loss of a batch whose
    weight-0 points are already zeroed.
    """

    def __call__(
        self,
        D: Denoiser,
        x0: Tensor,
        *,
        cond: Any = None,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
        noise_level: Tensor | None = None,
        noise: Tensor | None = None,
        reduction: str = "mean",
    ) -> Tensor:
        """Scalar (masked) mean loss of denoiser ``D`` on the batch ``x0``.

        Parameters
        ----------
        D : callable
            ``D(x, sigma, cond) -> x0_hat``.
        x0 : Tensor
            Clean batch, shape ``(B, ...)``.
        cond : optional
            Passed to ``D`` unchanged.
        weight : Tensor, optional
            Per-point weight broadcastable to ``x0`` (``>= 0``); the loss is
            ``sum(w * err) / sum(w)``. Values of ``x0`` where ``w == 0`` are ignored.
        generator : torch.Generator, optional
            Source of the noise levels and noise (same seed, same loss).
        noise_level : Tensor, optional
            ``(B,)`` noise levels drawn beforehand with [`sample_noise_level`][sample_noise_level]
            (sigma, or flow time ``t`` for [`FlowMatchingLoss`][FlowMatchingLoss]); drawn from
            ``generator`` when omitted.
        noise : Tensor, optional
            Standard normal noise of ``x0``'s shape drawn beforehand; drawn from
            ``generator`` when omitted. Passing both makes the loss independent of
            how samples are grouped into batches (keyed per-sample noise).
        reduction : {"mean", "none"}
            ``"mean"``: one scalar over the batch. ``"none"``: one (masked) mean per
            sample, shape ``(B,)``.

        Returns
        -------
        Tensor
            0-d loss, or ``(B,)`` with ``reduction="none"``.
        """
        if x0.ndim < 1:
            raise InputError("loss: x0 must have a batch dim, got a 0-d tensor")
        if reduction not in ("mean", "none"):
            raise ConfigError(f"loss reduction must be 'mean' or 'none', got {reduction!r}")
        w = _check_weight(weight, x0)
        if w is not None:
            x0 = torch.where(w > 0, x0, torch.zeros_like(x0))
        if noise_level is None:
            noise_level = self.sample_noise_level(
                x0.shape[0], generator, device=x0.device, dtype=x0.dtype
            )
        if noise is None:
            noise = _noise(x0, generator)
        err = self.per_point(D, x0, cond=cond, level=noise_level.to(x0.dtype), noise=noise)
        if reduction == "mean":
            return _masked_mean(err, w)
        return torch.stack(
            [
                _masked_mean(err[i : i + 1], None if w is None else w[i : i + 1])
                for i in range(len(err))
            ]
        )

    def sample_noise_level(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Draw ``n`` training noise levels (sigma; flow time ``t`` for flow matching)."""
        raise NotImplementedError

    def per_point(
        self, D: Denoiser, x0: Tensor, *, cond: Any, level: Tensor, noise: Tensor
    ) -> Tensor:
        """Unreduced loss at the given noise levels and noise, shape of ``x0``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class EDMLoss(DiffusionLoss):
    """EDM objective (Karras et al. 2022): ``lambda(sigma) * |D(x0 + sigma*eps, sigma) - x0|**2``.

    ``log(sigma) ~ N(P_mean, P_std**2)`` and
    ``lambda = (sigma**2 + sigma_data**2) / (sigma * sigma_data)**2``, which makes
    the expected loss of the ideal denoiser 1 at every sigma for data of
    standard deviation ``sigma_data``.

    Parameters
    ----------
    P_mean, P_std : float
        Lognormal noise-level distribution.
    sigma_data : float
        Standard deviation of the data.
    """

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 1.0) -> None:
        if P_std < 0 or sigma_data <= 0:
            raise ConfigError(
                f"EDMLoss: need P_std >= 0 and sigma_data > 0, got P_std={P_std}, "
                f"sigma_data={sigma_data}"
            )
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data

    def sample_noise_level(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Lognormal training sigmas."""
        return sample_training_sigma_edm(
            n, self.P_mean, self.P_std, generator, device=device, dtype=dtype
        )

    def per_point(
        self, D: Denoiser, x0: Tensor, *, cond: Any, level: Tensor, noise: Tensor
    ) -> Tensor:
        """Unreduced EDM loss."""
        sigma = level
        s = parameterizations.broadcast_sigma(sigma, x0)
        x = x0 + s * noise
        lam = (s**2 + self.sigma_data**2) / (s * self.sigma_data) ** 2
        return lam * (D(x, sigma, cond) - x0) ** 2


class _ScheduleLoss(DiffusionLoss):
    """Loss whose noise level is drawn from a named schedule (uniform in its time)."""

    def __init__(self, schedule: str = "vp_cosine", **schedule_kw: float) -> None:
        options: dict[str, Any] = dict(schedule_kw)
        sample_training_sigma(schedule, 1, **options)  # validate name and options now
        self.schedule = schedule
        self.schedule_kw = dict(schedule_kw)

    def sample_noise_level(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Training sigmas, uniform in the schedule's time."""
        return sample_training_sigma(
            self.schedule, n, generator, device=device, dtype=dtype, **self.schedule_kw
        )

    @staticmethod
    def _noised(x0: Tensor, sigma: Tensor, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return x0 + parameterizations.broadcast_sigma(sigma, x0) * eps, sigma, eps


class EpsilonLoss(_ScheduleLoss):
    """Noise-prediction objective (DDPM): ``|eps_hat - eps|**2``, ``eps_hat`` from ``D``'s output.

    Parameters
    ----------
    schedule : str
        Training noise-level distribution, a name of
        [`sample_training_sigma`][sparsediff.diffusion.schedules.sample_training_sigma]
        (default ``"vp_cosine"``: uniform in cosine-schedule time).
    **schedule_kw
        Options of that schedule (e.g. ``sigma_min``, ``sigma_max``).
    """

    def per_point(
        self, D: Denoiser, x0: Tensor, *, cond: Any, level: Tensor, noise: Tensor
    ) -> Tensor:
        """Unreduced epsilon loss."""
        x, sigma, eps = self._noised(x0, level, noise)
        eps_hat = parameterizations.eps_from_x0(x, D(x, sigma, cond), sigma)
        return (eps_hat - eps) ** 2


class VLoss(_ScheduleLoss):
    """v-prediction objective (Salimans & Ho 2022): ``|v_hat - v|**2``.

    ``v = alpha * eps - sigma_vp * x0``; ``v_hat`` is computed from ``D``'s output.

    Parameters
    ----------
    schedule : str
        Training noise-level distribution (default ``"vp_cosine"``).
    **schedule_kw
        Options of that schedule.
    """

    def per_point(
        self, D: Denoiser, x0: Tensor, *, cond: Any, level: Tensor, noise: Tensor
    ) -> Tensor:
        """Unreduced v loss."""
        x, sigma, eps = self._noised(x0, level, noise)
        v_hat = parameterizations.v_from_x0(x, D(x, sigma, cond), sigma)
        return (v_hat - parameterizations.v_from_x0_eps(x0, eps, sigma)) ** 2


class FlowMatchingLoss(DiffusionLoss):
    """Rectified-flow matching: ``|u_hat - (eps - x0)|**2`` at ``x_t = (1 - t) x0 + t eps``.

    ``D`` is called in VE coordinates (``x = x_t / (1 - t)``,
    ``sigma = t / (1 - t)``) and its ``x0_hat`` turned into the velocity
    ``u_hat = (x_t - x0_hat) / t``.

    Parameters
    ----------
    t_min, t_max : float
        Range of flow times (``t = 1`` is infinite noise).
    t_dist : {"uniform", "logit_normal"}
        Distribution of ``t`` (see [`sample_flow_t`][sparsediff.diffusion.schedules.sample_flow_t]).
    loc, scale : float
        Logit-normal parameters.
    """

    def __init__(
        self,
        t_min: float = 1e-3,
        t_max: float = 0.999,
        t_dist: str = "uniform",
        loc: float = 0.0,
        scale: float = 1.0,
    ) -> None:
        sample_flow_t(1, t_min, t_max, t_dist, loc, scale)  # validate now
        self.t_min, self.t_max, self.t_dist, self.loc, self.scale = t_min, t_max, t_dist, loc, scale

    def sample_noise_level(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Training flow times ``t``."""
        return sample_flow_t(
            n,
            self.t_min,
            self.t_max,
            self.t_dist,
            self.loc,
            self.scale,
            generator,
            device=device,
            dtype=dtype,
        )

    def per_point(
        self, D: Denoiser, x0: Tensor, *, cond: Any, level: Tensor, noise: Tensor
    ) -> Tensor:
        """Unreduced flow-matching loss."""
        t = level
        eps = noise
        tb = parameterizations.broadcast_sigma(t, x0)
        x_t = (1.0 - tb) * x0 + tb * eps
        x, sigma = parameterizations.flow_to_ve(x_t, t)
        u_hat = parameterizations.velocity_from_x0(x_t, D(x, sigma, cond), t)
        return (u_hat - parameterizations.velocity_from_x0_eps(x0, eps)) ** 2


LOSSES: dict[str, type[DiffusionLoss]] = {
    "edm": EDMLoss,
    "epsilon": EpsilonLoss,
    "eps": EpsilonLoss,
    "v": VLoss,
    "flow": FlowMatchingLoss,
    "flow_matching": FlowMatchingLoss,
}
"""Loss classes by name (``"eps"`` and ``"flow_matching"`` are aliases)."""


def get_loss(name: str, **kw: Any) -> DiffusionLoss:
    """Build a loss by name.

    Parameters
    ----------
    name : {"edm", "epsilon", "eps", "v", "flow", "flow_matching"}
        Objective.
    **kw
        Options of the loss class.

    Returns
    -------
    DiffusionLoss
        The loss callable.

    Raises
    ------
    ConfigError
        Unknown name or option.
    """
    try:
        cls = LOSSES[name]
    except KeyError:
        raise ConfigError(
            f"unknown diffusion loss {name!r}; choose one of {sorted(LOSSES)}"
        ) from None
    try:
        return cls(**kw)
    except TypeError as exc:
        raise ConfigError(f"diffusion loss {name!r}: {exc}") from None
