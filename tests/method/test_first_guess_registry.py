"""Adding a first guess is one function registered in one place: it trains, saves, loads, fills.

The names come from one registry (`FIRST_GUESSES`): the training config and the
model spec are checked against it, so a guess registered from this test file
works end to end, and a model whose guess is not registered does not load.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

import sparsediff
from sparsediff.errors import CheckpointError, ConfigError, InputError
from sparsediff.method.first_guess import (
    FIRST_GUESSES,
    first_guess,
    harmonic_fill,
    register_first_guess,
)
from sparsediff.method.spec import ModelSpec
from sparsediff.model import Model
from sparsediff.training.config import load_config
from sparsediff.training.trainer import train
from tests.training.conftest import TINY

TOY = "toy_plus_one"
#: The toy guess, in normalized units, at every active point that is not shown.
LEVEL = 1.0


def plus_one(
    values: torch.Tensor,
    known: torch.Tensor,
    active: torch.Tensor | None = None,
    *,
    periodic: Sequence[bool] | None = None,
) -> torch.Tensor:
    """The shown values; ``LEVEL`` at the other active points; 0 at inactive ones."""
    act = torch.ones_like(known, dtype=torch.bool) if active is None else active.bool()
    out = torch.where(known.bool() & act, values, torch.full_like(values, LEVEL))
    return torch.where(act, out, torch.zeros_like(out))


@pytest.fixture
def toy() -> Iterator[str]:
    register_first_guess(TOY, plus_one, follows_context=False)
    try:
        yield TOY
    finally:
        FIRST_GUESSES.pop(TOY, None)


def test_builtin_names_and_the_zero_guess_come_from_the_registry() -> None:
    assert {"laplace", "normconv", "zero"} <= set(FIRST_GUESSES)
    assert FIRST_GUESSES["laplace"].fn is harmonic_fill
    assert not FIRST_GUESSES["zero"].follows_context
    assert FIRST_GUESSES["laplace"].follows_context
    v = torch.arange(16.0).reshape(1, 1, 4, 4)
    k = v.remainder(3) == 0
    assert torch.equal(first_guess("zero", v, k), torch.where(k, v, torch.zeros_like(v)))
    with pytest.raises(ConfigError, match="already registered"):
        register_first_guess("laplace", plus_one)
    with pytest.raises(ConfigError, match="not callable"):
        register_first_guess("bad", 3)  # type: ignore[arg-type]


def test_unregistered_names_are_refused_by_config_and_spec(toy: str) -> None:
    cfg = copy.deepcopy(TINY)
    cfg["first_guess"] = "kriging"
    with pytest.raises(ConfigError, match=rf"first_guess: .*'kriging'.*registered: .*{toy}"):
        load_config(cfg)
    spec = {"mode": "latent", "variables": ["a"], "dims": ["y", "x"], "window": [8, 8]}
    with pytest.raises(ValueError, match="unknown first guess 'kriging'"):
        ModelSpec.model_validate({**spec, "first_guess": "kriging"})
    assert ModelSpec.model_validate({**spec, "first_guess": toy}).first_guess == toy
    with pytest.raises(InputError, match="unknown first guess"):
        first_guess("kriging", torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4))


def test_a_first_guess_registered_here_trains_saves_and_fills(toy: str, tmp_path: Path) -> None:
    from sparsediff.data.sample_data import open_ostia

    cfg = copy.deepcopy(TINY)
    cfg["first_guess"] = toy
    cfg["autoencoder"]["steps"] = 3
    cfg["prior"]["steps"] = 3
    cfg["calibration"] = {"enabled": False}
    model = train(None, cfg, out=tmp_path / "run")
    assert model.spec.first_guess == toy
    loaded = sparsediff.load(tmp_path / "run" / "model")
    assert loaded.spec.first_guess == toy

    var = "surface_temperature"
    data = open_ostia().isel(time=slice(18, 20), longitude=slice(0, 128))[[var]].load()
    gappy = data.copy(deep=True)
    gappy[var].values[1, 5:12, 40:70] = np.nan  # a box of gaps at one step
    gap = np.isnan(gappy[var].values) & np.isfinite(data[var].values)
    assert gap.sum() > 100

    # the fill runs through the toy guess, and keeps every observed point
    filled = sparsediff.fill(gappy, loaded, steps=2, seed=0, progress=False)
    observed = np.isfinite(gappy[var].values)
    np.testing.assert_array_equal(filled[var].values[observed], gappy[var].values[observed])
    assert np.isfinite(filled[var].values[gap]).all()

    # with the learned departure and the spread at 0, a fill is the guess itself
    off = loaded.spec.model_copy(
        update={"departure_scale": 0.0, "spread_scale": 0.0, "spread_bins": [], "spread_scales": []}
    )
    bare = Model(
        off, dict(loaded.nets), loaded.stats, loaded.provenance, loaded.climatology, loaded.invalid
    )
    guess_only = sparsediff.fill(gappy, bare, steps=2, seed=0, progress=False)
    vs = loaded.stats[var]
    want = vs.mean + LEVEL * vs.std
    np.testing.assert_allclose(guess_only[var].values[gap], want, rtol=1e-5)


def test_a_model_whose_guess_is_not_registered_does_not_load(tmp_path: Path) -> None:
    from tests.filling.conftest import make_model

    register_first_guess(TOY, plus_one)
    try:
        path = make_model(["a"], ["y", "x"], [8, 8], mode="pixel", first_guess=TOY).save(
            tmp_path / "m"
        )
        assert sparsediff.load(path).spec.first_guess == TOY
    finally:
        FIRST_GUESSES.pop(TOY, None)
    with pytest.raises(CheckpointError, match=f"first_guess: .*unknown first guess '{TOY}'"):
        sparsediff.load(path)
