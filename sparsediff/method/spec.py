"""The typed description of a trained model: what it fills and how (saved in ``config.json``).

[`ModelSpec`][ModelSpec] replaces the untyped ``config`` dict of format version 1.
It holds everything [`sparsediff.fill`][sparsediff.filling.fill.fill] needs to use
a model: the variables and dims, the window, the method and its settings, the
data facts that compatibility checks compare against, and the calibration.
It also holds a few facts of the training, for the record and for further
training of the model (adaptation, calibration on the input): ``cond_dropout``
and ``pixel_loss`` (training settings), the ``sizes`` of the training data,
the window counts of its splits, its ``log`` variables and ``climatology_dim``,
and how the calibration was obtained. The rest of how the model was trained
(the whole training config, versions, times) is in ``provenance.json``.
Unknown keys and wrong types are errors, so a damaged or foreign
``config.json`` cannot load as a plausible model.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from sparsediff.method.first_guess import check_first_guess

__all__ = ["OLD_MODE_KEY", "ModelSpec", "SpreadCovariate"]

SpreadCovariate = Literal["distance", "local_distance"]
"""What the spread factors of a latent model are binned by.

See [`sparsediff.method.inputs.spread_covariate`][sparsediff.method.inputs.spread_covariate].
"""

OLD_MODE_KEY = "kind"
"""The name ``mode`` had in the specs of models saved before it was renamed.

The concept is called ``mode`` everywhere (the training config's ``mode:``,
[`Method.mode`][sparsediff.method.base.Method.mode]); a ``config.json`` written
before says ``"kind"``. It is read as ``mode`` (setting both is an error);
[`Model.save`][sparsediff.model.Model.save] writes ``mode``. Code reading
``spec.kind`` still gets the mode, with a `DeprecationWarning`.
"""


class ModelSpec(BaseModel):
    """What a trained model fills and how (typed, validated, JSON round-trip).

    Attributes
    ----------
    mode
        The method of the model, a key of
        [`METHODS`][sparsediff.method.METHODS]: ``"latent"`` (asymmetric
        autoencoder + latent diffusion prior) or ``"pixel"`` (the diffusion
        prior on pixels, a baseline). Read from ``"kind"`` in models saved
        before (`OLD_MODE_KEY`).
    variables
        Variables filled, in channel order.
    dims
        The 2 or 3 spatial dims of the windows.
    window
        Window size per spatial dim.
    first_guess
        The classical estimate the model departs from: a name of
        [`FIRST_GUESSES`][sparsediff.method.first_guess.FIRST_GUESSES] (a model
        whose guess is not registered in this process does not load).
    guess_context
        With context frames: a space-time first guess that follows the
        neighbouring steps deep inside large gaps.
    context_weight
        How much the space-time guess leans on the neighbouring steps: 1 (the
        default, and every model before this field) follows them fully, 0
        is the spatial guess of the step alone; fitted on the training data
        with ``guess_context_weight: auto``
        ([`sparsediff.method.context_weight`][sparsediff.method.context_weight]).
    context_dim, context_offsets
        Neighbouring steps along this (non-spatial) dim given as input
        channels (e.g. ``time`` at ``[-1, 1]``).
    eof_prior
        Per variable, ``σ²/λ`` of each of the EOFs the model carries
        (``Model.eofs``, ``data.eofs``): the first guess then departs from an
        EOF background interpolated per frame
        ([`sparsediff.method.eof_guess`][sparsediff.method.eof_guess]); empty: none.
    latent_scale
        Latents of the prior are encoder means times this.
    departure_scale
        The learned departure from the first guess is multiplied by this
        (in [0, 1], fitted on the validation split by least squares): where
        the networks' departures do not carry over to data they never saw,
        the fill shrinks back to the first guess instead of doing worse.
    spread_scale
        Ensemble spread calibration: members are ``regression + s * (sample -
        regression)``, with ``s`` this one factor fitted on a validation
        split (1 = none) ...
    spread_bins, spread_scales
        ... or, when these are set, ``s = spread_scales[i]`` for points whose
        ``spread_covariate`` lies in ``[spread_bins[i], spread_bins[i + 1])``
        (the last bin is open): the error grows deep inside large gaps faster
        than the raw spread does.
    spread_covariate
        What the bins are over: ``"distance"`` to the nearest shown point
        (grid steps; models calibrated before this option), or
        ``"local_distance"``, its mean over the point's 3^d neighbourhood,
        which also tells a lone hidden point from the edge of a large gap
        ([`sparsediff.method.inputs.local_distance_of`][sparsediff.method.inputs.local_distance_of]).
    spread_variability_sigma, spread_variability_power, spread_variability_ref
        The spread factor is also multiplied by ``(v / ref) ** power``, ``v``
        the local variability of the shown data (Gaussian width ``sigma``
        grid steps), where the fitted power is above 0
        ([`sparsediff.method.variability`][sparsediff.method.variability]); 0 (every
        model before this option) leaves the factors as they are.
    spread_steps
        The sampler steps the spread factors were fitted with, and the steps a
        fill takes by default (16 for every model calibrated before the field).
    calibration
        How ``departure_scale`` and the spread factors were obtained, or why
        there are none (for the record).
    cond_dropout
        Condition dropout of the prior (0 disables classifier-free guidance);
        for the record: training and adaptation read the training config's.
    pixel_loss
        Pixel mode only: the loss the prior was trained with (the pixel
        method's objective reads it, when the model is trained or adapted).
    units, grid_spacing
        Facts of the training data that fills are checked against.
    sizes
        The dim sizes of the training data (for the record; the trained
        region of a model saved without one is derived from them).
    invalid_along, invalid_below
        The training rules for invalid points (a fill's default rule).
    log
        Variables learned in log space (for the record: the normalization
        stats carry the transform a fill applies).
    climatology_dim
        The dim of the per-point mean the model fills anomalies from (for the
        record: a fill uses the climatology saved with the model).
    n_train_windows, n_validation_windows, n_holdout_windows
        Window counts of the splits (for the record).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: str
    variables: list[str] = Field(min_length=1)
    dims: list[str] = Field(min_length=2, max_length=3)
    window: list[StrictInt] = Field(min_length=2, max_length=3)
    first_guess: str = "laplace"
    guess_context: bool = True
    context_weight: StrictFloat = Field(1.0, ge=0.0, le=1.0)
    context_dim: str | None = None
    context_offsets: list[StrictInt] = Field(default_factory=list)
    eof_prior: dict[str, list[float]] = Field(default_factory=dict)
    latent_scale: StrictFloat = 1.0
    departure_scale: StrictFloat = 1.0
    spread_scale: StrictFloat = 1.0
    spread_bins: list[float] = Field(default_factory=list)
    spread_scales: list[StrictFloat] = Field(default_factory=list)
    spread_covariate: SpreadCovariate = "distance"
    spread_variability_sigma: StrictFloat = Field(0.0, ge=0.0)
    spread_variability_power: StrictFloat = Field(0.0, ge=0.0)
    spread_variability_ref: StrictFloat = Field(1.0, gt=0.0)
    spread_steps: StrictInt = Field(16, ge=1)
    calibration: str = "none"
    cond_dropout: StrictFloat = 0.0
    pixel_loss: Literal["masked", "zero_filled"] = "masked"
    units: dict[str, str] = Field(default_factory=dict)
    grid_spacing: dict[str, float | None] = Field(default_factory=dict)
    sizes: dict[str, StrictInt] = Field(default_factory=dict)
    invalid_along: str | None = None
    invalid_below: float | None = None
    log: list[str] = Field(default_factory=list)
    climatology_dim: str | None = None
    n_train_windows: StrictInt = 0
    n_validation_windows: StrictInt = 0
    n_holdout_windows: StrictInt = 0

    @model_validator(mode="before")
    @classmethod
    def _old_mode_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and OLD_MODE_KEY in data:
            if "mode" in data:
                raise ValueError(f"both 'mode' and {OLD_MODE_KEY!r} (its old name) are set")
            data = {("mode" if k == OLD_MODE_KEY else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _variability_width(self) -> ModelSpec:
        if self.spread_variability_power > 0 and not self.spread_variability_sigma > 0:
            raise ValueError("spread_variability_power > 0 needs spread_variability_sigma > 0")
        return self

    @field_validator("mode")
    @classmethod
    def _registered_mode(cls, mode: str) -> str:
        from sparsediff.method import registered_mode  # the registry imports this module

        return registered_mode(mode)

    @field_validator("first_guess")
    @classmethod
    def _registered_guess(cls, name: str) -> str:
        return check_first_guess(name)

    @property
    def kind(self) -> str:
        """The old name of ``mode`` (deprecated: read ``mode``).

        Kept, read-only, so that code written before the rename keeps working;
        it warns with a `DeprecationWarning`.
        """
        warnings.warn("ModelSpec.kind is now ModelSpec.mode", DeprecationWarning, stacklevel=2)
        return self.mode

    @property
    def n_vars(self) -> int:
        """Number of variables (channels)."""
        return len(self.variables)

    @property
    def n_context(self) -> int:
        """Number of context frames."""
        return len(self.context_offsets) if self.context_dim else 0
