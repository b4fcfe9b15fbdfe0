"""``sparsediff.evaluate`` fills with every fill option and with the model's own invalid rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import sparsediff
from sparsediff.errors import ConfigError
from sparsediff.evaluation.evaluate import evaluate
from sparsediff.method.options import FillOptions
from tests.filling.conftest import make_model
from tests.method.test_options import VALUES

torch.set_num_threads(1)


def _data(seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    values = rng.normal(3.0, 1.0, size=(3, 8, 8)).astype("float32")
    values[:, 2:4, 5:7] = np.nan  # a gap at every step
    return xr.Dataset({"a": (("time", "y", "x"), values)})


def _written_fill(out: Path) -> xr.Dataset:
    with xr.open_zarr(out / "fill_sparsediff.zarr") as filled:
        return filled.load()


def _same_fill_by_fill(filled: xr.Dataset, model: object, options: FillOptions) -> None:
    """``filled`` (evaluate's) is what sparsediff.fill makes of the gappy input evaluate made."""
    flag = filled["a_fill_flag"]
    gappy = filled[["a"]].isel(member=0, drop=True).where(flag == 0)
    gappy["a"].attrs = {}
    again = sparsediff.fill(
        gappy,
        model,  # type: ignore[arg-type]
        options=options,
        device="cpu",
        invalid=flag == 2,
        invalid_below=None,
        invalid_along=None,
        progress=False,
    )
    np.testing.assert_array_equal(again["a"].values, filled["a"].values)


def test_evaluate_fills_with_every_option_as_fill_does(tmp_path: Path) -> None:
    """Every field of FillOptions reaches the model's fill, which is fill's."""
    model = make_model(["a"], ["y", "x"], [8, 8])
    table = evaluate(
        _data(), model, holdout="mcar:0.3", baselines=(), device="cpu", out=tmp_path, **VALUES
    )
    assert table.attrs["members"] == VALUES["members"]
    assert table.attrs["sampler"] == VALUES["sampler"]
    filled = _written_fill(tmp_path)
    record = json.loads(filled.attrs["sparsediff_fill"])
    assert {k: record.get(k) for k in VALUES} == VALUES
    _same_fill_by_fill(filled, model, FillOptions(**VALUES))


def test_evaluate_guidance_and_cfg_change_the_fill_as_in_fill(tmp_path: Path) -> None:
    model = make_model(["a"], ["y", "x"], [8, 8])
    kw = {"holdout": "mcar:0.3", "baselines": (), "device": "cpu", "members": 2, "steps": 2}
    guided = FillOptions(members=2, steps=2, guidance=0.5, cfg_scale=1.5)
    evaluate(_data(), model, out=tmp_path / "g", **kw, guidance=0.5, cfg_scale=1.5)
    evaluate(_data(), model, out=tmp_path / "p", **kw)
    filled = _written_fill(tmp_path / "g")
    _same_fill_by_fill(filled, model, guided)
    plain = _written_fill(tmp_path / "p")
    gaps = filled["a_fill_flag"].values == 1
    assert np.abs(filled["a"].values[:, gaps] - plain["a"].values[:, gaps]).max() > 1e-3


def test_evaluate_takes_options_or_keywords(tmp_path: Path) -> None:
    model = make_model(["a"], ["y", "x"], [8, 8])
    kw = {"holdout": "mcar:0.3", "baselines": (), "device": "cpu"}
    by_options = evaluate(_data(), model, options=FillOptions(members=2, steps=2, seed=1), **kw)
    by_keywords = evaluate(_data(), model, members=2, steps=2, seed=1, **kw)
    cols = ["rmse", "crps", "n_points"]
    assert by_options[cols].equals(by_keywords[cols])
    assert by_options.attrs["members"] == 2
    default = evaluate(_data(), model, steps=2, **kw)
    assert default.attrs["members"] == 8  # evaluate's own default
    with pytest.raises(ConfigError, match="steps given both"):
        evaluate(_data(), model, options=FillOptions(), steps=2, **kw)


def _air(values: np.ndarray) -> np.ndarray:
    values = values.copy()
    values[:, :3, :] = -1.0  # observed "air", at or below the model's threshold 0
    return values


@pytest.mark.parametrize("mode", ["pixel", "latent"])
def test_evaluate_applies_the_models_invalid_below_rule(tmp_path: Path, mode: str) -> None:
    """A model trained with invalid_below: those points are invalid in evaluate, not scored."""
    model = make_model(["a"], ["y", "x"], [8, 8], mode=mode, invalid_below=0.0)
    ds = _data()
    ds["a"].values[:] = _air(ds["a"].values)
    air = np.zeros(ds["a"].shape, dtype=bool)
    air[:, :3, :] = True
    kw = {"holdout": "mcar:0.5", "baselines": ("linear",), "device": "cpu", "steps": 2}
    table = evaluate(ds, model, members=1, out=tmp_path / "model", **kw)
    filled = _written_fill(tmp_path / "model")
    flag = filled["a_fill_flag"].values
    assert (flag[air] == 2).all()
    assert np.isnan(filled["a"].values[air]).all()
    held = (flag == 1) & np.isfinite(ds["a"].values)  # held out: observed, then filled
    assert not (held & air).any()  # never hidden where the model's rule says invalid
    assert set(table["n_points"]) == {int(held.sum())}
    # overridden: the air is observed data, held out and scored like the rest
    over = evaluate(ds, model, members=1, invalid_below=None, out=tmp_path / "none", **kw)
    flag = _written_fill(tmp_path / "none")["a_fill_flag"].values
    assert not (flag == 2).any()
    held_over = (flag == 1) & np.isfinite(ds["a"].values)
    assert (held_over & air).any()
    assert set(over["n_points"]) == {int(held_over.sum())}
