"""Shared fixtures of the evaluation tests: tiny trained models and their OSTIA case."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import xarray as xr

from tests.training.conftest import TINY as TRAINING_TINY

DIMS = ("latitude", "longitude")

# The tiny latent config of the training tests (trains in ~2 s on OSTIA), on the CPU.
TINY: dict[str, Any] = copy.deepcopy(TRAINING_TINY)
TINY["run"]["device"] = "cpu"
assert tuple(TINY["data"]["dims"]) == DIMS


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny latent and a tiny pixel(masked) model, and the latent one's saved path."""
    from sparsediff.training.trainer import train

    root = tmp_path_factory.mktemp("models")
    latent = train(None, copy.deepcopy(TINY), out=root / "latent")
    pixel_cfg = copy.deepcopy(TINY)
    pixel_cfg["mode"] = "pixel"
    del pixel_cfg["autoencoder"]  # a pixel model has none (the keys would be warned about)
    pixel_cfg["prior"]["pixel_loss"] = "masked"
    pixel = train(None, pixel_cfg, out=root / "pixel")
    return {"latent": latent, "pixel": pixel, "path": root / "latent" / "model"}


@pytest.fixture
def ostia_eval(ostia_full: xr.Dataset) -> xr.Dataset:
    """The months and longitudes the tiny model was trained on plus its held-out period."""
    return ostia_full.isel(time=slice(0, 24), longitude=slice(0, 128))
