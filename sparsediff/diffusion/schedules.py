"""Noise schedules: pure functions from a step count or a draw to noise levels.

One convention everywhere (EDM / variance exploding): a noisy state is

    x = x0 + sigma * eps,        eps ~ N(0, I),

so a schedule is just a list of ``sigma`` values. The sampling schedule,
[`karras_sigmas`][karras_sigmas], returns a 1-D tensor of ``n + 1`` values: ``n``
strictly decreasing positive noise levels followed by a trailing ``0`` (the
clean end), ready for the samplers in
[`sparsediff.diffusion.samplers`][sparsediff.diffusion.samplers]
(``n`` sampler steps).

Training draws noise levels per sample: [`sample_training_sigma_edm`][sample_training_sigma_edm]
(lognormal), [`sample_training_sigma`][sample_training_sigma] (uniform in the time of a named
schedule) and [`sample_flow_t`][sample_flow_t] (rectified-flow time). Each named schedule
(``karras``, ``vp_linear``, ``vp_cosine``, ``flow``) is a monotone map from a
unit "ramp" ``u`` in ``[0, 1]`` (``u = 0``: the largest sigma, ``u = 1``: the
smallest) to ``sigma``; the Karras sampling schedule evaluates its ramp on
``n`` evenly spaced ``u``, a training noise level draws ``u ~ U(0, 1)``. The
other conventions map onto ``sigma`` exactly: variance preserving
``x_vp = alpha * x0 + sigma_vp * eps`` has ``sigma = sigma_vp / alpha``, and
rectified flow ``x_t = (1 - t) * x0 + t * eps`` has ``sigma = t / (1 - t)``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sparsediff.errors import ConfigError

__all__ = [
    "karras_sigmas",
    "sample_flow_t",
    "sample_training_sigma",
    "sample_training_sigma_edm",
]

Shape = int | Sequence[int]


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
    name: str,
    n: int,
    kw: dict[str, float],
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> Tensor:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"schedule {name!r}: the number of steps n must be an int >= 1, got {n}")
    u = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    sigmas = _RAMPS[name](u, **kw)
    sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return sigmas.to(device=device, dtype=dtype or torch.get_default_dtype())


# --------------------------------------------------------------------------- sampling schedule


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

    ``"edm"`` (alias ``"lognormal"``) is [`sample_training_sigma_edm`][sample_training_sigma_edm]
    (options ``P_mean``, ``P_std``). The schedule names draw their ramp
    uniformly:

    * ``"karras"`` (``sigma_min=0.002, sigma_max=80, rho=7``): uniform in
      ``sigma ** (1 / rho)``, as [`karras_sigmas`][karras_sigmas];
    * ``"vp_linear"`` (``beta_min=0.1, beta_max=20, eps_s=1e-3``): the
      linear-beta VP SDE, ``sigma(t) = sqrt(exp(beta_d * t**2 / 2 + beta_min
      * t) - 1)`` with ``beta_d = beta_max - beta_min``, ``t`` uniform in
      ``[eps_s, 1]`` (sigma about 0.0105 to 152 with the defaults);
    * ``"vp_cosine"`` (``sigma_min=0.002, sigma_max=80, s=0.008``): the cosine
      schedule (Nichol & Dhariwal 2021), ``sigma(t) = sqrt(cos(phi(0))**2 /
      cos(phi(t))**2 - 1)``, ``phi(t) = (t + s) / (1 + s) * pi / 2``, ``t``
      uniform between the times of ``sigma_max`` and ``sigma_min``;
    * ``"flow"`` (``sigma_min=0.002, sigma_max=80``): rectified-flow time
      ``t = sigma / (1 + sigma)`` uniform between those of ``sigma_max`` and
      ``sigma_min``.

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
