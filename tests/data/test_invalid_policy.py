"""The one invalid-point policy (``sparsediff.data.invalid_policy``), on the xarray side."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sparsediff.data import masks
from sparsediff.data.invalid_policy import RecordedRule, invalid_states, resolve_invalid
from sparsediff.errors import ConfigError


def _ds(steps: int = 3) -> xr.Dataset:
    rng = np.random.default_rng(0)
    a = rng.normal(2.0, 1.0, size=(steps, 6, 8))
    a[:, :2, :2] = np.nan  # land: missing at every step
    a[0, 3, 3] = np.nan  # a gap
    a[:, 5, :] = -1.0  # observed values at or below 0 ("air")
    return xr.Dataset({"a": (("time", "y", "x"), a)})


def _codes(st: xr.Dataset) -> np.ndarray:
    return np.asarray(st["a"].values)


def test_training_rules_give_the_states_training_always_had() -> None:
    ds = _ds()
    rule, st = invalid_states(ds, ["a"], invalid=None, invalid_below=0.0, invalid_along="time")
    before = masks.states(
        ds, ["a"], invalid=masks.at_or_below(ds, ["a"], 0.0), invalid_along="time"
    )
    np.testing.assert_array_equal(_codes(st), _codes(before))
    assert (rule.below, rule.along) == (0.0, "time")
    assert (_codes(st)[:, 5, :] == masks.INVALID).all()
    assert (_codes(st)[:, :2, :2] == masks.INVALID).all()
    assert _codes(st)[0, 3, 3] == masks.GAP


def test_model_means_the_recorded_rule_and_none_overrides_it() -> None:
    ds = _ds()
    recorded = RecordedRule(below=0.0, along="time")
    rule, st = invalid_states(
        ds, ["a"], invalid=None, invalid_below="model", invalid_along="model", recorded=recorded
    )
    assert (rule.below, rule.along) == (0.0, "time")
    assert (_codes(st)[:, 5, :] == masks.INVALID).all()
    _, off = invalid_states(
        ds, ["a"], invalid=None, invalid_below=None, invalid_along=None, recorded=recorded
    )
    assert (_codes(off)[:, 5, :] == masks.OBSERVED).all()
    assert (_codes(off)[:, :2, :2] == masks.GAP).all()


def test_a_user_mask_drops_the_recorded_threshold_unless_asked() -> None:
    ds = _ds()
    user = xr.DataArray(np.zeros((6, 8), dtype=bool), dims=("y", "x"))
    user[0, 7] = True
    recorded = RecordedRule(below=0.0)
    rule = resolve_invalid(
        ds, ["a"], invalid=user, invalid_below="model", invalid_along=None, recorded=recorded
    )
    assert rule.below is None
    rule = resolve_invalid(
        ds, ["a"], invalid=user, invalid_below=0.0, invalid_along=None, recorded=recorded
    )
    assert rule.below == 0.0


def test_the_recorded_mask_wins_over_the_recorded_along_rule() -> None:
    ds = _ds()
    land = xr.DataArray(np.zeros((6, 8), dtype=bool), dims=("y", "x"))
    land[:2, :2] = True
    land[3, 3] = True  # never seen in training, but observed at steps 1 and 2 here
    recorded = RecordedRule(along="time", masks={"a": land})
    rule, st = invalid_states(
        ds, ["a"], invalid=None, invalid_below="model", invalid_along="model", recorded=recorded
    )
    assert rule.along is None
    assert rule.source.startswith("the model's training mask")
    codes = _codes(st)
    assert (codes[:, :2, :2] == masks.INVALID).all()
    assert codes[0, 3, 3] == masks.INVALID  # missing here and in training
    assert (codes[1:, 3, 3] == masks.OBSERVED).all()  # observed: kept


def test_a_recorded_along_rule_that_cannot_run_warns() -> None:
    one = _ds(steps=1)
    rule = resolve_invalid(
        one,
        ["a"],
        invalid=None,
        invalid_below=None,
        invalid_along="model",
        recorded=RecordedRule(along="time"),
    )
    assert rule.along is None
    assert rule.warning is not None
    assert "every missing point will be filled" in rule.warning
    with pytest.raises(ConfigError, match="invalid_below must be a number"):
        resolve_invalid(one, ["a"], invalid=None, invalid_below="low", invalid_along=None)


def test_a_mask_per_variable_and_a_threshold_combine() -> None:
    rng = np.random.default_rng(0)
    dims = ("t", "y", "x")
    ds = xr.Dataset(
        {"a": (dims, rng.random((2, 4, 5)) - 0.3), "b": (dims, rng.random((2, 4, 5)) + 1.0)}
    )
    ds["m"] = xr.DataArray(np.zeros((4, 5), bool), dims=("y", "x"))
    ds["m"][0, 0] = True
    rule = resolve_invalid(
        ds, ["a", "b"], invalid={"a": "m"}, invalid_below=0.0, invalid_along=None
    )
    below = (ds.a <= 0) | (ds.b <= 0)
    assert set(rule.invalid) == {"a", "b"}
    np.testing.assert_array_equal(rule.invalid["a"].values, (below | ds.m).values)
    np.testing.assert_array_equal(rule.invalid["b"].values, below.values)
