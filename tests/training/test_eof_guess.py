"""The first guess's EOF background (``data.eofs``): crops see what a fill sees."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import sparsediff
from sparsediff.data import eofs as np_eofs
from sparsediff.data.gaps import random_training_mask
from sparsediff.errors import ConfigError
from sparsediff.method.eof_guess import eof_background
from sparsediff.method.inputs import Frames
from sparsediff.rng import Stream, numpy_rng_for
from sparsediff.training.config import load_config
from sparsediff.training.crops import FIELD_HIDE, FIELD_PATTERNS
from sparsediff.training.data import collate, prepare_data
from tests.training.conftest import write_config


def _eof_config(tiny: dict[str, Any], tmp_path: Path, modes: int = 4) -> Any:
    tiny["data"]["climatology_dim"] = "time"
    tiny["data"]["context_dim"] = "time"
    tiny["data"]["context_offsets"] = [-1, 1]
    tiny["data"]["eofs"] = modes
    tiny["window"]["halo"] = [2, 16]
    return load_config(write_config(tiny, tmp_path / "eof.yaml"))


def test_background_is_the_numpy_optimal_interpolation() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(30, 60)) @ np.diag(np.linspace(3, 0.1, 60))
    basis = np_eofs.eof_basis(rows)
    x, shown = rows[5], rng.random(60) < 0.5
    want = np_eofs.interpolate(basis, x, shown, 4)
    k = 4
    prior = torch.tensor([[basis.noise(k) / v for v in basis.variance[:k]]])
    got = eof_background(
        torch.tensor(x, dtype=torch.float32).reshape(1, 1, 6, 10),
        torch.tensor(shown).reshape(1, 1, 6, 10),
        torch.tensor(basis.patterns[:, :k].T, dtype=torch.float32).reshape(1, 1, k, 6, 10),
        prior,
    )
    np.testing.assert_allclose(got.reshape(-1).numpy(), want, atol=1e-5)


def test_a_crop_finds_the_coefficients_of_its_whole_field(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    cfg = _eof_config(tiny_config, tmp_path)
    data = prepare_data(cfg)
    assert data.eofs is not None
    assert data.eofs["surface_temperature"].dims == ("eof", "latitude", "longitude")
    train = data.train
    ny, nx = train.domain
    # a window whose crop lies inside the field (no padding)
    window = next(
        w
        for w in train.windows
        if all(s - h >= 0 for s, h in zip(w.start, train.halo, strict=True))
        and all(
            s + z + h <= n
            for s, z, h, n in zip(w.start, train.size, train.halo, (ny, nx), strict=True)
        )
    )
    crop = collate([train.read(window)], train.halo, [0])
    whole_set = train.whole_fields()
    field = next(w for w in whole_set.windows if w.batch == window.batch)
    whole = collate([whole_set.read(field)], whole_set.halo, [0])
    assert whole.outside is not None
    assert float(whole.outside[0].abs().max()) == 0.0  # nothing outside a whole field
    assert crop.basis is not None
    assert crop.outside is not None
    assert crop.eof_prior is not None
    assert whole.basis is not None
    # hide a block of the crop: its coefficients are those of the field less that block
    hidden = torch.zeros_like(crop.observed)
    hidden[..., 1:5, 10:30] = True
    shown = crop.observed & crop.active & ~hidden
    out = (crop.outside[0][:, 0], crop.outside[1][:, 0])
    bg_crop = eof_background(crop.values, shown, crop.basis, crop.eof_prior, out)
    y0, x0 = (s - h for s, h in zip(window.start, train.halo, strict=True))
    cy, cx = crop.values.shape[-2:]
    # outside the crop the field is as gappy as a fill's: the crop's keyed field-scale gaps
    rng = numpy_rng_for(train.seed, Stream.EOF_FIELD_HIDE, window.index, train.epoch)
    keep = torch.from_numpy(
        random_training_mask(train.domain, rng, rate=FIELD_HIDE, patterns=FIELD_PATTERNS)
    )
    in_crop = torch.zeros_like(keep)
    in_crop[y0 : y0 + crop.values.shape[-2], x0 : x0 + crop.values.shape[-1]] = True
    field_hidden = torch.zeros_like(whole.observed)
    field_hidden[..., y0 + 1 : y0 + 5, x0 + 10 : x0 + 30] = True
    field_shown = whole.observed & whole.active & ~field_hidden & (keep | in_crop)
    assert not bool(keep.all())  # the field-scale gaps hide something
    bg_field = eof_background(whole.values, field_shown, whole.basis, whole.eof_prior)
    cut = bg_field[..., y0 : y0 + cy, x0 : x0 + cx]
    assert float(bg_crop.abs().max()) > 0.01  # a background worth comparing
    torch.testing.assert_close(bg_crop, cut, atol=1e-5, rtol=0)
    # and the shown points of the crop alone would give another background
    alone = eof_background(crop.values, shown, crop.basis, crop.eof_prior)
    assert float((alone - cut).abs().max()) > 1e-3


def test_model_with_eofs_trains_saves_and_fills(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    cfg = _eof_config(tiny_config, tmp_path, modes=3)
    from sparsediff.training.trainer import train

    model = train(config=cfg, out=tmp_path / "run")
    assert model.eofs is not None
    assert len(model.spec.eof_prior["surface_temperature"]) == 3
    loaded = sparsediff.load(tmp_path / "run" / "model")
    assert loaded.eofs is not None
    np.testing.assert_array_equal(
        loaded.eofs["surface_temperature"].values, model.eofs["surface_temperature"].values
    )
    ds = sparsediff.data.sample_data.open_ostia().isel(time=slice(18, 24), longitude=slice(0, 128))
    ds = ds.load()
    gappy = ds.copy(deep=True)
    gappy["surface_temperature"][:, 3:9, 40:70] = np.nan
    a = sparsediff.fill(gappy, loaded, members=2, seed=1, progress=False)
    b = sparsediff.fill(gappy, loaded, members=2, seed=1, progress=False)
    xr_a, xr_b = a["surface_temperature"].values, b["surface_temperature"].values
    np.testing.assert_array_equal(xr_a, xr_b)  # same seed, same bytes
    obs = np.isfinite(gappy["surface_temperature"].values)
    np.testing.assert_array_equal(
        xr_a[:, obs], np.broadcast_to(gappy["surface_temperature"].values[obs], xr_a[:, obs].shape)
    )
    hole = ~obs & np.isfinite(ds["surface_temperature"].values)
    assert np.isfinite(xr_a[:, hole]).all()
    # adapting and calibrating on the input keep the EOF background
    from sparsediff.data import masks
    from sparsediff.training.adapt import AdaptOptions, adapt
    from sparsediff.training.input_calibration import calibrate_on_input

    states = masks.states(gappy, ["surface_temperature"], invalid_along="time").compute()
    adapted = adapt(loaded, gappy, states, AdaptOptions(steps=2, batch_size=2, seed=1))
    calibrated = calibrate_on_input(adapted, gappy, states, seed=2, max_windows=4)
    for m in (adapted, calibrated):
        assert m.eofs is not None
        np.testing.assert_array_equal(
            m.eofs["surface_temperature"].values, model.eofs["surface_temperature"].values
        )
    # a model whose guess needs EOFs is refused without them, never filled without
    with pytest.raises(ConfigError, match="eof_prior"):
        dataclasses.replace(loaded, eofs=None)


def test_eofs_need_a_record(tiny_config: dict[str, Any], tmp_path: Path) -> None:
    tiny_config["data"]["eofs"] = 4
    with pytest.raises(ConfigError, match="climatology_dim"):
        prepare_data(load_config(write_config(tiny_config, tmp_path / "c.yaml")))


def test_frames_without_prior_are_refused() -> None:
    from sparsediff.errors import InputError
    from sparsediff.method.inputs import build_inputs

    f = Frames(
        torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4, dtype=torch.bool),
        torch.ones(1, 1, 4, 4, dtype=torch.bool), basis=torch.zeros(1, 1, 2, 4, 4),
    )  # fmt: skip
    with pytest.raises(InputError, match="eof_prior"):
        build_inputs(f, guess="laplace", n_context=0)


def test_auto_keeps_the_eof_count_whose_guess_is_best_on_validation(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    from sparsediff.training.climatology_choice import EOF_CANDIDATES, choose_eofs, guess_rmse

    cfg = _eof_config(tiny_config, tmp_path, modes=0)
    auto = cfg.model_copy(update={"data": cfg.data.model_copy(update={"eofs": "auto"})})
    data = prepare_data(auto)
    assert data.eofs is None  # "auto" prepares no EOFs before the choice
    chosen_cfg, chosen = choose_eofs(auto, None, data)
    scores = {}
    for k in (0, *EOF_CANDIDATES):
        c = cfg.model_copy(update={"data": cfg.data.model_copy(update={"eofs": k})})
        scores[k] = guess_rmse(c, prepare_data(c))
    best = min(scores, key=lambda k: scores[k])  # type: ignore[arg-type,return-value]
    assert chosen_cfg.data.eofs == best
    assert (chosen.eofs is None) == (best == 0)
    assert chosen.climatology_note is not None
    assert f"EOF background: {best} EOFs" in chosen.climatology_note
    for k, rmse in scores.items():
        assert f"{rmse:.4g} with {k}" in chosen.climatology_note
    assert len(set(scores.values())) == len(scores)  # the candidates' guesses do differ


def test_auto_without_a_record_is_no_eofs(tiny_config: dict[str, Any], tmp_path: Path) -> None:
    from sparsediff.training.climatology_choice import choose_eofs

    tiny_config["data"]["eofs"] = "auto"
    cfg = load_config(write_config(tiny_config, tmp_path / "c.yaml"))
    data = prepare_data(cfg)
    chosen_cfg, chosen = choose_eofs(cfg, None, data)
    assert chosen_cfg.data.eofs == 0
    assert chosen is data


@pytest.mark.parametrize("bad", [-1, 65, "some", 2.5])
def test_bad_eof_counts_are_refused(tiny_config: dict[str, Any], tmp_path: Path, bad: Any) -> None:
    tiny_config["data"]["eofs"] = bad
    with pytest.raises(ConfigError, match="eofs"):
        load_config(write_config(tiny_config, tmp_path / "c.yaml"))


def test_eofs_read_only_the_steps_their_budget_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    import xarray as xr

    from sparsediff.training import eof_fit

    rng = np.random.default_rng(3)
    values = rng.normal(size=(3, 4, 5, 6))  # two batch dims (run, time), then (y, x)
    states = rng.integers(0, 2, size=values.shape)
    dims = ("run", "time", "y", "x")
    da = xr.DataArray(values, dims=dims, name="v").chunk({"time": 1})
    st = xr.DataArray(states, dims=dims)
    raw, seen = eof_fit._steps(da, st, ("y", "x"))
    np.testing.assert_array_equal(raw, values.reshape(12, 5, 6))  # steps in row-major order
    np.testing.assert_array_equal(seen, states.reshape(12, 5, 6) == 0)  # OBSERVED is 0
    monkeypatch.setattr(eof_fit, "MAX_VALUES", 30 * 4)  # four steps of 30 points
    raw, seen = eof_fit._steps(da, st, ("y", "x"))
    pick = np.unique(np.linspace(0, 11, 4).round().astype(int))
    np.testing.assert_array_equal(raw, values.reshape(12, 5, 6)[pick])
    np.testing.assert_array_equal(seen, states.reshape(12, 5, 6)[pick] == 0)
    one, _ = eof_fit._steps(da.isel(run=0, time=0), st.isel(run=0, time=0), ("y", "x"))
    np.testing.assert_array_equal(one, values[0, 0][None])


def test_every_variable_keeps_the_same_eof_count(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    ds = sparsediff.data.sample_data.open_ostia().isel(time=slice(0, 24), longitude=slice(0, 128))
    ds = ds.load()
    second = ds["surface_temperature"] * 0.5 + 1.0
    second[:, :, :100] = np.nan  # far fewer active points than the first
    ds["second"] = second
    tiny_config["data"]["variables"] = ["surface_temperature", "second"]
    tiny_config["data"].pop("isel")
    cfg = _eof_config(tiny_config, tmp_path, modes=5)
    data = prepare_data(cfg, ds)
    assert data.eofs is not None
    prior = data.facts["eof_prior"]
    for v in ("surface_temperature", "second"):
        assert data.eofs[v].sizes["eof"] == 5
        assert len(prior[v]) == 5
        assert all(p > 0 for p in prior[v])
    # the second variable's EOFs are 0 where it is never observed
    assert float(abs(data.eofs["second"][:, :, :100]).max()) == 0.0
    assert data.train.eofs is not None
    assert data.train.eofs.basis.shape[:2] == (2, 5)
