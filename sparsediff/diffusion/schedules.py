"""Noise schedules: pure functions from a step count to noise levels.

One convention everywhere (EDM / variance exploding): a noisy state is

    x = x0 + sigma * eps,        eps ~ N(0, I),

so a schedule is just a list of ``sigma`` values. Every discrete schedule here
returns a 1-D tensor of ``n + 1`` values: ``n`` strictly decreasing positive
noise levels followed by a trailing ``0`` (the clean end), ready for the
samplers in :mod:`sparsediff.diffusion.samplers` (``n`` sampler steps).

The other common conventions map onto ``sigma`` exactly:

* variance preserving (VP): ``x_vp = alpha * x0 + sigma_vp * eps`` with
  ``alpha**2 + sigma_vp**2 = 1``; ``sigma = sigma_vp / alpha`` and
  ``x = x_vp / alpha`` (:func:`sigma_to_alpha_sigma_vp`);
* rectified flow: ``x_t = (1 - t) * x0 + t * eps``; ``sigma = t / (1 - t)``
  and ``x = x_t / (1 - t)`` (:func:`sigma_to_flow_t`).

Each named schedule is a monotone map from a unit "ramp" ``u`` in ``[0, 1]``
(``u = 0``: the largest sigma, ``u = 1``: the smallest) to ``sigma``. A
discrete schedule evaluates it on ``n`` evenly spaced ``u``; a training noise
level draws ``u ~ U(0, 1)`` (:func:`sample_training_sigma`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sparsediff.errors import ConfigError

__all__ = [
    "SCHEDULES",
    "alpha_sigma_vp_to_sigma",
    "flow_sigmas",
    "flow_t_to_sigma",
    "get_sigmas",
    "karras_sigmas",
    "sample_flow_t",
    "sample_training_sigma",
    "sample_training_sigma_edm",
    "sigma_to_alpha_sigma_vp",
    "sigma_to_flow_t",
    "vp_cosine_sigmas",
    "vp_linear_sigmas",
]

Shape = int | Sequence[int]


# --------------------------------------------------------------------------- conversions


def sigma_to_alpha_sigma_vp(sigma: Tensor | float) -> tuple[Tensor, Tensor]:
    """Map a VE noise level to the VP pair ``(alpha, sigma_vp)``.

    ``alpha = 1 / sqrt(1 + sigma**2)`` and ``sigma_vp = sigma * alpha``, so that
    ``alpha**2 + sigma_vp**2 = 1`` and ``x_vp = alpha * x`` is the VP state.

    Parameters
    ----------
    sigma : Tensor or float
        VE noise level(s), ``>= 0``.

    Returns
    -------
    tuple of Tensor
        ``(alpha, sigma_vp)``, each of ``sigma``'s shape.
    """
    sigma = torch.as_tensor(sigma)
    alpha = torch.rsqrt(1.0 + sigma**2)
    return alpha, sigma * alpha


def alpha_sigma_vp_to_sigma(alpha: Tensor | float, sigma_vp: Tensor | float) -> Tensor:
    """Map a VP pair ``(alpha, sigma_vp)`` back to the VE noise level ``sigma_vp / alpha``.

    Parameters
    ----------
    alpha, sigma_vp : Tensor or float
        Signal and noise coefficients of ``x_vp = alpha * x0 + sigma_vp * eps``.

    Returns
    -------
    Tensor
        ``sigma = sigma_vp / alpha``.
    """
    return torch.as_tensor(sigma_vp) / torch.as_tensor(alpha)


def sigma_to_flow_t(sigma: Tensor | float) -> Tensor:
    """Map a VE noise level to rectified-flow time ``t = sigma / (1 + sigma)``.

    Parameters
    ----------
    sigma : Tensor or float
        VE noise level(s), ``>= 0``.

    Returns
    -------
    Tensor
        Flow time in ``[0, 1)``.
    """
    sigma = torch.as_tensor(sigma)
    return sigma / (1.0 + sigma)


def flow_t_to_sigma(t: Tensor | float) -> Tensor:
    """Map rectified-flow time ``t`` in ``[0, 1)`` to the VE noise level ``t / (1 - t)``.

    Parameters
    ----------
    t : Tensor or float
        Flow time(s), ``0 <= t < 1``.

    Returns
    -------
    Tensor
        VE noise level ``sigma``.
    """
    t = torch.as_tensor(t)
    return t / (1.0 - t)


# --------------------------------------------------------------------------- ramps u -> sigma
# Each takes u in [0, 1] (0 = noisiest) as a float64 tensor and returns sigma.


def _check_range(name: str, sigma_min: float, sigma_max: float) -> None:
    if not (0.0 < sigma_min < sigma_max < math.inf):
        raise ConfigError(
            f"schedule {name!r}: need 0 < sigma_min < sigma_max < inf, "
            f"got sigma_min={sigma_min}, sigma_max={sigma_max}"
        )


def _karras_ramp(
    u: Tensor, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> Tensor:
    _check_range("karras", sigma_min, sigma_max)
    if rho <= 0:
        raise ConfigError(f"schedule 'karras': rho must be > 0, got {rho}")
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return (hi + u * (lo - hi)) ** rho


def _vp_linear_ramp(
    u: Tensor, beta_min: float = 0.1, beta_max: float = 20.0, eps_s: float = 1e-3
) -> Tensor:
    if not (0.0 < eps_s < 1.0) or beta_min < 0 or beta_max <= beta_min:
        raise ConfigError(
            "schedule 'vp_linear': need 0 < eps_s < 1 and 0 <= beta_min < beta_max, "
            f"got eps_s={eps_s}, beta_min={beta_min}, beta_max={beta_max}"
        )
    t = 1.0 + u * (eps_s - 1.0)
    return torch.sqrt(torch.expm1(0.5 * (beta_max - beta_min) * t**2 + beta_min * t))


def _cosine_t(sigma: float, s: float) -> float:
    # inverse of sigma(t)^2 = cos^2(phi0) / cos^2(phi(t)) - 1, phi(t) = (t + s) / (1 + s) * pi / 2
    phi0 = s / (1.0 + s) * math.pi / 2.0
    phi = math.acos(math.cos(phi0) / math.sqrt(1.0 + sigma**2))
    return phi * 2.0 / math.pi * (1.0 + s) - s


def _vp_cosine_ramp(
    u: Tensor, sigma_min: float = 0.002, sigma_max: float = 80.0, s: float = 0.008
) -> Tensor:
    _check_range("vp_cosine", sigma_min, sigma_max)
    if s < 0:
        raise ConfigError(f"schedule 'vp_cosine': offset s must be >= 0, got {s}")
    t_hi, t_lo = _cosine_t(sigma_max, s), _cosine_t(sigma_min, s)
    t = t_hi + u * (t_lo - t_hi)
    phi0 = s / (1.0 + s) * math.pi / 2.0
    phi = (t + s) / (1.0 + s) * math.pi / 2.0
    return torch.sqrt((math.cos(phi0) / torch.cos(phi)) ** 2 - 1.0)


def _flow_ramp(u: Tensor, sigma_min: float = 0.002, sigma_max: float = 80.0) -> Tensor:
    _check_range("flow", sigma_min, sigma_max)
    t_hi, t_lo = sigma_max / (1.0 + sigma_max), sigma_min / (1.0 + sigma_min)
    t = t_hi + u * (t_lo - t_hi)
    return t / (1.0 - t)


_RAMPS: dict[str, Callable[..., Tensor]] = {
    "karras": _karras_ramp,
    "vp_linear": _vp_linear_ramp,
    "vp_cosine": _vp_cosine_ramp,
    "flow": _flow_ramp,
}


def _ramp(name: str) -> Callable[..., Tensor]:
    try:
        return _RAMPS[name]
    except KeyError:
        raise ConfigError(
            f"unknown noise schedule {name!r}; choose one of {sorted(_RAMPS)}"
        ) from None


def _check_kwargs(name: str, fn: Callable[..., Tensor], kw: dict[str, float]) -> None:
    allowed = [p for p in inspect.signature(fn).parameters if p != "u"]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ConfigError(
            f"schedule {name!r} has no option(s) {unknown}; its options are {allowed}"
        )


def _discrete(
    name: str, n: int, kw: dict[str, float], device: torch.device | str | None, dtype: torch.dtype
) -> Tensor:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"schedule {name!r}: the number of steps n must be an int >= 1, got {n}")
    u = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    sigmas = _RAMPS[name](u, **kw)
    sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return sigmas.to(device=device, dtype=dtype or torch.get_default_dtype())


# --------------------------------------------------------------------------- discrete schedules


def karras_sigmas(
    n: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """EDM (Karras et al. 2022) schedule, evenly spaced in ``sigma ** (1 / rho)``.

    ``sigma_i = (sigma_max**(1/rho) + i / (n-1) * (sigma_min**(1/rho) - sigma_max**(1/rho)))**rho``
    for ``i = 0 .. n-1``, then ``0``.

    Parameters
    ----------
    n : int
        Number of sampler steps (``>= 1``).
    sigma_min, sigma_max : float
        Smallest and largest positive noise level.
    rho : float
        Warp; larger values spend more steps at low noise (7 is EDM's choice).
    device, dtype : optional
        Of the result (default dtype: ``torch.get_default_dtype()``).

    Returns
    -------
    Tensor
        Shape ``(n + 1,)``, decreasing, ``[sigma_max, ..., sigma_min, 0]``.
    """
    kw = {"sigma_min": sigma_min, "sigma_max": sigma_max, "rho": rho}
    return _discrete("karras", n, kw, device, dtype)


def vp_linear_sigmas(
    n: int,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
    eps_s: float = 1e-3,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Linear-beta VP schedule (DDPM / score-SDE "VP"), evenly spaced in time.

    ``sigma(t) = sqrt(exp(beta_d * t**2 / 2 + beta_min * t) - 1)``,
    ``beta_d = beta_max - beta_min``, at ``t`` evenly spaced from ``1`` down to
    ``eps_s``, then ``0``. With the defaults ``sigma`` runs from about 152 to 0.0105.

    Parameters
    ----------
    n : int
        Number of sampler steps (``>= 1``).
    beta_min, beta_max : float
        Linear noise rate ``beta(t) = beta_min + t * beta_d``.
    eps_s : float
        Smallest time (``0 < eps_s < 1``).
    device, dtype : optional
        Of the result.

    Returns
    -------
    Tensor
        Shape ``(n + 1,)``, decreasing, ending with ``0``.
    """
    kw = {"beta_min": beta_min, "beta_max": beta_max, "eps_s": eps_s}
    return _discrete("vp_linear", n, kw, device, dtype)


def vp_cosine_sigmas(
    n: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    s: float = 0.008,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Cosine VP schedule (Nichol & Dhariwal 2021), evenly spaced in time.

    ``alpha_bar(t) = cos(phi(t))**2 / cos(phi(0))**2`` with
    ``phi(t) = (t + s) / (1 + s) * pi / 2``, so ``sigma(t) = sqrt(1 / alpha_bar(t) - 1)``.
    ``sigma`` diverges at ``t = 1``; the time range is clipped to the times where
    ``sigma`` equals ``sigma_max`` and ``sigma_min`` (closed-form inverse), then
    evenly spaced, then ``0`` is appended.

    Parameters
    ----------
    n : int
        Number of sampler steps (``>= 1``).
    sigma_min, sigma_max : float
        Exact first and last positive noise level.
    s : float
        Small time offset of the cosine schedule.
    device, dtype : optional
        Of the result.

    Returns
    -------
    Tensor
        Shape ``(n + 1,)``, decreasing, ``[sigma_max, ..., sigma_min, 0]``.
    """
    kw = {"sigma_min": sigma_min, "sigma_max": sigma_max, "s": s}
    return _discrete("vp_cosine", n, kw, device, dtype)


def flow_sigmas(
    n: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Rectified-flow schedule: evenly spaced in flow time ``t``, mapped to ``sigma = t / (1 - t)``.

    ``t`` runs evenly from ``sigma_max / (1 + sigma_max)`` down to
    ``sigma_min / (1 + sigma_min)`` (``t = 1`` would be ``sigma = inf``, hence
    the clip), then ``0`` is appended.

    Parameters
    ----------
    n : int
        Number of sampler steps (``>= 1``).
    sigma_min, sigma_max : float
        Exact first and last positive noise level.
    device, dtype : optional
        Of the result.

    Returns
    -------
    Tensor
        Shape ``(n + 1,)``, decreasing, ``[sigma_max, ..., sigma_min, 0]``.
    """
    kw = {"sigma_min": sigma_min, "sigma_max": sigma_max}
    return _discrete("flow", n, kw, device, dtype)


SCHEDULES: dict[str, Callable[..., Tensor]] = {
    "karras": karras_sigmas,
    "vp_linear": vp_linear_sigmas,
    "vp_cosine": vp_cosine_sigmas,
    "flow": flow_sigmas,
}
"""Discrete schedules by name (the names :func:`get_sigmas` accepts)."""


def get_sigmas(
    name: str,
    n: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **kw: float,
) -> Tensor:
    """Build the discrete schedule ``name`` with ``n`` steps.

    Parameters
    ----------
    name : {"karras", "vp_linear", "vp_cosine", "flow"}
        Schedule name.
    n : int
        Number of sampler steps (``>= 1``).
    device, dtype : optional
        Of the result.
    **kw
        The schedule's own options (e.g. ``sigma_max=80.0``, ``rho=7.0``).

    Returns
    -------
    Tensor
        Shape ``(n + 1,)``, decreasing, ending with ``0``.

    Raises
    ------
    ConfigError
        Unknown name, unknown option, or invalid values.
    """
    fn = _ramp(name)
    _check_kwargs(name, fn, kw)
    return _discrete(name, n, dict(kw), device, dtype)


# --------------------------------------------------------------------------- training noise


def _shape(shape: Shape) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def _device(
    device: torch.device | str | None, generator: torch.Generator | None
) -> torch.device | str | None:
    if device is None and generator is not None:
        return generator.device
    return device


def sample_training_sigma_edm(
    shape: Shape,
    P_mean: float = -1.2,
    P_std: float = 1.2,
    generator: torch.Generator | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Draw EDM training noise levels: ``log(sigma) ~ N(P_mean, P_std**2)``.

    Parameters
    ----------
    shape : int or sequence of int
        Shape of the result (usually ``(batch,)``).
    P_mean, P_std : float
        Mean and standard deviation of ``log(sigma)``.
    generator : torch.Generator, optional
        Source of randomness (its device is used when ``device`` is not given).
    device, dtype : optional
        Of the result.

    Returns
    -------
    Tensor
        Positive noise levels of the given shape.
    """
    if P_std < 0:
        raise ConfigError(f"EDM training sigma: P_std must be >= 0, got {P_std}")
    z = torch.randn(
        _shape(shape), generator=generator, device=_device(device, generator), dtype=dtype
    )
    return torch.exp(P_mean + P_std * z)


def sample_training_sigma(
    name: str,
    shape: Shape,
    generator: torch.Generator | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **kw: float,
) -> Tensor:
    """Draw training noise levels from a named schedule.

    ``"edm"`` (alias ``"lognormal"``) is :func:`sample_training_sigma_edm`
    (options ``P_mean``, ``P_std``). Every discrete schedule name draws its
    ramp uniformly: ``"vp_cosine"`` / ``"vp_linear"`` / ``"flow"`` are uniform
    in their time variable, ``"karras"`` is uniform in ``sigma ** (1 / rho)``;
    they take the same options as in :func:`get_sigmas`.

    Parameters
    ----------
    name : str
        ``"edm"``, ``"lognormal"``, ``"karras"``, ``"vp_linear"``, ``"vp_cosine"`` or ``"flow"``.
    shape : int or sequence of int
        Shape of the result.
    generator : torch.Generator, optional
        Source of randomness.
    device, dtype : optional
        Of the result.
    **kw
        Options of the distribution.

    Returns
    -------
    Tensor
        Positive noise levels.

    Raises
    ------
    ConfigError
        Unknown name or option.
    """
    if name in ("edm", "lognormal"):
        unknown = sorted(set(kw) - {"P_mean", "P_std"})
        if unknown:
            raise ConfigError(
                f"training sigma {name!r} has no option(s) {unknown}; its options are "
                "['P_mean', 'P_std']"
            )
        return sample_training_sigma_edm(
            shape, generator=generator, device=device, dtype=dtype, **kw
        )
    fn = _ramp(name)
    _check_kwargs(name, fn, kw)
    u = torch.rand(
        _shape(shape), generator=generator, device=_device(device, generator), dtype=dtype
    )
    return fn(u, **kw)


def sample_flow_t(
    shape: Shape,
    t_min: float = 1e-3,
    t_max: float = 0.999,
    dist: str = "uniform",
    loc: float = 0.0,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Draw rectified-flow training times in ``[t_min, t_max]``.

    ``dist="uniform"``: ``t ~ U(t_min, t_max)``. ``dist="logit_normal"``
    (Esser et al. 2024): ``t = t_min + (t_max - t_min) * sigmoid(loc + scale * z)``,
    ``z ~ N(0, 1)``, which concentrates training on middle times.

    Parameters
    ----------
    shape : int or sequence of int
        Shape of the result.
    t_min, t_max : float
        Time range, ``0 < t_min < t_max < 1`` (``t = 1`` is infinite noise).
    dist : {"uniform", "logit_normal"}
        Distribution.
    loc, scale : float
        Of the logit-normal.
    generator : torch.Generator, optional
        Source of randomness.
    device, dtype : optional
        Of the result.

    Returns
    -------
    Tensor
        Flow times.
    """
    if not (0.0 < t_min < t_max < 1.0):
        raise ConfigError(
            f"flow time: need 0 < t_min < t_max < 1, got t_min={t_min}, t_max={t_max}"
        )
    dev = _device(device, generator)
    if dist == "uniform":
        u = torch.rand(_shape(shape), generator=generator, device=dev, dtype=dtype)
    elif dist == "logit_normal":
        z = torch.randn(_shape(shape), generator=generator, device=dev, dtype=dtype)
        u = torch.sigmoid(loc + scale * z)
    else:
        raise ConfigError(f"flow time: unknown dist {dist!r}; choose 'uniform' or 'logit_normal'")
    return t_min + (t_max - t_min) * u
