"""Fit a model to the data it is about to fill: adaptation and input calibration.

[`fit_to_input`][fit_to_input] is what ``sparsediff.fill(..., adapt=..., calibrate=...)``
and ``sparsediff fill --adapt-steps N --calibrate input`` run before the fill:
it classifies the points of the input as the fill will (the same invalid
rule, [`invalid_states`][sparsediff.data.invalid_policy.invalid_states]), then

1. adapts the model ([`adapt`][sparsediff.training.adapt.adapt]) when asked,
2. refits its calibration on the input
   ([`calibrate_on_input`][sparsediff.training.input_calibration.calibrate_on_input])
   with ``calibrate="input"``.

Only observed points of the input are used; a point that is a gap in the
input (an evaluation's held-out points among them) is never seen.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import xarray as xr

from sparsediff.data import masks
from sparsediff.data.invalid_policy import invalid_states
from sparsediff.data.order import sort_along
from sparsediff.data.selection import as_dataset
from sparsediff.devices import resolve_device
from sparsediff.errors import ConfigError
from sparsediff.filling.invalid import model_rule
from sparsediff.model import Model, as_model

if TYPE_CHECKING:
    from sparsediff.training.input_calibration import InputFit

__all__ = [
    "CALIBRATIONS",
    "FITTED_TO_INPUT",
    "check_calibrate",
    "check_fit_options",
    "fit_to_input",
]

#: The model's provenance records of a fit to the input, copied into a fill's record.
FITTED_TO_INPUT = ("adaptation", "input_calibration")

#: Where the spread calibration comes from: ``"validation"``, the model's own
#: (fitted on its validation part when it was trained); ``"input"``, a refit on the
#: data being filled; ``"auto"``, the model's own for gridded data and a refit for
#: a fill from point observations (a model calibrated on gridded gaps is
#: under-dispersed between sparse points; see
#: [`sparsediff.filling.points`][sparsediff.filling.points]).
CALIBRATIONS = ("auto", "validation", "input")


def check_calibrate(calibrate: Any) -> str:
    """``calibrate`` if it is one of `CALIBRATIONS`, else a one-line ConfigError."""
    if calibrate not in CALIBRATIONS:
        raise ConfigError(f"calibrate must be one of {', '.join(CALIBRATIONS)}, got {calibrate!r}")
    return str(calibrate)


def check_fit_options(adapt: Any, calibrate: Any, seed: int = 0) -> bool:
    """Whether ``adapt`` / ``calibrate`` ask for any fitting; a one-line ConfigError if bad.

    Cheap: a fill checks these before it reads any data.
    """
    from sparsediff.training.adapt import as_adapt_options

    adapting = as_adapt_options(adapt, seed) is not None
    recalibrating = check_calibrate(calibrate) == "input"  # checked even when adapting
    return adapting or recalibrating


def fit_to_input(
    ds: xr.Dataset | xr.DataArray,
    model: Model | str,
    *,
    adapt: Any = None,
    calibrate: str = "auto",
    seed: int = 0,
    device: str = "auto",
    invalid: masks.InvalidSpec = None,
    invalid_below: float | str | None = "model",
    invalid_along: Hashable | Sequence[Hashable] | None = "model",
    input_fit: InputFit | None = None,
    steps: int | None = None,
    progress: bool | None = None,
) -> Model:
    """The model adapted to and/or calibrated on ``ds`` (``model`` itself when neither is asked).

    Parameters
    ----------
    ds
        The data to be filled.
    model
        A trained latent model or its path.
    adapt
        ``None``/``0``: no adaptation; an int: that many steps; or
        [`AdaptOptions`][sparsediff.training.adapt.AdaptOptions] (or a dict of its fields).
    calibrate
        ``"validation"`` or ``"auto"`` (gridded data): keep the model's calibration;
        ``"input"``: refit it on ``ds``.
    seed
        Key of the adaptation (when ``adapt`` is an int) and of the calibration.
    device
        Where to train and sample.
    invalid, invalid_below, invalid_along
        As for [`sparsediff.fill`][sparsediff.filling.fill.fill]: which points are invalid.
    input_fit
        How ``calibrate="input"`` fits
        ([`InputFit`][sparsediff.training.input_calibration.InputFit]; ``None``: the
        gridded defaults; a fill from points thins its observations).
    steps
        Sampler steps of the input calibration: the fill's (``None``: the model's).
    progress
        Show a bar over the calibration's windows (``None``: when interactive).

    Returns
    -------
    Model
        The fitted model (the input model unchanged when nothing is asked).

    Raises
    ------
    ConfigError
        A bad ``adapt`` or ``calibrate``, a model that cannot be adapted or
        calibrated (not latent, no training config), an input without an
        eligible window.
    """
    from sparsediff.training.adapt import adapt as run_adapt
    from sparsediff.training.adapt import as_adapt_options

    calibrate = check_calibrate(calibrate)
    options = as_adapt_options(adapt, seed)
    model = as_model(model)
    if options is None and calibrate != "input":
        return model
    ds = as_dataset(ds, name=model.variables[0] if len(model.variables) == 1 else None)
    # the context frames are taken by position: fit on the steps in coordinate order
    ds, _ = sort_along(ds, model.spec.context_dim if model.spec.n_context else None)
    dev = resolve_device(device)
    variables = model.variables
    _, states = invalid_states(
        ds,
        variables,
        invalid=invalid,
        invalid_below=invalid_below,
        invalid_along=invalid_along,
        recorded=model_rule(model),
    )
    states = states[variables].compute()
    data = ds[variables]
    if options is not None:
        model = run_adapt(model, data, states, options, device=dev)
    if calibrate == "input":
        from sparsediff.training.input_calibration import calibrate_on_input

        model = calibrate_on_input(
            model,
            data,
            states,
            seed=seed,
            fit=input_fit,
            steps=steps,
            device=dev,
            progress=progress,
        )
    return model
