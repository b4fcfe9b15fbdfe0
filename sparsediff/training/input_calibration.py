"""Calibration on the data being filled (``calibrate="input"``).

The trainer fits the departure scale and the spread factors per distance bin
on its validation part ([`sparsediff.method.calibration`][sparsediff.method.calibration]). A
calibration fitted on one part of the data need not carry over to another
(issue 15: a 3D volume over-dispersed at 1.78, MNI152 under-dispersed at
0.71). [`calibrate_on_input`][calibrate_on_input] runs the same fit, the
method's own ([`Method.calibrate`][sparsediff.method.base.Method.calibrate]; for the
latent method [`fit_calibration`][sparsediff.method.calibration.fit_calibration]), on
windows of the input itself: it hides observed points of the input (the gap families and
shares of the training's ``calibration.hide``), fills them and compares.
Only observed points of the input are hidden and scored, so the held-out
points of an evaluation (removed from the input before) play no part.

The windows are a keyed random sample of all eligible windows of the input
(``(seed, INPUT_WINDOWS)``), their hidden points keyed by ``(seed,
CALIBRATION, window id)``: the result is deterministic.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
import xarray as xr

from sparsediff.method.base import HideSpec, TrainBatch
from sparsediff.method.calibration import SpreadFit
from sparsediff.model import Model
from sparsediff.rng import Stream, seed_for
from sparsediff.training.adapt import input_crops, training_config
from sparsediff.training.data import fixed_batches

__all__ = ["INPUT_WINDOWS", "InputFit", "calibrate_on_input"]

#: Windows of the input the calibration uses (a keyed random sample).
INPUT_WINDOWS = 128


@dataclass(frozen=True)
class InputFit:
    """What ``calibrate="input"`` hides, in which windows, and what the hidden values are.

    The defaults are the gridded fill's: the training's gap families and
    window rule, exact values. A fill from points
    ([`sparsediff.filling.points`][sparsediff.filling.points]) thins its observations instead.

    Attributes
    ----------
    hide
        What to hide in the windows (``None``: the training's ``calibration.hide``).
    min_observed
        Least observed share of a window used (``None``: the training's
        ``window.min_observed``).
    noise_variance
        Variance of the noise in the input's values (physical units squared, a
        one-variable model): taken off every squared error of the fit, so that
        the spread is the field's (0: exact values).
    thin_bins
        The rule for distance bins with few hidden points
        ([`SpreadFit`][sparsediff.method.calibration.SpreadFit]).
    keep
        The ``"real"`` pattern's mask of every window at its own step (the
        input's dims, ``False`` = hide where observed), instead of another
        step's gaps: e.g. the cells left when whole platforms are hidden.
    """

    hide: HideSpec | None = None
    min_observed: float | None = None
    noise_variance: float = 0.0
    thin_bins: Literal["extrapolate", "pool"] = "extrapolate"
    keep: xr.DataArray | None = None


def calibrate_on_input(
    model: Model,
    ds: xr.Dataset,
    states: xr.Dataset,
    *,
    seed: int = 0,
    max_windows: int = INPUT_WINDOWS,
    fit: InputFit | None = None,
    steps: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> Model:
    """Refit the departure scale and spread factors of a latent model on ``ds``.

    Parameters
    ----------
    model
        A trained (possibly adapted) latent model; left unchanged.
    ds
        The data to be filled (physical units).
    states
        Point states of ``ds``; only observed points are hidden and scored.
    seed
        Key of the window sample and the hidden points (the fill's seed).
    max_windows
        How many windows of the input to use.
    fit
        What to hide, in which windows, and the noise of the values
        ([`InputFit`][InputFit]; ``None``: the training's gaps, exact values).
    steps
        Sampler steps of the fit (the fill's; ``None``: those the model's spread was
        fitted at). The refitted model records them as its ``spread_steps``.
    device
        Where to run.
    progress
        Show a bar over the windows of each fit (``None``: when interactive).

    Returns
    -------
    Model
        A new model with the refitted calibration (``spec.calibration`` says
        it was fitted on the input); ``provenance["input_calibration"]``
        records the windows, members, steps and wall time.

    Raises
    ------
    ConfigError
        A model that cannot be calibrated
        ([`Method.uncalibrated`][sparsediff.method.base.Method.uncalibrated]: a pixel
        model, a latent one without its prior) or without a training config; an
        input without an eligible window.
    """
    from sparsediff.errors import ConfigError
    from sparsediff.training.from_config import hide_spec, settings_of

    method = model.method
    why = method.uncalibrated()
    if why is not None:
        raise ConfigError(f'calibrate="input" needs a model that can be calibrated ({why})')
    cfg = training_config(model)
    c = cfg.calibration
    fit = fit or InputFit()
    at_steps = model.spec.spread_steps if steps is None else steps
    settings = dataclasses.replace(settings_of(cfg), seed=seed)
    if fit.keep is not None and (fit.hide is None or "real" not in fit.hide.patterns):
        raise ConfigError('InputFit.keep is read by the "real" hide pattern only: add it to hide')
    crops = input_crops(
        model,
        ds,
        states,
        seed=seed_for(seed, Stream.INPUT_WINDOWS),
        min_observed=fit.min_observed,
        keep=fit.keep,
    )
    t0 = time.perf_counter()
    batches = fixed_batches(crops, max_windows=max_windows, batch_size=cfg.optim.batch_size)
    used = fit.hide or hide_spec(c.hide)
    noise = 0.0
    if fit.noise_variance:
        (var,) = model.variables
        noise = fit.noise_variance / model.stats[var].std ** 2
    updates, described = method.calibrate(
        batches,
        settings,
        hide=used,
        members=c.members,
        steps=at_steps,
        device=device,
        where="input",
        variability=c.variability,
        spread_fit=SpreadFit(noise, fit.thin_bins),
        progress=progress,
    )
    spec = model.spec.model_copy(update={**updates, "calibration": described})
    record = _record(batches, c.members, at_steps, seed, used, fit, t0, described)
    provenance = {**model.provenance, "input_calibration": record}
    return dataclasses.replace(model, spec=spec, nets=dict(model.nets), provenance=provenance)


def _record(
    batches: list[TrainBatch],
    members: int,
    steps: int,
    seed: int,
    used: HideSpec,
    fit: InputFit,
    t0: float,
    described: str,
) -> dict[str, Any]:
    """What an input calibration did, for the model's ``provenance["input_calibration"]``."""
    return {
        "windows": sum(len(b.positions) for b in batches),
        "members": members,
        "steps": steps,
        "seed": seed,
        "hide": {"rate": list(used.rate), "patterns": list(used.patterns)},
        "noise_variance": fit.noise_variance,
        "thin_bins": fit.thin_bins,
        "own_mask": fit.keep is not None,
        "seconds": round(time.perf_counter() - t0, 3),
        "calibration": described,
    }
