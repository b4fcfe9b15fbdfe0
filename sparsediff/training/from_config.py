"""What a training config makes before any step: settings, architecture, first spec.

[`train`][sparsediff.training.trainer.train] builds these once;
[`adapt`][sparsediff.training.adapt] and the input calibration build them again
from a model's recorded config, so all three read a config the same way.
"""

from __future__ import annotations

from typing import Any

from sparsediff.method.base import HideSpec, TrainSettings
from sparsediff.method.spec import ModelSpec
from sparsediff.training.config import HideConfig, TrainConfig

__all__ = ["architecture", "hide_spec", "initial_spec", "settings_of"]


def architecture(cfg: TrainConfig) -> dict[str, Any]:
    """The network settings of a config, as the methods' ``new_net`` takes them."""
    return cfg.architecture()


def hide_spec(hide: HideConfig) -> HideSpec:
    """The [`HideSpec`][sparsediff.method.base.HideSpec] of a config's ``hide`` section.

    Parameters
    ----------
    hide
        A ``hide`` or ``cond_hide`` section of the config.

    Returns
    -------
    HideSpec
        Its range of the hidden share and its gap shapes, as tuples.
    """
    low, high = hide.rate
    return HideSpec((low, high), tuple(hide.patterns))


def settings_of(cfg: TrainConfig) -> TrainSettings:
    """The training settings of a config (hide specs, loss weights, dropouts)."""
    return TrainSettings(
        seed=cfg.run.seed,
        hide=hide_spec(cfg.autoencoder.hide),
        prior_hide=hide_spec(cfg.prior.cond_hide),
        kl_weight=cfg.autoencoder.kl_weight,
        latent_dropout=cfg.autoencoder.latent_dropout,
        cond_dropout=cfg.prior.cond_dropout,
        objective=cfg.prior.objective,
    )


def initial_spec(cfg: TrainConfig, facts: dict[str, Any]) -> ModelSpec:
    """The model spec before training (latent scale and spread calibration at 1)."""
    return ModelSpec(
        mode=cfg.mode,
        first_guess=cfg.first_guess,
        guess_context=cfg.guess_context,
        context_weight=1.0 if cfg.guess_context_weight == "auto" else cfg.guess_context_weight,
        cond_dropout=cfg.prior.cond_dropout,
        pixel_loss=cfg.prior.pixel_loss,
        **facts,
    )
