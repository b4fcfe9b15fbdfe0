"""How far the space-time first guess leans on the neighbouring steps, fitted on the data.

With context frames the first guess is ``w * base + guess(shown - w * base)``
(see [`build_inputs`][sparsediff.method.inputs.build_inputs]): ``base`` is the
mean of the neighbouring steps' own guesses. ``w = 1`` is the space-time guess
of earlier models, which follows the neighbours deep inside a gap; ``w = 0`` is
the spatial guess of the step alone. Which is better depends on the data: on a
record whose steps move together (daily or monthly SST) the neighbours know
the gap; on one whose steps are nearly independent (annual anomalies, shuffled
scenes) they mislead it.

The guesses in use (Laplace relaxation, normalized convolution) are linear
in the shown values for a fixed mask, so the guess is linear in ``w``:
``g(w) = g(0) + w * (g(1) - g(0))``. The ``w`` in [0, 1] that fits hidden
points best is then one least-squares step, ``w = sum(d * r) / sum(d * d)``
with ``d = g(1) - g(0)`` and ``r = truth - g(0)``, over points hidden from
the windows of the validation part (the part nearest the data a model will
fill; the training part when there is none) with the training's own hide
patterns. On A1B, whose held-out decades are warmer than any training year,
the training years asked for ``w = 0.51`` and the validation years for
``0.81``; on the held-out years ``w = 1`` fits best (guess RMSE 0.276 K at 1,
0.280 at 0.8, 0.315 at 0.5): the neighbours share a shift that the years
before it never showed. The neighbouring steps
are taken as they are (their own gaps, none hidden on top), as a fill sees
them. Nothing here is learned by a network: the fit is cheap and runs before
the first stage, so every network trains on the guess it will be filled with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from sparsediff.method.base import HideSpec, Method, TrainBatch, TrainSettings
from sparsediff.method.first_guess import get_first_guess
from sparsediff.method.inputs import guess_of
from sparsediff.rng import Stream

__all__ = ["ContextWeightFit", "fit_context_weight"]


@dataclass(frozen=True)
class ContextWeightFit:
    """The fitted weight of the neighbouring steps and what it was fitted on.

    Attributes
    ----------
    weight
        ``w`` in [0, 1].
    points
        Hidden points it was fitted on.
    rmse_spatial, rmse_space_time, rmse_fitted
        RMSE (normalized units) of the guess at those points with ``w`` = 0,
        1 and the fitted value.
    """

    weight: float
    points: int
    rmse_spatial: float
    rmse_space_time: float
    rmse_fitted: float

    def describe(self, where: str = "training") -> str:
        """One line for logs and the model record (``where``: the part fitted on)."""
        return (
            f"context weight {self.weight:.3f} fitted on {self.points} hidden {where} points "
            f"(guess RMSE, normalized: spatial {self.rmse_spatial:.4f}, space-time "
            f"{self.rmse_space_time:.4f}, fitted {self.rmse_fitted:.4f})"
        )


@torch.no_grad()
def fit_context_weight(
    method: Method,
    batches: Iterable[TrainBatch],
    settings: TrainSettings,
    *,
    hide: HideSpec | None = None,
    device: torch.device | str = "cpu",
) -> ContextWeightFit | None:
    """Fit the weight of the neighbouring steps in the space-time first guess.

    Parameters
    ----------
    method
        The method whose spec has context frames and a space-time guess
        (its networks are not used).
    batches
        Training crops; every hidden point is keyed by the crop's position.
    settings
        Training settings (the seed; ``settings.hide`` when ``hide`` is None).
    hide
        What to hide in each crop's own step.
    device
        Where to compute (every rank of a distributed run holds the whole part
        and fits the same weight).

    Returns
    -------
    ContextWeightFit or None
        ``None`` when the spec has no space-time guess or no point was hidden.
    """
    from sparsediff.method import build_method

    spec = method.spec
    if not (
        spec.n_context and spec.guess_context and get_first_guess(spec.first_guess).follows_context
    ):
        return None
    spatial = build_method(spec.model_copy(update={"context_weight": 0.0}), method.nets)
    space_time = build_method(spec.model_copy(update={"context_weight": 1.0}), method.nets)
    stats = torch.zeros(5, dtype=torch.float64)  # sums of d*r, d*d, r*r, (y-g1)^2; points
    for batch in batches:
        b = batch.to(device)
        shown = hide or settings.hide
        stream = Stream.CONTEXT_WEIGHT
        w0 = spatial.windows(b, shown, settings, stream=stream, stage_key=0, hide_context=False)
        w1 = space_time.windows(b, shown, settings, stream=stream, stage_key=0, hide_context=False)
        m = w0.scored
        if not bool(m.any()):
            continue
        g0 = guess_of(w0.inputs, spec.n_vars)[m].double()
        g1 = guess_of(w1.inputs, spec.n_vars)[m].double()
        y = w0.values.float()[m].double()
        d, r = g1 - g0, y - g0
        sums = [(d * r).sum(), (d * d).sum(), (r * r).sum(), ((y - g1) ** 2).sum()]
        stats += torch.tensor([*(float(s) for s in sums), float(m.sum())], dtype=torch.float64)
    num, den, sq0, sq1, n = (float(v) for v in stats[:5])
    if n == 0:
        return None
    weight = min(max(num / den, 0.0), 1.0) if den > 0 else 1.0
    sqw = sq0 - 2 * weight * num + weight**2 * den  # sum (r - w d)^2
    return ContextWeightFit(
        weight=weight,
        points=int(n),
        rmse_spatial=(sq0 / n) ** 0.5,
        rmse_space_time=(sq1 / n) ** 0.5,
        rmse_fitted=(max(sqw, 0.0) / n) ** 0.5,
    )
