"""Tiny training configs on real OSTIA SST for the training tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY: dict[str, Any] = {
    "mode": "latent",
    "data": {
        "source": "ostia",
        "variables": ["surface_temperature"],
        "dims": ["latitude", "longitude"],
        "invalid_along": "time",
        "isel": {"time": [0, 24], "longitude": [0, 128]},
        "holdout_dim": "time",
        "holdout_fraction": 0.25,
    },
    "window": {"size": [8, 32], "stride": [5, 32], "min_observed": 0.3},
    "autoencoder": {
        "encoder_widths": [8, 16, 16],
        "decoder_widths": [8, 16],
        "latent_channels": 2,
        "steps": 6,
    },
    "prior": {"widths": [16, 16], "attention_levels": [], "steps": 6},
    "optim": {"batch_size": 4, "lr": 1e-3, "warmup": 2},
    "run": {
        "seed": 3,
        "eval_every": 0,
        "checkpoint_every": 3,
        "log_every": 2,
        "progress": False,
        "threads": 1,
    },
}


@pytest.fixture
def tiny_config() -> dict[str, Any]:
    """A fresh copy of the tiny config (edit freely)."""
    return copy.deepcopy(TINY)


def write_config(cfg: dict[str, Any], path: Path) -> Path:
    """Write a config dict as YAML."""
    path.write_text(yaml.safe_dump(cfg))
    return path
