"""Samplers: stateless functions that integrate from noise to data with a denoiser.

Every sampler has the same signature::

    sample_xxx(model, x, sigmas, *, cond=None, guidance=None, generator=None,
               callback=None, progress=False, **opts) -> Tensor

* ``model``: the denoiser ``D(x, sigma, cond) -> x0_hat`` in the VE form
  ``x = x0 + sigma * eps``; it is called with ``sigma`` of shape ``(B,)`` in
  ``x``'s dtype.
* ``x``: the start, noise already scaled by ``sigmas[0]`` (batch first).
* ``sigmas``: 1-D, strictly decreasing, ending with ``0`` (any schedule of
  [`sparsediff.diffusion.schedules`][sparsediff.diffusion.schedules]); ``len(sigmas) - 1`` steps.
* ``guidance``: optional ``guidance(x0_hat, x, sigma) -> x0_hat``, applied to
  every denoised estimate before it is used (data consistency, classifier-free
  guidance). The samplers run under `torch.no_grad`; a guidance that
  needs gradients opens `torch.enable_grad` itself.
* ``generator``: the only source of randomness of the stochastic samplers:
  one `torch.Generator` for the whole batch, or a sequence of them,
  one per batch row (each row's noise then depends on its own generator
  only, not on which rows share the batch). Per-row generators draw on the
  CPU and the noise is moved to ``x``'s device, so a row gets the same noise
  on every device.
* ``callback``: called after each model evaluation with a dict
  ``{"x", "i", "sigma", "sigma_hat", "denoised"}``.
* ``progress``: show a tqdm bar.

The last step (to ``sigma = 0``) of every sampler returns the (guided)
denoised estimate itself.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import trange

from sparsediff.errors import ConfigError, InputError

__all__ = [
    "SAMPLERS",
    "model_calls",
    "sample",
    "sample_ddim",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_euler_ancestral",
    "sample_heun",
]

Denoiser = Callable[[Tensor, Tensor, Any], Tensor]
"""``D(x, sigma, cond) -> x0_hat``."""
Guidance = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``guidance(x0_hat, x, sigma) -> x0_hat``."""
Callback = Callable[[dict[str, Any]], None]


def _levels(x: Tensor, sigmas: Tensor) -> list[float]:
    """Validate the schedule and return it as Python floats (no device syncs later)."""
    if not isinstance(sigmas, Tensor) or sigmas.ndim != 1 or sigmas.numel() < 2:
        raise InputError("sampler: sigmas must be a 1-D tensor with at least 2 values")
    if x.ndim < 1:
        raise InputError("sampler: x must have a batch dim, got a 0-d tensor")
    levels = [float(s) for s in sigmas.detach().cpu().tolist()]
    if levels[-1] != 0.0:
        raise InputError(f"sampler: sigmas must end with 0, got {levels[-1]}")
    if not all(math.isfinite(s) for s in levels) or any(
        b >= a for a, b in itertools.pairwise(levels)
    ):
        raise InputError("sampler: sigmas must be finite and strictly decreasing")
    return levels


def _denoise(
    model: Denoiser, x: Tensor, sigma: float, cond: Any, guidance: Guidance | None
) -> Tensor:
    s = x.new_full((x.shape[0],), sigma)
    x0 = model(x, s, cond)
    if guidance is not None:
        x0 = guidance(x0, x, s)
    if x0.shape != x.shape:
        raise InputError(
            f"sampler: the denoiser returned shape {tuple(x0.shape)} for input {tuple(x.shape)}"
        )
    return x0


Generators = torch.Generator | Sequence[torch.Generator] | None
"""One generator, one per batch row, or none (the global RNG)."""


def _randn(x: Tensor, generator: Generators) -> Tensor:
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if len(generator) != x.shape[0]:
        raise InputError(f"sampler: {len(generator)} generators for a batch of {x.shape[0]} rows")
    rows = [torch.randn(x.shape[1:], generator=g, dtype=torch.float32) for g in generator]
    return torch.stack(rows).to(device=x.device, dtype=x.dtype)


def _report(
    callback: Callback | None, x: Tensor, i: int, sigma: float, sigma_hat: float, den: Tensor
) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": den})


@torch.no_grad()
def sample_euler(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Any = None,
    guidance: Guidance | None = None,
    generator: Generators = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    """Euler steps on the probability-flow ODE ``dx/dsigma = (x - D(x, sigma)) / sigma``.

    First order, deterministic, one model call per step. Parameters as in the
    module docstring (``generator`` is unused).

    Returns
    -------
    Tensor
        The sample, shape of ``x``.
    """
    levels = _levels(x, sigmas)
    for i in trange(len(levels) - 1, disable=not progress):
        s, s_next = levels[i], levels[i + 1]
        den = _denoise(model, x, s, cond, guidance)
        _report(callback, x, i, s, s, den)
        x = den if s_next == 0 else x + (s_next - s) * (x - den) / s
    return x


@torch.no_grad()
def sample_heun(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Any = None,
    guidance: Guidance | None = None,
    generator: Generators = None,
    callback: Callback | None = None,
    progress: bool = False,
    S_churn: float = 0.0,
    S_tmin: float = 0.0,
    S_tmax: float = math.inf,
    S_noise: float = 1.0,
) -> Tensor:
    """EDM's second-order Heun sampler (Karras et al. 2022, Alg. 1 and 2).

    Each step to a positive sigma takes an Euler step and corrects it with the
    slope at its end (2 model calls); the last step to 0 is a plain Euler step
    (1 call). With ``S_churn > 0`` each step in ``[S_tmin, S_tmax]`` first raises
    the noise level by ``gamma = min(S_churn / n_steps, sqrt(2) - 1)`` with fresh
    noise (scaled by ``S_noise``); the default ``S_churn = 0`` is deterministic.

    Returns
    -------
    Tensor
        The sample, shape of ``x``.
    """
    levels = _levels(x, sigmas)
    n = len(levels) - 1
    for i in trange(n, disable=not progress):
        s, s_next = levels[i], levels[i + 1]
        gamma = min(S_churn / n, math.sqrt(2.0) - 1.0) if S_tmin <= s <= S_tmax else 0.0
        s_hat = s * (1.0 + gamma)
        if gamma > 0:
            x = x + _randn(x, generator) * (S_noise * math.sqrt(s_hat**2 - s**2))
        den = _denoise(model, x, s_hat, cond, guidance)
        _report(callback, x, i, s, s_hat, den)
        if s_next == 0:
            x = den
            continue
        d = (x - den) / s_hat
        x_next = x + (s_next - s_hat) * d
        den_next = _denoise(model, x_next, s_next, cond, guidance)
        d_next = (x_next - den_next) / s_next
        x = x + (s_next - s_hat) * 0.5 * (d + d_next)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Any = None,
    guidance: Guidance | None = None,
    generator: Generators = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): second-order multistep in log-sigma, data prediction.

    With ``h = log(sigma / sigma_next)`` the step is
    ``x_next = (sigma_next / sigma) * x + (1 - sigma_next / sigma) * D_c``, where
    ``D_c = D_i`` on the first step and
    ``D_c = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}``, ``r = h_prev / h``, afterwards.
    One model call per step; deterministic.

    Returns
    -------
    Tensor
        The sample, shape of ``x``.
    """
    levels = _levels(x, sigmas)
    old_den: Tensor | None = None
    h_prev = 0.0
    for i in trange(len(levels) - 1, disable=not progress):
        s, s_next = levels[i], levels[i + 1]
        den = _denoise(model, x, s, cond, guidance)
        _report(callback, x, i, s, s, den)
        if s_next == 0:
            x = den
            continue
        h = math.log(s / s_next)
        if old_den is None:
            den_c = den
        else:
            r = h_prev / h
            den_c = (1.0 + 1.0 / (2.0 * r)) * den - (1.0 / (2.0 * r)) * old_den
        x = (s_next / s) * x - math.expm1(-h) * den_c
        old_den, h_prev = den, h
    return x


@torch.no_grad()
def sample_ddim(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Any = None,
    guidance: Guidance | None = None,
    generator: Generators = None,
    callback: Callback | None = None,
    progress: bool = False,
    eta: float = 0.0,
) -> Tensor:
    """DDIM (Song et al. 2021) written in VE coordinates.

    ``x_next = x0_hat + sqrt(sigma_next**2 - c**2) * eps_hat + c * z`` with
    ``eps_hat = (x - x0_hat) / sigma`` and
    ``c = eta * sigma_next * sqrt(sigma**2 - sigma_next**2) / sigma`` (DDIM's
    ``sigma_t(eta)`` divided by ``alpha_next``). ``eta = 0`` is deterministic and
    coincides with Euler on the probability-flow ODE; ``eta = 1`` is the DDPM
    ancestral step (= [`sample_euler_ancestral`][sample_euler_ancestral] with ``eta=1``).

    Returns
    -------
    Tensor
        The sample, shape of ``x``.
    """
    if not 0.0 <= eta <= 1.0:
        raise ConfigError(f"sample_ddim: eta must be in [0, 1], got {eta}")
    levels = _levels(x, sigmas)
    for i in trange(len(levels) - 1, disable=not progress):
        s, s_next = levels[i], levels[i + 1]
        den = _denoise(model, x, s, cond, guidance)
        _report(callback, x, i, s, s, den)
        if s_next == 0:
            x = den
            continue
        eps = (x - den) / s
        c = min(s_next, eta * s_next * math.sqrt(s**2 - s_next**2) / s)
        x = den + math.sqrt(s_next**2 - c**2) * eps
        if c > 0:
            x = x + c * _randn(x, generator)
    return x


@torch.no_grad()
def sample_euler_ancestral(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    cond: Any = None,
    guidance: Guidance | None = None,
    generator: Generators = None,
    callback: Callback | None = None,
    progress: bool = False,
    eta: float = 1.0,
    S_noise: float = 1.0,
) -> Tensor:
    """Ancestral Euler: an Euler step down to ``sigma_down``, then fresh noise of std ``sigma_up``.

    ``sigma_up = min(sigma_next, eta * sigma_next * sqrt(sigma**2 - sigma_next**2) / sigma)``,
    ``sigma_down = sqrt(sigma_next**2 - sigma_up**2)``. ``eta = 1`` samples the
    reverse diffusion (DDPM); ``eta = 0`` is plain Euler. One model call per step.

    Returns
    -------
    Tensor
        The sample, shape of ``x``.
    """
    if eta < 0:
        raise ConfigError(f"sample_euler_ancestral: eta must be >= 0, got {eta}")
    levels = _levels(x, sigmas)
    for i in trange(len(levels) - 1, disable=not progress):
        s, s_next = levels[i], levels[i + 1]
        den = _denoise(model, x, s, cond, guidance)
        _report(callback, x, i, s, s, den)
        if s_next == 0:
            x = den
            continue
        s_up = min(s_next, eta * s_next * math.sqrt(s**2 - s_next**2) / s)
        s_down = math.sqrt(s_next**2 - s_up**2)
        x = x + (s_down - s) * (x - den) / s
        if s_up > 0:
            x = x + _randn(x, generator) * (S_noise * s_up)
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
    "ddim": sample_ddim,
    "ancestral": sample_euler_ancestral,
}
"""Samplers by name."""

_COMMON = ("model", "x", "sigmas", "cond", "guidance", "generator", "callback", "progress")


def _get(name: str) -> Callable[..., Tensor]:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}") from None


def model_calls(name: str, n_steps: int) -> int:
    """Number of model evaluations sampler ``name`` makes for ``n_steps`` steps.

    ``n_steps = len(sigmas) - 1``. Heun makes 2 per step except the last (to
    ``sigma = 0``), i.e. ``2 * n_steps - 1``; the others make ``n_steps``.

    Parameters
    ----------
    name : str
        A key of [`SAMPLERS`][SAMPLERS].
    n_steps : int
        Number of steps, ``>= 1``.

    Returns
    -------
    int
        Model evaluations.
    """
    _get(name)
    if n_steps < 1:
        raise ConfigError(f"model_calls: n_steps must be >= 1, got {n_steps}")
    return 2 * n_steps - 1 if name == "heun" else n_steps


def sample(name: str, model: Denoiser, x: Tensor, sigmas: Tensor, **kw: Any) -> Tensor:
    """Run the sampler ``name``; ``kw`` are the common keywords and the sampler's options.

    Parameters
    ----------
    name : {"euler", "heun", "dpmpp_2m", "ddim", "ancestral"}
        Sampler.
    model, x, sigmas
        As for every sampler.
    **kw
        ``cond``, ``guidance``, ``generator``, ``callback``, ``progress`` and the
        sampler's own options (``S_churn`` ... for Heun, ``eta`` for DDIM and ancestral).

    Returns
    -------
    Tensor
        The sample.

    Raises
    ------
    ConfigError
        Unknown sampler or option.
    """
    fn = _get(name)
    allowed = set(inspect.signature(fn).parameters)
    unknown = sorted(set(kw) - allowed)
    if unknown:
        opts = sorted(allowed - set(_COMMON))
        raise ConfigError(f"sampler {name!r} has no option(s) {unknown}; its options are {opts}")
    return fn(model, x, sigmas, **kw)
