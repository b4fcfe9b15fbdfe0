"""Spread that follows the local variability of the data: ``(v / v_ref) ** power``.

The calibrated spread factor of a point (per bin of its distance to the
data, [`sparsediff.method.calibration`][sparsediff.method.calibration]) is
multiplied by ``(v / v_ref) ** power``, where ``v`` is the
**local variability**: the standard deviation of the shown values around the
point, Gaussian-weighted with width ``sigma`` grid steps
([`local_variability_of`][local_variability_of]), and ``v_ref`` its mean over
the hidden points the calibration was fitted on.

Why: the raw perturbations of the latent prior are nearly the same size
everywhere, while the error of a fill is larger where the field itself varies
more. A calibration fitted on one part of the data then carries over to
another part only if both vary alike. Measured on MNI152 (the quality
config, raw ensemble, 30 % boxes): the local variability (σ = 2) of the shown
voxels was about twice as large on the scored slices (the top of the head)
as on the validation slices below them, and the error per unit of raw spread
rose with it in both; the error per unit of local variability was far
steadier (see the results page).

``sigma`` and ``power`` are chosen by the data, not fixed: [`fit_variability`][fit_variability]
tries every pair of `SIGMAS` × `POWERS` on the calibration's hidden points,
fits the per-bin factors for each, and keeps the pair whose spread/skill is
closest to 1 in each quantile group of the local variability.
``power = 0`` (no scaling, every model before this option) is one of the
candidates, so data whose error does not follow the local variability keep
the plain factors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sparsediff.method.first_guess import gaussian_blur

__all__ = [
    "FLOOR_SHARE",
    "GROUPS",
    "POWERS",
    "PRIOR_WEIGHT",
    "SIGMAS",
    "VariabilityFit",
    "fit_variability",
    "local_variability_of",
    "variability_factor",
]

SIGMAS: tuple[float, ...] = (1.0, 2.0, 4.0)
"""Candidate Gaussian widths (grid steps) of the local variability."""
POWERS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)
"""Candidate powers of ``v / v_ref`` (0: the spread does not follow the variability)."""
#: Quantile groups of the local variability the calibration is checked in.
GROUPS = 4
#: ``v`` is floored at this share of ``v_ref`` (a flat patch keeps some spread).
FLOOR_SHARE = 0.1
#: Weight of the window's own variance in the local one, times the share of a
#: point's Gaussian neighbourhood that is not shown, against the summed
#: weights of the shown points around it (1 when all are shown): the local
#: estimate is shrunk towards the window's where few points carry it.
PRIOR_WEIGHT = 0.1
_TINY = 1e-12


def local_variability_of(inputs: Tensor, n_vars: int, sigma: float) -> Tensor:
    """Gaussian-weighted standard deviation of the shown values around every point.

    A normalized convolution of the shown value channels (normalized units)
    with a Gaussian of width ``sigma`` grid steps: the variance
    ``E[x²] - E[x]²`` with the weights of the shown points only, shrunk towards
    the window's own variance of its shown values with weight
    ``p = PRIOR_WEIGHT * (1 - w)`` against the shown points' summed weight
    ``w`` (1 where every point around is shown):
    ``(w * local + p * window) / (w + p)``, so that a point with one or two
    shown neighbours does not get a variability of 0, a fully shown
    neighbourhood keeps its own, and deep inside a gap it is the window's.
    The square root of that.

    Parameters
    ----------
    inputs
        ``(N, n_inputs, *S)`` input channels (the layout of
        [`sparsediff.method.inputs`][sparsediff.method.inputs]).
    n_vars
        Number of variables ``C``.
    sigma
        Width of the Gaussian weights, grid steps.

    Returns
    -------
    Tensor
        ``(N, C, *S)``, float32 or wider.
    """
    c = n_vars
    x = inputs[:, :c].to(torch.promote_types(inputs.dtype, torch.float32))
    shown = inputs[:, c : 2 * c] > 0
    m = shown.to(x.dtype)
    dims = tuple(range(2, x.ndim))
    count = m.sum(dims, keepdim=True)
    # centred on the window's mean first: no cancellation in E[x²] - E[x]² for a flat field
    wmean = torch.where(shown, x, torch.zeros_like(x)).sum(dims, keepdim=True) / count.clamp_min(1)
    xv = torch.where(shown, x - wmean, torch.zeros_like(x))
    window = (xv * xv).sum(dims, keepdim=True) / count.clamp_min(1)
    flat = (False,) * (x.ndim - 2)  # inside a window: zero beyond its edges
    w = gaussian_blur(m, sigma, flat)
    mean = gaussian_blur(xv, sigma, flat) / w.clamp_min(_TINY)
    sq = gaussian_blur(xv * xv, sigma, flat) / w.clamp_min(_TINY)
    local = (sq - mean * mean).clamp_min(0)
    # shrink towards the window's variance where few shown points carry the local one
    prior = PRIOR_WEIGHT * (1 - w).clamp_min(0)
    return ((w * local + prior * window) / (w + prior).clamp_min(_TINY)).sqrt()


def variability_factor(
    inputs: Tensor, n_vars: int, sigma: float, power: float, ref: float
) -> Tensor:
    """``(max(v, FLOOR_SHARE * ref) / ref) ** power`` at every point (see the module)."""
    v = local_variability_of(inputs, n_vars, sigma)
    return (v.clamp_min(FLOOR_SHARE * ref) / ref) ** power


@dataclass(frozen=True)
class VariabilityFit:
    """The chosen width, power and reference, with the factors fitted under them.

    Attributes
    ----------
    sigma, power, ref
        Of [`variability_factor`][variability_factor] (``power = 0``: off).
    scales
        The per-bin spread factors fitted together with them.
    scores
        The miscalibration over the variability groups per candidate
        ``(sigma, power)`` (the smallest was chosen; empty when there was
        no candidate: no width given, or a flat field).
    """

    sigma: float
    power: float
    ref: float
    scales: list[float]
    scores: dict[tuple[float, float], float]


def _miscalibration(err: Tensor, spread2: Tensor, v: Tensor) -> float:
    """Mean squared log spread/skill over the `GROUPS` quantile groups of ``v``."""
    order = torch.argsort(v)
    logs = []
    for part in torch.tensor_split(order, GROUPS):
        skill = float((err[part] ** 2).mean())
        spread = float(spread2[part].mean())
        if skill > 0 and spread > 0:
            logs.append(math.log(spread / skill) ** 2)
    return sum(logs) / len(logs) if logs else math.inf


def fit_variability(
    err: Tensor,
    mean_pert: Tensor,
    member_var: Tensor,
    which: Tensor,
    variability: Sequence[Tensor],
    n_bins: int,
    bin_fit: Callable[[list[list[float]]], list[float]],
    members: int,
    *,
    sigmas: Sequence[float] = SIGMAS,
    powers: Sequence[float] = POWERS,
    noise: float = 0.0,
) -> VariabilityFit:
    """Choose ``(sigma, power)`` so that the spread is calibrated at every level of variability.

    For every candidate, the perturbations are scaled by the variability
    factor and the per-bin factors are fitted by ``bin_fit`` (the
    calibration's closed form on the bins' sums ``(e0, c1, m2, v, n)``); then
    the hidden points are split into `GROUPS` quantile groups of their local
    variability and the candidate is scored by the mean squared log of the
    spread/skill ratio over the groups, with the spread
    ``(K + 1) / K * s_bin² * g² * member variance`` (``g`` the factor). The
    candidate with the smallest wins; ties go to the earlier (smaller) power.
    A calibration that holds in every group carries over to data that vary
    more or less than the calibration's (the reason for the scaling).
    Tried first, and dropped: the mean Gaussian log-likelihood (a few points
    given too little spread decide it; on MNI152 it kept a power of 0.25 and
    the scored slices stayed under-dispersed at 0.79) and the mean Gaussian
    CRPS (nearly flat in the power: 0.5 % between the candidates).

    Parameters
    ----------
    err
        ``(P,)`` regression minus truth at the hidden points.
    mean_pert, member_var
        ``(P,)`` mean and unbiased variance of the raw member perturbations.
    which
        ``(P,)`` bin index of every point.
    variability
        Per candidate width of ``sigmas``, the ``(P,)`` local variability.
    n_bins
        Number of bins.
    bin_fit
        Per-bin factors from the bins' sums.
    members
        Ensemble size K.
    sigmas, powers
        The candidates (no widths: the plain factors, power 0).
    noise
        Variance of the noise in the hidden values: taken off every squared
        error in the bins' sums, and added to the spread in the score.
    """
    k = members

    def factors(g: Tensor | None) -> tuple[list[float], Tensor, Tensor]:
        m, var = (mean_pert, member_var) if g is None else (mean_pert * g, member_var * g * g)
        stats = torch.stack([err**2 - noise, err * m, m**2, var, torch.ones_like(err)], 1)
        sums = torch.zeros(n_bins, 5, dtype=torch.float64).index_add_(0, which, stats)
        return bin_fit(sums.tolist()), m, var

    plain = factors(None)
    table: dict[tuple[float, float], float] = {}
    best = (math.inf, 0.0, 0.0, 1.0, plain[0])  # score, sigma, power, ref, scales
    for sigma, v in zip(sigmas, variability, strict=True):
        ref = float(v.mean()) if v.numel() else 0.0
        if not ref > 0:  # a flat field: nothing to follow
            continue
        for power in powers:
            g = None if power == 0 else (v.clamp_min(FLOOR_SHARE * ref) / ref) ** power
            scales, m, var = plain if g is None else factors(g)
            s = torch.tensor(scales, dtype=torch.float64)[which]
            score = _miscalibration(err + s * m, (k + 1) / k * s * s * var + noise, v)
            table[(sigma, power)] = score
            if score < best[0] - 1e-9:
                off = power == 0  # the plain factors, whatever the width
                best = (score, 0.0 if off else sigma, power, 1.0 if off else ref, scales)
    _, sigma, power, ref, scales = best
    return VariabilityFit(sigma=sigma, power=power, ref=ref, scales=scales, scores=table)
