"""Training configuration: a YAML file validated by pydantic.

Every key is documented here with its default; an unknown or misspelled key is
an error that lists the valid keys of its section. Load with
[`load_config`][load_config] (YAML through ``yaml.safe_load`` only), or build
[`TrainConfig`][TrainConfig] directly from a dict.
"""

from __future__ import annotations

import os
import warnings
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from sparsediff.errors import ConfigError, SparsediffWarning
from sparsediff.method import DEFAULT_MODE, METHODS, registered_mode
from sparsediff.method.first_guess import check_first_guess
from sparsediff.training.config_io import format_validation_error, read_yaml_mapping

__all__ = [
    "READ_BY_EVERY_MODE",
    "STAGE_SECTIONS",
    "AutoencoderConfig",
    "CalibrationConfig",
    "DataConfig",
    "HideConfig",
    "OptimConfig",
    "PriorConfig",
    "RunConfig",
    "TrainConfig",
    "WindowConfig",
    "check_unread",
    "format_validation_error",
    "load_config",
    "read_yaml_mapping",
    "unread_keys",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the training data comes from and which part of it to use."""

    source: str | list[str] | None = Field(
        None,
        description=(
            "Path(s) to NetCDF/Zarr/NIfTI input, or a built-in sample: 'ostia' "
            "(iris-sample-data SST), 'mni152' (nilearn template). A Dataset passed to "
            "sparsediff.train replaces it."
        ),
    )
    variables: list[str] = Field(..., min_length=1, description="Variables to learn and fill.")
    dims: list[str] = Field(
        ..., min_length=2, max_length=3, description="2 or 3 spatial dims of the windows."
    )
    invalid: str | None = Field(
        None,
        description="Name of a variable (or path of a file) marking invalid points (True=invalid).",
    )
    invalid_along: str | None = Field(
        None, description="Points NaN at every step of this dim are invalid (e.g. 'time' for land)."
    )
    invalid_below: float | None = Field(
        None,
        description="Points whose value is <= this are invalid (e.g. 0 for air around a head).",
    )
    log: list[str] = Field(default_factory=list, description="Variables to log-transform.")
    climatology_dim: str | None = Field(
        None,
        description=(
            "Learn and fill anomalies from the per-point mean over this dim (e.g. 'time'): "
            "the climatology of the training part, saved with the model. Ties the model "
            "to the training grid."
        ),
    )
    climatology: Literal["auto", "mean", "seasonal"] = Field(
        "auto",
        description=(
            "The climatology along climatology_dim: 'mean' per point, 'seasonal' (the mean "
            "plus annual harmonics; dates over 2+ years), or 'auto': seasonal when the dates "
            "allow it and it fits the validation part better than the mean."
        ),
    )
    eofs: Annotated[StrictInt, Field(ge=0, le=64)] | Literal["auto"] = Field(
        0,
        description=(
            "With climatology_dim: the first guess departs from a background of this many "
            "EOFs of the training anomalies, their coefficients interpolated from each "
            "field's shown points (0: none). 'auto': 0 or one of EOF_CANDIDATES, whichever "
            "first guess is best at hidden points of the validation fields "
            "(sparsediff.training.climatology_choice.choose_eofs). See "
            "sparsediff.method.eof_guess."
        ),
    )
    isel: dict[str, list[int]] = Field(
        default_factory=dict,
        description="Index ranges [start, stop] per dim, taken first (crops, subsets).",
    )
    holdout_dim: str | None = Field(
        None, description="Dim along which the last `holdout_fraction` is held out for evaluation."
    )
    holdout_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="Share held out along holdout_dim."
    )
    validation_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description=(
            "Share of the rest (along holdout_dim, else the first non-spatial dim) kept out of "
            "training for the in-training evaluation and the spread calibration; at least one "
            "window thick along a spatial dim. 0: no validation part (spread not calibrated)."
        ),
    )
    context_dim: str | None = Field(
        None,
        description=(
            "Non-spatial dim whose neighbouring steps are input channels (e.g. 'time'), "
            "corrupted in training like the gaps they have at fill time."
        ),
    )
    context_offsets: list[StrictInt] = Field(
        default_factory=lambda: [-1, 1],
        description="Steps along context_dim given as context (default: the previous and next).",
    )
    extra_missing: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Extra MCAR missingness punched into the training data (experiments).",
    )


class WindowConfig(_Section):
    """Training windows (patches)."""

    size: list[int] = Field(
        ..., description="Window size per spatial dim (divisible by the AE factor)."
    )
    stride: list[int] | None = Field(None, description="Window stride per dim (default: size).")
    min_observed: float = Field(
        0.2, ge=0.0, le=1.0, description="Skip windows with a smaller observed fraction."
    )
    halo: list[int] | None = Field(
        None,
        description=(
            "Points read around each training window per dim (default: the window size) so the "
            "first guess sees beyond it, as it sees the whole field at fill time."
        ),
    )

    @field_validator("size", "stride")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(s <= 0 for s in v):
            raise ValueError("sizes must be positive")
        return v

    @field_validator("halo")
    @classmethod
    def _non_negative(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(s < 0 for s in v):
            raise ValueError("halo sizes must be >= 0")
        return v


def _default_hide_patterns() -> list[Literal["mcar", "boxes", "stripes", "swath", "cloud", "real"]]:
    # a typed function, not a lambda: a lambda's list literal is inferred as list[str]
    return ["mcar", "boxes", "stripes", "cloud", "real"]


class HideConfig(_Section):
    """Hide-and-reconstruct: extra points hidden from the encoder but still scored."""

    rate: tuple[float, float] = Field((0.1, 0.6), description="Range of the hidden share.")
    patterns: list[Literal["mcar", "boxes", "stripes", "swath", "cloud", "real"]] = Field(
        default_factory=_default_hide_patterns,
        description=(
            "Gap shapes to mix; 'real' copies the gaps of the same place at another step "
            "(skipped when the data have none there)."
        ),
    )


_WIDTH_MAX = 4096


class AutoencoderConfig(_Section):
    """Stage 1: the asymmetric completion autoencoder (latent mode)."""

    encoder_widths: list[StrictInt] = Field(
        [16, 32, 32], description="Encoder channels per level; latent factor = 2**(levels-1)."
    )
    decoder_widths: list[StrictInt] = Field(
        [32, 64], description="Channels per level of the full-resolution decoder U-Net."
    )
    latent_channels: StrictInt = Field(4, ge=1, le=256, description="Latent channels.")
    blocks_per_level: StrictInt = Field(1, ge=1, le=8, description="Residual blocks per level.")
    attention: StrictBool = Field(False, description="Self-attention at the coarsest level.")
    checkpointing: StrictBool = Field(
        False, description="Activation checkpointing (saves 3D memory)."
    )
    kl_weight: float = Field(
        1e-5,
        ge=0.0,
        description=(
            "Weight of the KL term (small: a larger one let the decoder ignore the latent, and "
            "the ensembles lost their spread; see the results page)."
        ),
    )
    latent_dropout: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Share of samples decoded from a zero latent (trains the regression).",
    )
    hide: HideConfig = Field(default_factory=HideConfig, description="Hide-and-reconstruct.")
    steps: StrictInt = Field(1000, ge=1, description="Optimizer steps of stage 1.")

    @field_validator("encoder_widths", "decoder_widths")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        if not v or any(w < 1 or w > _WIDTH_MAX for w in v):
            raise ValueError(f"widths must be 1..{_WIDTH_MAX}, got {v}")
        return v


class PriorConfig(_Section):
    """Stage 2: the diffusion prior (latent or pixel space)."""

    widths: list[StrictInt] = Field([64, 128], description="UNet channels per level.")
    blocks_per_level: StrictInt = Field(1, ge=1, le=8, description="Residual blocks per level.")
    attention_levels: list[StrictInt] = Field([1], description="Levels with self-attention.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout in residual blocks.")
    objective: Literal["edm", "epsilon", "v", "flow"] = Field("edm", description="Training loss.")
    cond_dropout: float = Field(0.1, ge=0.0, le=1.0, description="Condition dropout probability.")
    cond_hide: HideConfig = Field(
        default_factory=lambda: HideConfig(rate=(0.0, 0.7)),
        description="Further masking of the conditioning view during prior training.",
    )
    pixel_loss: Literal["masked", "zero_filled"] = Field(
        "masked",
        description="Pixel mode: loss on observed points ('masked') or the zero-filled image.",
    )
    steps: StrictInt = Field(1000, ge=1, description="Optimizer steps of stage 2.")

    @field_validator("widths")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        if not v or any(w < 1 or w > _WIDTH_MAX for w in v):
            raise ValueError(f"widths must be 1..{_WIDTH_MAX}, got {v}")
        return v


class CalibrationConfig(_Section):
    """Calibration on the validation part (never the holdout): departure scale, then spread."""

    enabled: StrictBool = Field(
        True,
        description=(
            "Fit the departure scale and the spread factors on the validation part after training."
        ),
    )
    members: StrictInt = Field(8, ge=2, le=64, description="Ensemble members per window.")
    max_windows: StrictInt = Field(64, ge=1, description="Validation windows used at most.")
    steps: StrictInt = Field(6, ge=1, description="DPM-Solver++(2M) steps; a fill's default.")
    variability: StrictBool = Field(
        False,
        description=(
            "Let the spread also follow the local variability of the shown data, with a power "
            "the validation points choose (0 included); see sparsediff.method.variability."
        ),
    )
    hide: HideConfig = Field(
        default_factory=lambda: HideConfig(
            rate=(0.2, 0.8), patterns=["mcar", "boxes", "stripes", "cloud", "real"]
        ),
        description=(
            "Points hidden in the validation windows; larger shares than in training, so "
            "that the far-from-data bins of the calibration get points."
        ),
    )


class OptimConfig(_Section):
    """Optimizer and runtime."""

    batch_size: StrictInt = Field(
        16, ge=1, le=65536, description="Global batch size (split across ranks)."
    )
    lr: float = Field(2e-4, gt=0.0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    warmup: int = Field(100, ge=0, description="Linear warm-up steps, then cosine decay.")
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0, description="Final LR as a share of lr.")
    grad_clip: float = Field(1.0, gt=0.0, description="Gradient norm clip.")
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0, description="EMA decay of the weights.")
    grad_accum: StrictInt = Field(1, ge=1, description="Gradient accumulation steps.")


class RunConfig(_Section):
    """Logging, checkpoints, evaluation and devices."""

    out: str = Field("runs/sparsediff", description="Run directory: model, checkpoints, metrics.")
    seed: StrictInt = Field(0, ge=0, lt=2**63, description="Seed of all: data order, init, noise.")
    device: str = Field("auto", description="'auto' (cuda when present), 'cpu' or 'cuda[:N]'.")
    num_workers: int = Field(0, ge=0, description="DataLoader workers per rank.")
    log_every: int = Field(10, ge=1, description="Steps between metric lines.")
    eval_every: int = Field(200, ge=0, description="Steps between held-out masked RMSE (0: off).")
    keep_best: StrictBool | Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        True,
        description="With eval_every > 0, a stage whose last val_rmse is worse than its best "
        "by more than a margin (true: 2 %; a number: that share) ends on its best evaluation's "
        "weights, before the next stage, calibration and saving (provenance 'kept_best', "
        "metrics 'kept_step'). false: every stage ends on its last weights.",
    )
    checkpoint_every: int = Field(200, ge=1, description="Steps between checkpoints.")
    progress: bool | None = Field(
        None,
        description="Progress bars of training and calibration on rank 0: true, false, or "
        "null (default) for on in a terminal or notebook, off in batch jobs.",
    )
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's).")


#: The config sections that configure a training stage (a method's stages are among them).
STAGE_SECTIONS = ("autoencoder", "prior")
#: Keys of the stage sections read whatever the mode's stages are (the in-training
#: evaluation hides points as ``autoencoder.hide`` says).
READ_BY_EVERY_MODE = ("autoencoder.hide",)


class TrainConfig(_Section):
    """The whole training configuration (one YAML file)."""

    mode: str = Field(
        DEFAULT_MODE,
        description=(
            "The method, a key of sparsediff.method.METHODS: 'latent' (autoencoder + latent "
            "prior) or 'pixel' (pixel-space prior)."
        ),
    )
    first_guess: str = Field(
        "laplace",
        description=(
            "Classical estimate the model learns the departure from (from the shown points only): "
            "a registered first guess (sparsediff.method.first_guess.FIRST_GUESSES): 'laplace' "
            "relaxation, 'normconv' (normalized convolution), 'zero' (none), or one added with "
            "register_first_guess."
        ),
    )
    guess_context: StrictBool = Field(
        True,
        description=(
            "With data.context_dim: a space-time first guess (the mean of the context frames' "
            "own guesses plus the guess of the departure from it)."
        ),
    )
    guess_context_weight: Annotated[float, Field(ge=0.0, le=1.0)] | Literal["auto"] = Field(
        1.0,
        description=(
            "Weight in [0, 1] of the neighbouring steps in the space-time first guess: 1 follows "
            "them fully, 0 is the spatial guess of the step alone; 'auto' fits it on hidden "
            "points of the training data before the first stage."
        ),
    )
    stages: list[Literal["autoencoder", "prior"]] = Field(
        ["autoencoder", "prior"],
        description=(
            "Stages to run, of the mode's method's (read by a method of several stages: latent)."
        ),
    )
    data: DataConfig
    window: WindowConfig
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)
    prior: PriorConfig = Field(default_factory=PriorConfig)
    calibration: CalibrationConfig = Field(
        default_factory=CalibrationConfig,
        description="Spread calibration on the validation part (latent mode).",
    )
    optim: OptimConfig = Field(default_factory=OptimConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @field_validator("first_guess")
    @classmethod
    def _registered_guess(cls, name: str) -> str:
        return check_first_guess(name)

    @field_validator("mode")
    @classmethod
    def _registered_mode(cls, mode: str) -> str:
        return registered_mode(mode)

    def architecture(self) -> dict[str, Any]:
        """The network settings, as the methods' ``new_net`` and ``window_factors`` take them."""
        return {name: self.stage_section(name).model_dump() for name in STAGE_SECTIONS}

    def stage_section(self, stage: str) -> AutoencoderConfig | PriorConfig:
        """The section that configures ``stage`` (one of `STAGE_SECTIONS`)."""
        section = getattr(self, stage)
        assert isinstance(section, AutoencoderConfig | PriorConfig), stage
        return section

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        nd = len(self.data.dims)
        if len(self.window.size) != nd:
            raise ValueError(f"window.size has {len(self.window.size)} entries for {nd} dims")
        if self.window.stride is not None and len(self.window.stride) != nd:
            raise ValueError(f"window.stride has {len(self.window.stride)} entries for {nd} dims")
        if self.window.halo is not None and len(self.window.halo) != nd:
            raise ValueError(f"window.halo has {len(self.window.halo)} entries for {nd} dims")
        method = METHODS[self.mode]
        unknown = [st for st in method.stages if st not in STAGE_SECTIONS]
        if unknown:
            raise ValueError(
                f"mode {self.mode!r} has stages {unknown} that no config section configures "
                f"(sections: {', '.join(STAGE_SECTIONS)})"
            )
        factors = method.window_factors(self.architecture())
        factor, dec_factor = factors.latent, factors.decoder
        prior_factor = 2 ** (len(self.prior.widths) - 1)
        need = max(factor * prior_factor, dec_factor)
        for s in self.window.size:
            if s % (factor * prior_factor) or s % dec_factor:
                raise ValueError(
                    f"window.size {self.window.size} must be divisible by {need} (latent factor "
                    f"{factor} x prior UNet factor {prior_factor}, and decoder factor {dec_factor})"
                )
        if self.data.context_dim is not None and self.data.context_dim in self.data.dims:
            raise ValueError(f"data.context_dim {self.data.context_dim!r} is a spatial dim")
        if self.data.context_dim is not None and (
            not self.data.context_offsets or 0 in self.data.context_offsets
        ):
            raise ValueError("data.context_offsets must be non-empty and must not contain 0")
        return self


def _changed(section: BaseModel, prefix: str) -> list[str]:
    """The keys of ``section`` set explicitly (``model_fields_set``) to a non-default value."""
    fields = type(section).model_fields
    out = []
    for name in sorted(section.model_fields_set):
        if getattr(section, name) != fields[name].get_default(call_default_factory=True):
            out.append(f"{prefix}{name}")
    return out


def unread_keys(cfg: TrainConfig) -> tuple[list[str], list[str]]:
    """Keys set to a non-default value that training with ``cfg`` would never read.

    A key counts as set when the config names it (pydantic's
    ``model_fields_set``) with a value other than its default, so a config
    written out whole (a model's recorded config) only counts what differs.

    What a mode reads is its method's ([`METHODS`][sparsediff.method.METHODS]):
    its ``stages`` (``stages`` is read by a method of several stages only; the
    sections of `STAGE_SECTIONS` it has no stage of are not read but for
    `READ_BY_EVERY_MODE`), its ``own_keys`` (refused in the other modes) and
    whether it ``calibrates`` (``calibration.*``).

    Returns
    -------
    (refused, warned)
        One message per problem. Refused (an error at
        [`train`][sparsediff.training.trainer.train]): ``stages`` in pixel
        mode; ``prior.pixel_loss`` in latent mode; ``data.context_offsets``
        or ``guess_context_weight`` without ``data.context_dim``;
        ``guess_context_weight`` with ``guess_context: false`` or with a first
        guess that does not follow context (``zero``); ``data.holdout_fraction``
        without ``data.holdout_dim``; ``data.climatology`` without
        ``data.climatology_dim``. Warned (pixel mode, where a config shared
        with a latent one is common): ``autoencoder.*`` but ``autoencoder.hide``
        (read by the in-training evaluation) and ``calibration.*``.
    """
    from sparsediff.method.first_guess import get_first_guess

    refused: list[str] = []
    warned: list[str] = []
    top = _changed(cfg, "")
    data = _changed(cfg.data, "data.")
    method = METHODS[cfg.mode]
    if len(method.stages) == 1 and "stages" in top:
        several = " or ".join(m for m, c in METHODS.items() if len(c.stages) > 1)
        refused.append(
            f"stages is read in {several} mode only ({cfg.mode} mode trains the {method.stages[0]})"
        )
    for key in sorted({k for c in METHODS.values() for k in c.own_keys} - set(method.own_keys)):
        section = key.split(".", 1)[0]
        if key in _changed(getattr(cfg, section), f"{section}."):
            readers = " or ".join(m for m, c in METHODS.items() if key in c.own_keys)
            refused.append(f"{key} is read in {readers} mode only (mode is {cfg.mode})")
    ignored = [(s, _changed(cfg.stage_section(s), f"{s}.")) for s in STAGE_SECTIONS]
    if not method.calibrates:
        ignored.append(("calibration", _changed(cfg.calibration, "calibration.")))
    for what, keys in ignored:
        keys = [k for k in keys if k not in READ_BY_EVERY_MODE]
        if keys and what not in method.stages:
            warned.append(
                f"mode: {cfg.mode} ignores {', '.join(keys)} (a {cfg.mode} model has no {what})"
            )
    weight = "guess_context_weight" in top
    if cfg.data.context_dim is None:
        unread = [k for k in ("data.context_offsets",) if k in data]
        unread += ["guess_context_weight"] if weight else []
        if unread:
            refused.append(f"{' and '.join(unread)} need data.context_dim, which is not set")
    elif weight and not cfg.guess_context:
        refused.append("guess_context_weight is not read with guess_context: false")
    elif weight and not get_first_guess(cfg.first_guess).follows_context:
        refused.append(
            f"guess_context_weight is not read with first_guess: {cfg.first_guess} "
            "(a guess without a space-time form)"
        )
    for key, needs in (("holdout_fraction", "holdout_dim"), ("climatology", "climatology_dim")):
        if f"data.{key}" in data and getattr(cfg.data, needs) is None:
            refused.append(f"data.{key} needs data.{needs}, which is not set")
    return refused, warned


def check_unread(cfg: TrainConfig) -> None:
    """Refuse or warn about the keys of ``cfg`` that training would not read.

    See [`unread_keys`][unread_keys] for which keys are refused and which are
    warned about.

    Raises
    ------
    ConfigError
        One line naming every refused key.

    Warns
    -----
    SparsediffWarning
        One per group of ignored keys (pixel mode: ``autoencoder.*``,
        ``calibration.*``).
    """
    refused, warned = unread_keys(cfg)
    for message in warned:
        warnings.warn(message, SparsediffWarning, stacklevel=3)
    if refused:
        raise ConfigError("invalid config: " + "; ".join(refused))


def load_config(config: str | os.PathLike[str] | dict[str, Any] | TrainConfig) -> TrainConfig:
    """Validate a configuration given as a YAML path, a dict or a [`TrainConfig`][TrainConfig].

    Raises
    ------
    ConfigError
        Unknown or misspelled keys (the message lists the valid ones), wrong types,
        inconsistent sizes, or an unreadable file.
    """
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, str | os.PathLike):
        config = read_yaml_mapping(config, "config file")
    try:
        return TrainConfig.model_validate(config)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, TrainConfig)) from None
