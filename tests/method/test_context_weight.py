"""The weight of the neighbouring steps in the space-time first guess, fitted on the data."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

import sparsediff
from sparsediff.method.inputs import Frames, build_inputs, guess_of
from tests.training.conftest import TINY


def _smooth(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth random field: a few random plane waves."""
    y, x = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    out = np.zeros(shape)
    for _ in range(6):
        ky, kx = rng.uniform(0.05, 0.35, 2)
        out += rng.normal() * np.sin(ky * y + kx * x + rng.uniform(0, 2 * np.pi))
    return out


def _record(linked: bool, seed: int = 0, steps: int = 24) -> xr.Dataset:
    """``steps`` fields of 16 x 48: one pattern plus small changes, or independent fields."""
    rng = np.random.default_rng(seed)
    shape = (16, 48)
    common = _smooth(rng, shape)
    fields = []
    for _ in range(steps):
        f = common + 0.05 * _smooth(rng, shape) if linked else _smooth(rng, shape)
        f = f.copy()
        y0, x0 = rng.integers(0, 10), rng.integers(0, 40)
        f[y0 : y0 + 6, x0 : x0 + 8] = np.nan  # a gap of the step's own
        fields.append(f)
    return xr.Dataset(
        {"v": (("time", "y", "x"), 280.0 + np.stack(fields))},
        coords={"time": np.arange(steps), "y": np.arange(16.0), "x": np.arange(48.0)},
    )


def _config(weight: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(TINY)
    cfg["data"] = {
        "source": "unused",
        "variables": ["v"],
        "dims": ["y", "x"],
        "context_dim": "time",
        "context_offsets": [-1, 1],
        "holdout_dim": "time",
        "holdout_fraction": 0.2,
    }
    cfg["window"] = {"size": [8, 16], "stride": [8, 16], "halo": [4, 8], "min_observed": 0.3}
    cfg["guess_context_weight"] = weight
    cfg["calibration"] = {"enabled": False}
    return cfg


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out: Path = tmp_path_factory.mktemp("cw")
    got = {}
    for name, linked in (("linked", True), ("independent", False)):
        model = sparsediff.train(_record(linked), _config("auto"), out=out / name)
        got[name] = model
    return got


def test_linked_steps_lean_on_the_neighbours_and_independent_ones_do_not(
    weights: dict[str, Any],
) -> None:
    linked = weights["linked"].spec.context_weight
    independent = weights["independent"].spec.context_weight
    assert linked > 0.8
    assert independent < 0.3
    note = weights["independent"].provenance["context_weight"]
    assert note.startswith(f"context weight {independent:.3f} fitted on")
    assert "hidden validation points" in note  # fitted on the validation part


def test_a_fixed_weight_is_kept_and_the_default_is_the_old_guess(tmp_path: Path) -> None:
    cfg = _config(0.5)
    for stage in ("autoencoder", "prior"):
        cfg[stage]["steps"] = 1
    model = sparsediff.train(_record(False), cfg, out=tmp_path / "fixed")
    assert model.spec.context_weight == 0.5
    assert "context_weight" not in model.provenance
    # a fill with a weight other than 1: observed values kept bit for bit, same seed same bytes
    data = _record(False, seed=5, steps=6)
    one = sparsediff.fill(data, model, members=2, steps=2, seed=1, progress=False)
    two = sparsediff.fill(data, model, members=2, steps=2, seed=1, progress=False)
    for name in one.data_vars:  # same bytes (the attributes carry the fill's time)
        np.testing.assert_array_equal(one[name].values, two[name].values)
    observed = np.isfinite(data["v"].values)
    for k in range(2):
        member = one["v"].isel(member=k).values
        np.testing.assert_array_equal(member[observed], data["v"].values[observed])
        assert np.isfinite(member).all()  # no invalid point in this record: every gap filled


def _frames(seed: int) -> Frames:
    g = torch.Generator().manual_seed(seed)
    values = torch.randn((2, 1, 12, 20), generator=g)
    shown = torch.rand((2, 1, 12, 20), generator=g) > 0.5
    active = torch.ones_like(shown)
    ctx = torch.randn((2, 2, 1, 12, 20), generator=g)
    ctx_shown = torch.rand((2, 2, 1, 12, 20), generator=g) > 0.3
    return Frames(values, shown, active, ctx, ctx_shown)


@pytest.mark.parametrize("guess", ["laplace", "normconv"])
def test_the_guess_is_linear_in_the_weight(guess: str) -> None:
    """What the one-step least-squares fit relies on: g(w) = g(0) + w (g(1) - g(0))."""
    frames = _frames(1)

    def g(w: float) -> torch.Tensor:
        inputs = build_inputs(frames, guess=guess, n_context=2, context_weight=w)
        return guess_of(inputs, 1)

    g0, g1, gw = g(0.0), g(1.0), g(0.37)
    torch.testing.assert_close(gw, g0 + 0.37 * (g1 - g0), atol=2e-4, rtol=0)
    assert float((g1 - g0).abs().max()) > 0.1  # the weight does change the guess


def test_weight_one_is_bit_identical_to_the_guess_without_a_weight() -> None:
    frames = _frames(2)
    before = build_inputs(frames, guess="laplace", n_context=2)
    after = build_inputs(frames, guess="laplace", n_context=2, context_weight=1.0)
    assert torch.equal(before, after)
    spatial = build_inputs(frames, guess="laplace", n_context=2, use_context=False)
    zero = build_inputs(frames, guess="laplace", n_context=2, context_weight=0.0)
    torch.testing.assert_close(guess_of(zero, 1), guess_of(spatial, 1), atol=1e-5, rtol=0)


def test_a_neighbour_with_nothing_shown_is_left_out_of_the_space_time_guess() -> None:
    """Planted bug (issue 19 round 2): the base averaged over every context frame.

    A frame with no shown point (the step before the first, a dropped frame)
    must not count: the guess from one shown neighbour and an empty one is the
    guess from that neighbour alone (here: the same neighbour twice), not half
    of it.
    """
    frames = _frames(3)
    assert frames.context is not None
    assert frames.context_shown is not None
    ctx, ctx_shown = frames.context, frames.context_shown
    one_empty = ctx_shown.clone()
    one_empty[:, 1] = False
    lone = Frames(frames.values, frames.shown, frames.active, ctx, one_empty)
    twice = Frames(
        frames.values,
        frames.shown,
        frames.active,
        torch.stack([ctx[:, 0], ctx[:, 0]], 1),
        torch.stack([ctx_shown[:, 0], ctx_shown[:, 0]], 1),
    )
    for guess in ("laplace", "normconv"):
        g_lone = guess_of(build_inputs(lone, guess=guess, n_context=2), 1)
        g_twice = guess_of(build_inputs(twice, guess=guess, n_context=2), 1)
        torch.testing.assert_close(g_lone, g_twice, atol=1e-5, rtol=0)
        spatial = guess_of(build_inputs(lone, guess=guess, n_context=2, use_context=False), 1)
        assert float((g_lone - spatial).abs().max()) > 0.1  # the neighbour does count


@pytest.mark.parametrize("bad", [1.5, -0.1, "full"])
def test_a_weight_outside_zero_one_is_one_config_error_naming_the_key(bad: Any) -> None:
    from sparsediff.errors import ConfigError
    from sparsediff.training.config import load_config

    with pytest.raises(ConfigError, match="guess_context_weight"):
        load_config(_config(bad))


def test_the_weight_is_fitted_on_whole_fields_as_a_fill_sees_them(
    weights: dict[str, Any],
) -> None:
    """Every hidden point of a whole field counts, not only a training window's.

    The windows are 8 x 16 of 16 x 48 fields: a fit on the windows could score
    at most 128 points per crop and draw; the whole fields give several times that.
    """
    from sparsediff.method.context_weight import DRAWS
    from sparsediff.training.crops import CropDataset

    note = weights["linked"].provenance["context_weight"]
    points = int(note.split(" fitted on ")[1].split()[0])
    steps = 24 - round(24 * 0.2)  # the training and validation steps
    assert points > 128 * DRAWS * 2  # at least two fields' worth beyond a window
    assert points < 16 * 48 * DRAWS * steps

    record = _record(True, steps=6)
    crops = CropDataset(
        record,
        ["v"],
        ["y", "x"],
        (8, 16),
        halo=(4, 8),
        context_dim="time",
        context_offsets=(-1, 1),
        shuffle=False,
        rank=0,
        world_size=1,
        min_observed=0.3,
    )
    whole = crops.whole_fields()
    assert len(whole.windows) == 6  # one crop per step
    item = whole.read(whole.windows[2])
    assert tuple(item["values"].shape) == (1, 16, 48)
    assert whole.halo == (0, 0)
    observed = np.isfinite(record["v"].values)
    np.testing.assert_array_equal(item["observed"].numpy()[0], observed[2])
    np.testing.assert_array_equal(item["context_observed"].numpy()[:, 0], observed[[1, 3]])
