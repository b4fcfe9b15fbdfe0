"""Calibration on data never trained on: the departure scale, then the spread scales.

Members of the latent method are ``r + s * (y_k - r)``: the regression ``r``
(the first guess plus ``a`` times the learned departure) plus ``s`` times the
perturbation that latent sampling gives. On validation windows (a split no
network was trained on, never the evaluation's test part) with hidden points
(the trainer hides larger shares than training, ``calibration.hide``),
[`fit_departure_scale`][fit_departure_scale] first chooses ``a`` in [0, 1] by least squares,
then [`fit_spread_scale`][fit_spread_scale] chooses ``s`` so that the spread-skill relation
of a calibrated K-member ensemble holds on the hidden points::

    mean((ensemble mean - truth)**2) = (K + 1) / K * mean(member variance)

once over all hidden points and once per bin of a covariate (`COVARIATE`,
bins `COVARIATE_BINS`): the *local distance*, the distance to the nearest
shown point averaged over the point's 3^d neighbourhood
([`local_distance_of`][sparsediff.method.inputs.local_distance_of]). The plain distance
(`DISTANCE_BINS`, models calibrated before) puts a lone hidden point
among shown ones and the edge of a large box in one bin (both are one step
from the data) although the second is filled far worse; which of them a bin
holds then depends on the gap pattern, and a factor fitted on the
validation mix was too wide on MCAR gaps (A1B ``mcar:0.5``: 1.24) and too
narrow on boxes. The fitted factors are kept non-decreasing along the
bins (neighbouring bins that would dip are pooled). Bins with fewer than
`MIN_POINTS` points take the factor of the nearest fitted bin below
them, or of the first fitted bin above; beyond the last fitted bin — far
inside large gaps, which validation windows rarely reach — the factor
continues the growth of the last two pooled groups (per bin, clipped to [1,
`MAX_GROWTH`]): the error keeps growing with the distance to the data.
Both sides are quadratic in ``s``, so ``s`` has a closed form.

Why fitted factors: the perturbations come from a prior trained for minutes.
Measured on the held-out gaps of the shipped configs, their raw size is
nearly the same at every distance from the data (A1B: 0.19 K from one to
eight steps away, while the error grows from 0.20 K to 0.88 K), so the shape
of the spread, larger far from the data, comes from these factors; fitted on
held-out data, they fix the size without touching the ensemble's mean.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from sparsediff.method.base import HideSpec, TrainBatch, TrainSettings
from sparsediff.method.options import FillOptions
from sparsediff.method.variability import SIGMAS, fit_variability, local_variability_of
from sparsediff.progress import bar as progress_bar
from sparsediff.rng import Stream

if TYPE_CHECKING:  # the latent method calls these fits (its `calibrate`)
    from sparsediff.method.latent import LatentMethod

__all__ = [
    "COVARIATE",
    "COVARIATE_BINS",
    "DISTANCE_BINS",
    "Calibration",
    "SpreadFit",
    "bin_scales",
    "fit_calibration",
    "fit_departure_scale",
    "fit_spread_scale",
    "solve_spread_scale",
    "thin_pools",
]

#: Bounds of the fitted factor (a degenerate fit is clipped, and reported). Where the
#: latent carries almost no spread (raw spread/skill 0.004: 16 EOFs on A1B's years in
#: random order) the factors hit the upper bound and the ensemble stays under-dispersed
#: (0.27); a bound of 5000 calibrated that model (1.33 and 1.07 on held-out boxes and
#: MCAR) but made a barely trained model's CRPS 3.5x worse, so it is kept.
SCALE_MIN, SCALE_MAX = 0.05, 50.0
#: Below this raw spread/skill the record says that the latent carries almost no spread.
LATENT_SPREAD_LOW = 0.05
#: Lower edges of the distance bins (grid steps to the nearest shown point); last open.
DISTANCE_BINS: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0)
#: The covariate new calibrations bin the spread factors by (ModelSpec.spread_covariate).
COVARIATE = "local_distance"
#: Lower edges of its bins (grid steps); the last is open.
COVARIATE_BINS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0)
#: Fewest hidden points a bin needs for a factor of its own.
MIN_POINTS = 200
#: Largest factor growth from one distance bin to the next when extrapolating.
MAX_GROWTH = 2.0


@dataclass(frozen=True)
class Calibration:
    """The result of a spread calibration.

    Attributes
    ----------
    scale
        The factor fitted on all hidden validation points together.
    bins, scales
        Lower bin edges (of ``covariate``) and the factor of each bin.
    counts
        Hidden points per bin.
    spread_skill_before
        Spread/skill ratio of the raw ensemble (``s = 1``) on the validation points.
    points
        Number of hidden points it was fitted on.
    members
        Ensemble size used.
    covariate
        What the bins are over
        ([`sparsediff.method.inputs.SPREAD_COVARIATES`][sparsediff.method.inputs.SPREAD_COVARIATES]).
    where
        What the hidden points were taken from (``"validation"``: the
        training's validation part; ``"input"``: the data being filled).
    variability
        ``(sigma, power, ref)`` of the spread's scaling by the local
        variability ([`sparsediff.method.variability`][sparsediff.method.variability];
        power 0: none).
    """

    scale: float
    bins: tuple[float, ...]
    scales: tuple[float, ...]
    counts: tuple[int, ...]
    spread_skill_before: float
    points: int
    members: int
    covariate: str = COVARIATE
    where: str = "validation"
    variability: tuple[float, float, float] = (0.0, 0.0, 1.0)

    def describe(self) -> str:
        """One line for the model record."""
        per_bin = ", ".join(
            f">={b:g}: {s:.3g} ({n})"
            for b, s, n in zip(self.bins, self.scales, self.counts, strict=True)
        )
        what = "local distance" if self.covariate == "local_distance" else "distance"
        sigma, power, _ = self.variability
        follows = f", times (local variability, width {sigma:g}) ** {power:g}" if power > 0 else ""
        low = self.spread_skill_before < LATENT_SPREAD_LOW
        return (
            f"spread scale {self.scale:.4g} overall, by {what} to data [{per_bin}]{follows}, "
            f"fitted on {self.points} hidden {self.where} points ({self.members} members; raw "
            f"spread/skill {self.spread_skill_before:.3g})"
            + ("; the latent carries almost no spread: the factors make it up" if low else "")
        )


@dataclass(frozen=True)
class SpreadFit:
    """How the spread factors are fitted to the hidden points, beyond what is hidden.

    Attributes
    ----------
    noise_variance
        Variance (normalised units) of the noise in the hidden values, e.g. the
        error of binned point observations: it is taken off the squared errors,
        so that the spread is that of the field, not of the observations (0: the
        hidden values are exact, as on gridded data).
    thin_bins
        What a distance bin with too few hidden points gets: ``"extrapolate"``
        (the factor of its nearest fitted neighbour, and beyond the last fitted
        bin the growth of the last two continues) or ``"pool"`` (it is pooled
        with the bins above it until they have enough points, and they are
        fitted together: the factors far from the data come from the hidden
        points there, however few per bin).
    """

    noise_variance: float = 0.0
    thin_bins: Literal["extrapolate", "pool"] = "extrapolate"


def solve_spread_scale(e0: float, c1: float, m2: float, v: float, members: int) -> float:
    """The factor ``s`` that makes a K-member ensemble's spread match its error.

    With ``err = regression - truth``, ``m`` the mean perturbation and ``v``
    the mean member variance at s = 1 (all averaged over the points):
    ``e0 = mean(err**2)``, ``c1 = mean(err * m)``, ``m2 = mean(m**2)``. The
    calibrated ``s`` solves ``e0 + 2 s c1 + s**2 m2 = (K + 1) / K * s**2 v``,
    clipped to [SCALE_MIN, SCALE_MAX] (SCALE_MAX when the ensemble has no spread).
    A negative ``e0`` (the squared error less the noise of the truth, see
    [`fit_spread_scale`][fit_spread_scale]) counts as 0.
    """
    e0 = max(e0, 0.0)
    k = members
    a = (k + 1) / k * v - m2
    if a <= 0 or v <= 0:
        scale = SCALE_MAX
    else:
        scale = (2 * c1 + math.sqrt(4 * c1 * c1 + 4 * a * e0)) / (2 * a)
    return min(max(scale, SCALE_MIN), SCALE_MAX)


def thin_pools(sums: list[list[float]]) -> list[list[int]]:
    """The bins gathered outwards into pools of at least `MIN_POINTS` hidden points.

    Going out from the data, bins are gathered until they hold `MIN_POINTS`
    hidden points together. Empty bins before the first point are left out; a
    last pool that stays short joins the pool below it (or stays as it is when
    there is none). ``sums`` are the bins' ``(e0, c1, m2, v, n)``.
    """
    pools: list[list[int]] = []
    current: list[int] = []
    for i, t in enumerate(sums):
        if t[4] == 0 and not current and not pools:
            continue  # nothing hidden this close to the data
        current.append(i)
        if sum(sums[j][4] for j in current) >= MIN_POINTS:
            pools.append(current)
            current = []
    if current and pools:
        pools[-1].extend(current)
    elif current:
        pools.append(current)
    return pools


def bin_scales(
    sums: list[list[float]], members: int, overall: float, *, thin: str = "extrapolate"
) -> list[float]:
    """Spread factor per covariate bin from the bins' sums ``(e0, c1, m2, v, n)``.

    With ``thin="pool"`` the bins are first gathered into [pools][thin_pools],
    each fitted on its points once, so that every bin out to the last hidden
    point has a factor fitted on points.

    Bins with at least `MIN_POINTS` points are fitted in closed form,
    with the factors kept non-decreasing along the bins (pool adjacent
    violators: neighbouring fitted bins whose factors would decrease are
    pooled and fitted together — the error does not shrink further from the
    data, a dip is noise of a small bin). A bin with fewer points takes the
    factor of the nearest fitted bin below it (of the first fitted bin when
    none is below); beyond the last fitted bin the factor continues the
    growth per bin between the last two pooled groups (clipped to [1,
    `MAX_GROWTH`]), or is held flat when there is one group.
    ``overall`` everywhere when no bin has enough points.
    """

    def fit(t: list[float]) -> float:
        e0, c1, m2, v, cnt = t
        return solve_spread_scale(e0 / cnt, c1 / cnt, m2 / cnt, v / cnt, members)

    units = thin_pools(sums) if thin == "pool" else [[i] for i in range(len(sums))]
    groups: list[tuple[list[int], list[float]]] = []  # (bins, summed stats)
    for unit in units:
        t = (
            [sum(float(sums[j][c]) for j in unit) for c in range(5)]
            if len(unit) > 1
            else sums[unit[0]]
        )
        if t[4] < MIN_POINTS:
            continue
        groups.append((list(unit), [float(x) for x in t]))
        while len(groups) >= 2 and fit(groups[-1][1]) < fit(groups[-2][1]):
            bins, stats = groups.pop()
            groups[-1][0].extend(bins)
            groups[-1] = (groups[-1][0], [a + b for a, b in zip(groups[-1][1], stats, strict=True)])
    if not groups:
        return [overall] * len(sums)
    own: list[float | None] = [None] * len(sums)
    for bins, stats in groups:
        for i in bins:
            own[i] = fit(stats)
    first, last = groups[0][0][0], groups[-1][0][-1]
    growth = 1.0
    if len(groups) >= 2:
        (b0, t0), (b1, t1) = groups[-2], groups[-1]
        apart = sum(b1) / len(b1) - sum(b0) / len(b0)
        growth = min(max((fit(t1) / fit(t0)) ** (1.0 / apart), 1.0), MAX_GROWTH)
    scales: list[float] = []
    for i, x in enumerate(own):
        if x is not None:
            scales.append(x)
        elif i < first:
            scales.append(float(own[first]))  # type: ignore[arg-type]
        elif i < last:
            scales.append(scales[-1])
        else:
            scales.append(min(scales[-1] * growth, SCALE_MAX))
    return scales


@torch.no_grad()
def fit_departure_scale(
    method: LatentMethod,
    batches: Iterable[TrainBatch],
    settings: TrainSettings,
    *,
    hide: HideSpec | None = None,
    device: torch.device | str = "cpu",
) -> tuple[float, int] | None:
    """The factor in [0, 1] on the learned departure that fits the validation points best.

    Least squares of ``guess + a * departure`` against the truth at the hidden
    validation points: ``a = sum(d * (y - g)) / sum(d * d)``, clipped to
    [0, 1]. 1 keeps the regression as trained; 0 falls back to the first guess.

    Returns
    -------
    (factor, points) or None
        ``None`` when the batches hold no hidden observed point.
    """
    from sparsediff.method.inputs import guess_of

    raw = type(method)(method.spec.model_copy(update={"departure_scale": 1.0}), method.nets)
    num = den = 0.0
    n = 0
    for batch in batches:
        b = batch.to(device)
        w = raw.windows(b, hide or settings.hide, settings, stream=Stream.CALIBRATION, stage_key=0)
        if not bool(w.scored.any()):
            continue
        guess = guess_of(w.inputs, raw.spec.n_vars)
        d = (raw.regression(w.inputs) - guess)[w.scored].double()
        r = (w.values.float() - guess)[w.scored].double()
        num += float((d * r).sum())
        den += float((d * d).sum())
        n += int(w.scored.sum())
    if n == 0:
        return None
    return (min(max(num / den, 0.0), 1.0) if den > 0 else 1.0), n


@torch.no_grad()
def _hidden_points(
    raw: LatentMethod,
    batches: Iterable[TrainBatch],
    settings: TrainSettings,
    opts: FillOptions,
    hide: HideSpec,
    device: torch.device | str,
    covariate: str,
    bins: tuple[float, ...],
    sigmas: Sequence[float],
) -> list[torch.Tensor] | None:
    """Per hidden point: error, mean and variance of the raw perturbations, bin, variability."""
    from sparsediff.method.inputs import spread_covariate

    edges = torch.tensor(bins[1:], dtype=torch.float64)
    parts: list[list[torch.Tensor]] = [[] for _ in range(4 + len(sigmas))]
    for batch in batches:
        b = batch.to(device)
        w = raw.windows(b, hide, settings, stream=Stream.CALIBRATION, stage_key=0)
        if not bool(w.scored.any()):
            continue
        keys = [(int(p), k) for p in batch.positions for k in range(opts.members)]
        centre, pert = raw.complete_parts(w.inputs, keys, opts, repeats=opts.members)
        reg = centre.view(-1, opts.members, *centre.shape[1:])[:, 0]
        deltas = pert.view(-1, opts.members, *pert.shape[1:]).transpose(0, 1)  # (K, N, C, *S)
        sel = w.scored
        d = deltas[:, sel].double().cpu()  # (K, P)
        cov = spread_covariate(w.inputs, raw.spec.n_vars, covariate)[sel].double().cpu()
        found = [
            (reg - w.values.float())[sel].double().cpu(),
            d.mean(0),
            d.var(0, unbiased=True),
            torch.bucketize(cov, edges, right=True),
        ]
        found += [
            local_variability_of(w.inputs, raw.spec.n_vars, sg)[sel].double().cpu() for sg in sigmas
        ]
        for acc, x in zip(parts, found, strict=True):
            acc.append(x)
    if not parts[0]:
        return None
    return [torch.cat(p) for p in parts]


@torch.no_grad()
def fit_spread_scale(
    method: LatentMethod,
    batches: Iterable[TrainBatch],
    settings: TrainSettings,
    *,
    members: int = 8,
    steps: int = 16,
    hide: HideSpec | None = None,
    device: torch.device | str = "cpu",
    covariate: str = COVARIATE,
    sigmas: Sequence[float] = SIGMAS,
    powers: Sequence[float] = (0.0,),
    spread_fit: SpreadFit | None = None,
) -> Calibration | None:
    """Fit the spread factors of a latent model on validation batches.

    Parameters
    ----------
    method
        A trained latent method (its own spread factors are ignored: the raw
        ensemble is used).
    batches
        Validation crops; points are hidden in them with ``hide`` (default
        ``settings.hide``), keyed by ``(seed, CALIBRATION, position)``.
    settings
        Training settings (seed, hide spec, context dropping).
    members, steps
        Ensemble size and DPM-Solver++(2M) steps.
    hide
        What to hide in the validation windows.
    device
        Where to run.
    covariate
        What the factors are binned by: ``"local_distance"`` (bins
        `COVARIATE_BINS`) or ``"distance"`` (`DISTANCE_BINS`).
    sigmas, powers
        Candidate widths and powers of the spread's scaling by the local
        variability of the data, chosen by
        [`fit_variability`][sparsediff.method.variability.fit_variability]
        (the default, 0 alone: no scaling, the factors of earlier versions;
        [`POWERS`][sparsediff.method.variability.POWERS]: the data choose).
    spread_fit
        Noise in the hidden values, off the squared errors; thin bins ([`SpreadFit`][SpreadFit]).

    Returns
    -------
    Calibration or None
        ``None`` when the batches hold no hidden observed point.
    """
    rule = spread_fit or SpreadFit()
    raw_spec = method.spec.model_copy(
        update={
            "spread_scale": 1.0,
            "spread_bins": [],
            "spread_scales": [],
            "spread_variability_power": 0.0,
        }
    )
    raw = type(method)(raw_spec, method.nets)
    bins = DISTANCE_BINS if covariate == "distance" else COVARIATE_BINS
    opts = FillOptions(members=members, steps=steps, seed=settings.seed)
    if not any(p > 0 for p in powers):
        sigmas = ()  # the plain factors: no local variability to compute
    parts = _hidden_points(
        raw, batches, settings, opts, hide or settings.hide, device, covariate, bins, sigmas
    )
    if parts is None:
        return None
    r, m, var, which, *variability = parts
    n, k = int(r.numel()), members
    e0, c1, m2, v = (float(x.mean()) for x in (r**2, r * m, m**2, var))
    e0 -= rule.noise_variance
    overall = solve_spread_scale(e0, c1, m2, v, k)
    fit = fit_variability(
        r,
        m,
        var,
        which,
        variability,
        len(bins),
        lambda sums: bin_scales(sums, k, overall, thin=rule.thin_bins),
        k,
        sigmas=sigmas,
        powers=powers,
        noise=rule.noise_variance,
    )
    counts = torch.bincount(which, minlength=len(bins))
    skill_before = math.sqrt(max(e0 + 2 * c1 + m2, 0.0))
    spread_before = math.sqrt((k + 1) / k * v)
    return Calibration(
        scale=float(overall),
        bins=bins,
        scales=tuple(float(x) for x in fit.scales),
        counts=tuple(int(c) for c in counts),
        spread_skill_before=spread_before / skill_before if skill_before > 0 else float("nan"),
        points=n,
        members=k,
        covariate=covariate,
        variability=(fit.sigma, fit.power, fit.ref),
    )


def fit_calibration(
    method: LatentMethod,
    batches: list[TrainBatch],
    settings: TrainSettings,
    *,
    hide: HideSpec,
    members: int,
    steps: int,
    device: torch.device | str = "cpu",
    where: str = "validation",
    powers: Sequence[float] = (0.0,),
    progress: bool | None = False,
    spread_fit: SpreadFit | None = None,
) -> tuple[dict[str, object], str]:
    """Fit the departure scale, then the spread factors, on ``batches`` with ``hide`` hidden.

    The calibration of the latent method
    ([`LatentMethod.calibrate`][sparsediff.method.latent.LatentMethod.calibrate]), which the
    trainer runs on its validation part and ``calibrate="input"`` on the data
    being filled: first
    [`fit_departure_scale`][fit_departure_scale], then
    [`fit_spread_scale`][fit_spread_scale] of the method with that departure scale.

    Parameters
    ----------
    method
        A trained latent method.
    batches
        The crops to hide points in (keyed by their positions).
    settings
        Training settings (seed, context dropping).
    hide
        What to hide.
    members, steps
        Ensemble size and sampler steps of the spread fit.
    device
        Where to run.
    where
        Named in the description (``"validation"`` or ``"input"``).
    powers
        Candidate powers of the spread's scaling by the local variability
        ([`fit_spread_scale`][fit_spread_scale]; the default, 0 alone: none).
    progress
        Show a bar over the batches of each fit (``None``: when interactive).
    spread_fit
        Noise in the hidden values and the rule for thin bins
        ([`fit_spread_scale`][fit_spread_scale]).

    Returns
    -------
    (updates, description)
        The [`ModelSpec`][sparsediff.method.spec.ModelSpec] fields to change (none
        when the batches hold no observed point to hide) and one line for
        the model record.
    """
    updates: dict[str, object] = {}

    def shown(desc: str) -> Iterable[TrainBatch]:
        return progress_bar(batches, progress=progress, desc=f"calibration: {desc}", leave=False)

    fitted = fit_departure_scale(
        method, shown("departure scale"), settings, hide=hide, device=device
    )
    if fitted is not None:
        updates["departure_scale"] = fitted[0]
        method = type(method)(method.spec.model_copy(update=updates), method.nets)
    result = fit_spread_scale(
        method,
        shown("spread"),
        settings,
        members=members,
        steps=steps,
        hide=hide,
        device=device,
        powers=powers,
        spread_fit=spread_fit,
    )
    if result is None:
        return updates, f"none: the {where} windows hold no observed point to hide"
    result = dataclasses.replace(result, where=where)
    updates.update(
        spread_steps=steps,
        spread_scale=result.scale,
        spread_bins=list(result.bins),
        spread_scales=list(result.scales),
        spread_covariate=result.covariate,
        spread_variability_sigma=result.variability[0],
        spread_variability_power=result.variability[1],
        spread_variability_ref=result.variability[2],
    )
    described = f"departure scale {method.spec.departure_scale:.3g}; " + result.describe()
    if result.spread_skill_before < LATENT_SPREAD_LOW and max(result.scales) >= SCALE_MAX:
        print(
            f"calibration: {described}; with factors at their cap ({SCALE_MAX:g}) the "
            "ensemble is under-dispersed",
            file=sys.stderr,
            flush=True,
        )
    return updates, described
