"""Adaptation to the data being filled and calibration on it, with the shipped demo model on
real OSTIA SST: determinism, interrupt + resume, what it trains, what it never sees."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

import sparsediff
from sparsediff.data import masks
from sparsediff.demo import DEMO_MODEL
from sparsediff.errors import ConfigError
from sparsediff.evaluation.holdout import make_holdout
from sparsediff.filling.fit_input import fit_to_input
from sparsediff.training.adapt import AdaptOptions, adapt, as_adapt_options
from sparsediff.training.checkpoint import latest_checkpoint, load_checkpoint
from sparsediff.training.input_calibration import calibrate_on_input

VAR = "surface_temperature"
DIMS = ("latitude", "longitude")


@pytest.fixture(scope="module")
def demo() -> sparsediff.Model:
    return sparsediff.load(DEMO_MODEL)


@pytest.fixture
def small(ostia_full: xr.Dataset) -> xr.Dataset:
    """8 months (the demo's held-out ones and two before) on a third of the longitudes."""
    return ostia_full.isel(time=slice(46, 54), longitude=slice(0, 144)).load()


def _states(ds: xr.Dataset) -> xr.Dataset:
    return masks.states(ds, [VAR], invalid_along="time").compute()


def _weights(model: sparsediff.Model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.nets["autoencoder"].state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


OPTS = AdaptOptions(steps=4, batch_size=4, seed=5, log_every=1, checkpoint_every=2)


def test_adaptation_is_deterministic_and_trains_the_decoder_only(
    demo: sparsediff.Model, small: xr.Dataset
) -> None:
    before = _weights(demo)
    a = adapt(demo, small, _states(small), OPTS)
    b = adapt(demo, small, _states(small), OPTS)
    wa, wb = _weights(a), _weights(b)
    assert _same(wa, wb)
    assert _same(_weights(demo), before)  # the input model is left as it was
    enc = [k for k in wa if not k.startswith("decoder.")]
    dec = [k for k in wa if k.startswith("decoder.") and wa[k].dtype.is_floating_point]
    assert enc
    assert all(torch.equal(wa[k], before[k]) for k in enc)
    assert any(not torch.equal(wa[k], before[k]) for k in dec)
    assert a.nets["prior"] is demo.nets["prior"]
    rec = a.provenance["adaptation"]
    assert rec["steps"] == 4
    assert rec["trained"] == "decoder"
    assert rec["windows"] > 0
    other = adapt(demo, small, _states(small), AdaptOptions(steps=4, batch_size=4, seed=6))
    assert not _same(_weights(other), wa)  # the seed keys the draws


class _Interrupt(Exception):
    pass


class _StopAt(logging.Handler):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def emit(self, record: logging.LogRecord) -> None:
        if record.args and record.args[0] == self.step:  # type: ignore[index]
            raise _Interrupt


def test_interrupted_adaptation_resumes_to_the_same_weights(
    demo: sparsediff.Model, small: xr.Dataset, tmp_path: Path
) -> None:
    states = _states(small)
    opts = dict(steps=6, batch_size=4, seed=5, log_every=1, checkpoint_every=2)
    full = adapt(demo, small, states, AdaptOptions(**opts, out=str(tmp_path / "full")))
    out = tmp_path / "cut"
    logger = logging.getLogger("sparsediff.adapt")
    handler = _StopAt(5)  # dies after step 5 is computed; step 4 is the last checkpoint
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    handler.raiseExceptions = True
    try:
        with pytest.raises(_Interrupt):
            adapt(demo, small, states, AdaptOptions(**opts, out=str(out)))
    finally:
        logger.removeHandler(handler)
    assert latest_checkpoint(out).name == "adapt-00000004"  # type: ignore[union-attr]
    with pytest.raises(Exception, match="resume"):
        adapt(demo, small, states, AdaptOptions(**opts, out=str(out)))
    resumed = adapt(demo, small, states, AdaptOptions(**opts, out=str(out), resume=True))
    assert resumed.provenance["adaptation"]["resumed_at"] == 4
    assert _same(_weights(full), _weights(resumed))
    rows = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 6
    assert '"loss"' in rows[0]


def test_adaptation_sees_only_observed_points(demo: sparsediff.Model, small: xr.Dataset) -> None:
    """Values at gaps never matter; changing one observed value changes the weights."""
    punch = np.random.default_rng(0).random(small[VAR].shape) < 0.2
    hidden = small.copy(deep=True)
    hidden[VAR] = hidden[VAR].where(~punch)
    st_hidden = _states(hidden)
    assert (st_hidden[VAR] == masks.GAP).values.sum() > 1000
    a = adapt(demo, hidden, st_hidden, OPTS)
    changed = small.copy(deep=True)  # other values where ``hidden`` has gaps
    changed[VAR] = changed[VAR].where(st_hidden[VAR] == masks.OBSERVED, 300.0)
    b = adapt(demo, changed, st_hidden, OPTS)
    assert _same(_weights(a), _weights(b))
    shown = hidden.copy(deep=True)
    shown[VAR] = shown[VAR] + 0.5
    c = adapt(demo, shown, st_hidden, OPTS)
    assert not _same(_weights(a), _weights(c))


def test_evaluate_never_adapts_to_held_out_points(
    demo: sparsediff.Model, small: xr.Dataset, tmp_path: Path
) -> None:
    """The truth at evaluate's held-out points cannot change the adapted weights."""
    region = {"time": slice(5, 8)}
    kw: dict[str, Any] = dict(
        holdout="cloud:0.3",
        region=region,
        baselines=None,
        members=2,
        steps=3,
        seed=1,
        device="cpu",
    )
    _, held = make_holdout(
        small,
        "cloud:0.3",
        dims=DIMS,
        seed=1,
        variables=[VAR],
        invalid_along=["time"],
        region=region,
        protect_along="time",
    )
    assert bool(held[VAR].any())

    def adapted(ds: xr.Dataset, name: str) -> dict[str, torch.Tensor]:
        out = tmp_path / name
        opts = AdaptOptions(steps=3, batch_size=4, seed=1, out=str(out))
        sparsediff.evaluate(ds, demo, adapt=opts, **kw)
        _, tensors, _ = load_checkpoint(latest_checkpoint(out))  # type: ignore[arg-type]
        return tensors["ema"]

    base = adapted(small, "base")
    moved = small.copy(deep=True)
    moved[VAR] = moved[VAR].where(~held[VAR], moved[VAR] + 3.0)
    assert not moved[VAR].equals(small[VAR])
    assert _same(base, adapted(moved, "moved"))
    shown = small.copy(deep=True)  # a change at the shown points does reach them
    shown[VAR] = shown[VAR].where(held[VAR], shown[VAR] + 0.5)
    assert not _same(base, adapted(shown, "shown"))


def test_input_calibration_refits_on_the_input(demo: sparsediff.Model, small: xr.Dataset) -> None:
    states = _states(small)
    a = calibrate_on_input(demo, small, states, seed=2, max_windows=8)
    b = calibrate_on_input(demo, small, states, seed=2, max_windows=8)
    assert a.spec == b.spec
    assert "hidden input points" in a.spec.calibration
    assert a.spec.spread_scales != demo.spec.spread_scales
    assert all(np.diff(a.spec.spread_scales) >= 0)  # never narrower further from the data
    assert a.provenance["input_calibration"]["windows"] == 8
    assert a.nets["autoencoder"] is demo.nets["autoencoder"]


def test_input_calibration_and_adaptation_ask_the_method(
    demo: sparsediff.Model, small: xr.Dataset
) -> None:
    states = _states(small)
    no_prior = dataclasses.replace(demo, nets={"autoencoder": demo.nets["autoencoder"]})
    with pytest.raises(ConfigError, match=r"can be calibrated \(none: no latent prior\)"):
        calibrate_on_input(no_prior, small, states, seed=2, max_windows=8)
    pixel = dataclasses.replace(
        demo, spec=demo.spec.model_copy(update={"mode": "pixel"}), nets={"prior": demo.prior}
    )
    assert pixel.method.adapts is None
    with pytest.raises(ConfigError, match="a pixel model has no calibration"):
        calibrate_on_input(pixel, small, states, seed=2, max_windows=8)
    with pytest.raises(ConfigError, match="this pixel model has no trained network to adapt"):
        adapt(pixel, small, states, OPTS)


def test_an_own_mask_without_the_real_pattern_is_one_error(
    demo: sparsediff.Model, small: xr.Dataset
) -> None:
    """A mask only the "real" pattern reads would be ignored silently: refused instead."""
    from sparsediff.method.base import HideSpec
    from sparsediff.training.input_calibration import InputFit

    states = _states(small)
    keep = xr.ones_like(small[VAR], dtype=bool)
    for hide in (None, HideSpec((0.1, 0.3), ("mcar",))):
        with pytest.raises(ConfigError, match='read by the "real" hide pattern only'):
            calibrate_on_input(demo, small, states, seed=2, fit=InputFit(hide=hide, keep=keep))
    # with the pattern it fits, and records that the mask was used
    fit = InputFit(hide=HideSpec((0.1, 0.3), ("mcar", "real")), keep=keep)
    a = calibrate_on_input(demo, small, states, seed=2, max_windows=8, fit=fit)
    assert a.provenance["input_calibration"]["own_mask"] is True


def test_fill_with_adaptation_keeps_observed_points(
    demo: sparsediff.Model, small: xr.Dataset
) -> None:
    gappy = small.isel(time=slice(4, 8), longitude=slice(0, 64))
    filled = sparsediff.fill(gappy, demo, members=2, steps=3, adapt=OPTS, calibrate="input")
    obs = np.isfinite(gappy[VAR].values)
    for m in range(2):
        got = filled[VAR].isel(member=m).values
        assert np.array_equal(got[obs], gappy[VAR].values[obs])
    assert '"adaptation"' in filled.attrs["sparsediff_fill"]
    assert "hidden input points" in filled.attrs["sparsediff_fill"]


@pytest.mark.parametrize(
    ("adapt_arg", "calibrate"),
    [(-1, "validation"), (True, "validation"), ("10", "validation"), (None, "inputs")],
)
def test_bad_fit_options_are_one_line_errors(
    demo: sparsediff.Model, small: xr.Dataset, adapt_arg: Any, calibrate: str
) -> None:
    with pytest.raises(ConfigError):
        sparsediff.fill(small, demo, adapt=adapt_arg, calibrate=calibrate)
    with pytest.raises(ConfigError):
        sparsediff.evaluate(small, demo, adapt=adapt_arg, calibrate=calibrate, baselines=None)


def test_input_the_fill_refuses_is_refused_before_any_adaptation(
    demo: sparsediff.Model, small: xr.Dataset
) -> None:
    from sparsediff.errors import InputError

    # every observed value made invalid: the fill's own check names the rule, no training runs
    with pytest.raises(InputError, match="invalid rule"):
        sparsediff.fill(small, demo, adapt=5, invalid_below=float("inf"))


def test_off_returns_the_model_itself(demo: sparsediff.Model, small: xr.Dataset) -> None:
    assert as_adapt_options(0) is None
    assert fit_to_input(small, demo, adapt=0) is demo


def test_cli_fill_adapts_and_calibrates_on_the_input(small: xr.Dataset, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sparsediff.cli import main

    src = tmp_path / "in.nc"
    small.isel(time=slice(4, 8), longitude=slice(0, 64)).to_netcdf(src)
    out, run = tmp_path / "out.nc", tmp_path / "adapt"
    args = ["fill", str(DEMO_MODEL), str(src), str(out), "--members", "2", "--steps", "2"]
    bad = CliRunner().invoke(main, [*args, "--calibrate", "inputs"])
    assert bad.exit_code == 2
    assert "error:" in bad.output
    assert not out.exists()
    bad_eval = CliRunner().invoke(
        main, ["evaluate", str(DEMO_MODEL), str(src), "--adapt-steps", "-1"]
    )
    assert bad_eval.exit_code == 2
    assert "error:" in bad_eval.output
    res = CliRunner().invoke(
        main, [*args, "--adapt-steps", "2", "--adapt-out", str(run), "--calibrate", "input"]
    )
    assert res.exit_code == 0, res.output
    assert latest_checkpoint(run).name == "adapt-00000002"  # type: ignore[union-attr]
    with xr.open_dataset(out) as filled:
        record = filled.attrs["sparsediff_fill"]
    assert '"adaptation"' in record
    assert "hidden input points" in record


def test_a_bad_calibrate_is_refused_even_when_adaptation_is_asked() -> None:
    from sparsediff.filling.fit_input import check_fit_options

    assert check_fit_options(2, "validation") is True
    with pytest.raises(ConfigError, match="inputs"):
        check_fit_options(2, "inputs")  # checked before any data is read
