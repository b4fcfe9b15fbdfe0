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
the validation part (the part nearest the data a model will fill; the
training part when there is none) with the training's own hide patterns.

The fit takes **whole fields**, as a fill computes its guess, not the
training crops (a window and its halo): on OSTIA the crops asked for
``w = 0.70`` and whole fields for ``1.0``, and on the held-out months the
guess at 0.70 was 44 % worse inside cloud-shaped gaps (RMSE 0.489 against
0.339 K) — in a crop the far inside of a large gap is cut away, so near
points, where the step's own data know more than its neighbours, decide
``w``. On A1B the crops asked for 0.81 and whole fields for 1.0 (the
held-out decades share a warming with their neighbours: 1 fits them best);
on A1B with its years shuffled (neighbours unrelated), 0.08 and 0.25, both
far from the 1 that costs 25 % there. Each field is hidden ``draws`` times
(each draw keyed by the step and the draw). The neighbouring steps are taken
as they are (their own gaps, none hidden on top), as a fill sees them.
Nothing here is learned by a network: the fit is cheap and runs before the
first stage, so every network trains on the guess it will be filled with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from sparsediff.method.base import HideSpec, Method, TrainBatch, TrainSettings
from sparsediff.method.inputs import guess_of
from sparsediff.progress import bar as progress_bar
from sparsediff.rng import Stream

__all__ = ["DRAWS", "ContextWeightFit", "fit_context_weight"]

DRAWS = 8
"""Hide patterns drawn per field (or crop) by default."""


@dataclass(frozen=True)
class ContextWeightFit:
    """The fitted weight of the neighbouring steps and what it was fitted on.

    Attributes
    ----------
    weight
        ``w`` in [0, 1].
    points
        Hidden points it was fitted on.
    sums
        ``sum(d * r)``, ``sum(d * d)`` and ``sum(r * r)`` over those points (module
        notes), from which [`rmse_at`][rmse_at] gives the RMSE at any ``w``.
    """

    weight: float
    points: int
    sums: tuple[float, float, float]

    def rmse_at(self, w: float) -> float:
        """RMSE (normalized units) of the guess at the hidden points with context weight ``w``."""
        num, den, sq0 = self.sums
        return (max(sq0 - 2 * w * num + w**2 * den, 0.0) / max(self.points, 1)) ** 0.5

    @property
    def rmse_spatial(self) -> float:
        """RMSE of the spatial guess (``w`` = 0)."""
        return self.rmse_at(0.0)

    @property
    def rmse_space_time(self) -> float:
        """RMSE of the space-time guess (``w`` = 1)."""
        return self.rmse_at(1.0)

    @property
    def rmse_fitted(self) -> float:
        """RMSE of the guess at the fitted weight."""
        return self.rmse_at(self.weight)

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
    batches: Sequence[TrainBatch],
    settings: TrainSettings,
    *,
    hide: HideSpec | None = None,
    device: torch.device | str = "cpu",
    draws: int = DRAWS,
    progress: bool | None = False,
) -> ContextWeightFit | None:
    """Fit the weight of the neighbouring steps in the space-time first guess.

    Also the measure of a first guess's error at hidden points: for a guess
    that follows no context frames (no ``context_dim``, ``guess_context:
    false`` or a guess without a space-time form) ``g(0) = g(1)``, every RMSE
    of the result is that guess's, and the weight (1) means nothing.

    Parameters
    ----------
    method
        The method whose first guess is measured (its networks are not used).
    batches
        Crops with their context frames, e.g. whole fields
        ([`CropDataset.whole_fields`][sparsediff.training.crops.CropDataset.whole_fields]);
        every hidden point is keyed by the crop's position. The whole crop is
        scored (its halo too).
    settings
        Training settings (the seed; ``settings.hide`` when ``hide`` is None).
    hide
        What to hide in each crop's own step.
    device
        Where to compute (every rank of a distributed run holds the whole part
        and fits the same weight).
    draws
        Hide patterns drawn per crop (keyed by the draw and the crop's position).
    progress
        Show a progress bar over the draws and batches.

    Returns
    -------
    ContextWeightFit or None
        ``None`` when no point was hidden.
    """
    stats = torch.zeros(4, dtype=torch.float64)  # sums of d*r, d*d, r*r; points
    rounds = [(draw, batch) for draw in range(draws) for batch in batches]
    pairs: dict[tuple[int, ...], list[Method]] = {}  # the two methods per crop shape
    for draw, batch in progress_bar(
        rounds, progress=progress, desc="first guess: context weight", leave=False
    ):
        stats += _sums(pairs, method, batch.to(device), hide or settings.hide, settings, draw)
    num, den, sq0, n = (float(v) for v in stats)
    if n == 0:
        return None
    weight = min(max(num / den, 0.0), 1.0) if den > 0 else 1.0
    return ContextWeightFit(weight=weight, points=int(n), sums=(num, den, sq0))


def _pair(method: Method, whole: tuple[int, ...]) -> list[Method]:
    """The method with context weight 0 and 1 and its window set to ``whole``."""
    from sparsediff.method import build_method

    return [
        build_method(
            method.spec.model_copy(update={"context_weight": w, "window": list(whole)}),
            method.nets,
        )
        for w in (0.0, 1.0)
    ]


def _sums(
    pairs: dict[tuple[int, ...], list[Method]],
    method: Method,
    batch: TrainBatch,
    hide: HideSpec,
    settings: TrainSettings,
    draw: int,
) -> torch.Tensor:
    """``sum(d*r), sum(d*d), sum(r*r)`` and the points of one batch and draw.

    The whole crop is scored: the methods' window is set to the crop, so
    that [`Method.windows`][sparsediff.method.base.Method.windows] cuts nothing.
    """
    spec = method.spec
    whole = [int(c) for c in batch.values.shape[2:]]
    batch = replace(batch, halo=(0,) * len(whole))
    if tuple(whole) not in pairs:
        pairs[tuple(whole)] = _pair(method, tuple(whole))
    w0, w1 = (
        m.windows(
            batch, hide, settings, stream=Stream.CONTEXT_WEIGHT, stage_key=draw, hide_context=False
        )
        for m in pairs[tuple(whole)]
    )
    m = w0.scored
    if not bool(m.any()):
        return torch.zeros(4, dtype=torch.float64)
    g0 = guess_of(w0.inputs, spec.n_vars)[m].double()
    g1 = guess_of(w1.inputs, spec.n_vars)[m].double()
    y = w0.values.float()[m].double()
    d, r = g1 - g0, y - g0
    sums = [(d * r).sum(), (d * d).sum(), (r * r).sum()]
    return torch.tensor([*(float(s) for s in sums), float(m.sum())], dtype=torch.float64)
