"""Spread calibration: make the ensemble spread match the error on data never trained on.

Members of the latent method are ``r + s * (y_k - r)``: the regression ``r``
plus ``s`` times the perturbation that latent sampling gives. On validation
windows (a split no network was trained on, never the evaluation's test part)
with training-like hidden points, :func:`fit_spread_scale` chooses ``s`` so
that the spread-skill relation of a calibrated K-member ensemble holds on the
hidden points::

    mean((ensemble mean - truth)**2) = (K + 1) / K * mean(member variance)

Both sides are quadratic in ``s`` (the ensemble mean moves with ``s`` too),
so ``s`` has a closed form. Why a fitted factor: the perturbations come from a
prior trained for minutes, whose spread has the right *shape* (larger far from
the data) but not necessarily the right size; one factor fitted on held-out
data fixes the size without touching the ensemble's structure or its mean
error at ``s = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from sparsediff.method.base import Method, TrainBatch, TrainSettings
from sparsediff.method.options import FillOptions
from sparsediff.rng import Stream

__all__ = ["Calibration", "fit_spread_scale", "solve_spread_scale"]

#: Bounds of the fitted factor (a degenerate fit is clipped, and reported).
SCALE_MIN, SCALE_MAX = 0.05, 50.0


@dataclass(frozen=True)
class Calibration:
    """The result of a spread calibration.

    Attributes
    ----------
    scale
        The fitted spread factor ``s``.
    spread_skill_before
        Spread/skill ratio of the raw ensemble (``s = 1``) on the validation points.
    points
        Number of hidden validation points it was fitted on.
    members
        Ensemble size used.
    """

    scale: float
    spread_skill_before: float
    points: int
    members: int

    def describe(self) -> str:
        """One line for the model record."""
        return (
            f"spread scale {self.scale:.4g} fitted on {self.points} hidden validation points "
            f"({self.members} members; raw spread/skill {self.spread_skill_before:.3g})"
        )


def solve_spread_scale(e0: float, c1: float, m2: float, v: float, members: int) -> float:
    """The factor ``s`` that makes a K-member ensemble's spread match its error.

    With ``err = regression - truth``, ``m`` the mean perturbation and ``v``
    the mean member variance at s = 1 (all averaged over the points):
    ``e0 = mean(err**2)``, ``c1 = mean(err * m)``, ``m2 = mean(m**2)``. The
    calibrated ``s`` solves ``e0 + 2 s c1 + s**2 m2 = (K + 1) / K * s**2 v``,
    clipped to [SCALE_MIN, SCALE_MAX] (SCALE_MAX when the ensemble has no spread).
    """
    k = members
    a = (k + 1) / k * v - m2
    if a <= 0 or v <= 0:
        scale = SCALE_MAX
    else:
        scale = (2 * c1 + math.sqrt(4 * c1 * c1 + 4 * a * e0)) / (2 * a)
    return min(max(scale, SCALE_MIN), SCALE_MAX)


@torch.no_grad()
def fit_spread_scale(
    method: Method,
    batches: Iterable[TrainBatch],
    settings: TrainSettings,
    *,
    members: int = 8,
    steps: int = 16,
    device: torch.device | str = "cpu",
) -> Calibration | None:
    """Fit the spread factor of a latent model on validation batches.

    Parameters
    ----------
    method
        A trained latent method (its ``spread_scale`` is ignored: the raw
        ensemble is used).
    batches
        Validation crops; points are hidden in them with ``settings.hide``,
        keyed by ``(seed, CALIBRATION, position)``.
    settings
        Training settings (seed, hide spec, context dropping).
    members, steps
        Ensemble size and DPM-Solver++(2M) steps.
    device
        Where to run.

    Returns
    -------
    Calibration or None
        ``None`` when the batches hold no hidden observed point.
    """
    from sparsediff.method import build_method

    raw = build_method(method.spec.model_copy(update={"spread_scale": 1.0}), method.nets)
    opts = FillOptions(members=members, steps=steps, seed=settings.seed)
    e0 = c1 = m2 = v = 0.0
    n = 0
    for batch in batches:
        b = batch.to(device)
        w = raw.windows(b, settings.hide, settings, stream=Stream.CALIBRATION, stage_key=0)
        if not bool(w.scored.any()):
            continue
        reg = raw.regression(w.inputs)  # type: ignore[attr-defined]
        ys = []
        for k in range(members):
            keys = [(int(p), k) for p in batch.positions]
            ys.append(raw.complete(w.inputs, keys, opts))
        deltas = torch.stack(ys) - reg  # (K, N, C, *S)
        sel = w.scored
        d = deltas[:, sel].double()  # (K, P)
        r = (reg - w.values.float())[sel].double()
        m = d.mean(0)
        e0 += float((r**2).sum())
        c1 += float((r * m).sum())
        m2 += float((m**2).sum())
        v += float(d.var(0, unbiased=True).sum())
        n += int(sel.sum())
    if n == 0:
        return None
    e0, c1, m2, v = e0 / n, c1 / n, m2 / n, v / n
    k = members
    skill_before = math.sqrt(e0 + 2 * c1 + m2)
    spread_before = math.sqrt((k + 1) / k * v)
    return Calibration(
        scale=float(solve_spread_scale(e0, c1, m2, v, k)),
        spread_skill_before=spread_before / skill_before if skill_before > 0 else float("nan"),
        points=n,
        members=k,
    )
