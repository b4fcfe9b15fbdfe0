"""Which points a fill leaves alone: the model's training mask, the user's mask, the rule."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import sparsediff
from sparsediff.cli import main
from sparsediff.data import masks
from sparsediff.errors import SparsediffWarning
from tests.filling.conftest import make_model

LAT = np.arange(12.0)
LON = np.arange(0.0, 360.0, 22.5)  # 16 points, global


def _record(seed: int = 0, steps: int = 6) -> tuple[xr.Dataset, np.ndarray]:
    """A record with land (NaN at every step) and random gaps."""
    rng = np.random.default_rng(seed)
    land = np.zeros((LAT.size, LON.size), bool)
    land[2:5, 3:7] = True
    land[8:, 12:] = True
    values = rng.normal(290.0, 2.0, size=(steps, LAT.size, LON.size)).astype("float32")
    values[rng.random(values.shape) < 0.3] = np.nan
    values[:, land] = np.nan
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), values)},
        coords={"time": np.arange(steps), "lat": LAT, "lon": LON},
    )
    return ds, land


def _model(with_mask: bool = True) -> sparsediff.Model:
    model = make_model(
        ["sst"], ["lat", "lon"], [8, 8], mode="pixel", invalid_along="time", mean=290.0, std=2.0
    )
    if with_mask:
        ds, _ = _record()
        st = masks.states(ds, invalid_along="time")
        model.invalid = masks.grid_invalid(st, ["lat", "lon"], "time")
    return model


def _provenance(out: xr.Dataset) -> dict:
    return json.loads(out.attrs["sparsediff_fill"])


def test_the_training_mask_is_the_land_of_the_record() -> None:
    model = _model()
    _, land = _record()
    assert model.invalid is not None
    mask = model.invalid["sst"]
    assert mask.dims == ("lat", "lon")
    np.testing.assert_array_equal(mask.values, land)
    np.testing.assert_array_equal(mask["lon"].values, LON)


def test_one_month_fills_no_land() -> None:
    model = _model()
    ds, land = _record(1)
    month = ds.isel(time=slice(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the model knows its land: nothing to warn about
        out = sparsediff.fill(month, model, steps=2)
    flag = out["sst_fill_flag"].values[0]
    np.testing.assert_array_equal(flag == 2, land)
    assert np.isnan(out["sst"].values[0][land]).all()
    gaps = np.isnan(month["sst"].values[0]) & ~land
    assert gaps.sum() > 20
    assert (flag[gaps] == 1).all()
    assert np.isfinite(out["sst"].values[0][gaps]).all()
    assert _provenance(out)["invalid"] == "the model's training mask"


def test_without_a_mask_one_month_fills_its_land_and_says_so() -> None:
    """The old behaviour, now with a warning: nothing says which points are land."""
    model = _model(with_mask=False)
    ds, land = _record(1)
    with pytest.warns(
        SparsediffWarning, match=r"every missing point will be filled; pass invalid="
    ):
        out = sparsediff.fill(ds.isel(time=slice(2, 3)), model, steps=2)
    assert (out["sst_fill_flag"].values[0][land] == 1).all()
    assert "none: every missing point is a gap" in _provenance(out)["invalid"]


def test_a_sea_point_missing_in_every_month_is_still_a_gap() -> None:
    model = _model()
    ds, land = _record(2)
    three = ds.isel(time=slice(0, 3)).copy(deep=True)
    cloud = (slice(None), slice(6, 8), slice(0, 3))  # sea, missing in all three months
    three["sst"].values[cloud] = np.nan
    out = sparsediff.fill(three, model, steps=2)
    flag = out["sst_fill_flag"].values
    assert (flag[cloud] == 1).all()
    assert np.isfinite(out["sst"].values[cloud]).all()
    np.testing.assert_array_equal(flag[0] == 2, land)
    # without the model's mask the rule would have called the cloud land
    guessed = sparsediff.fill(three, _model(with_mask=False), steps=2)
    assert (guessed["sst_fill_flag"].values[cloud] == 2).all()
    assert "missing at every step along 'time'" in _provenance(guessed)["invalid"]


def test_a_value_observed_on_training_land_is_kept() -> None:
    model = _model()
    ds, land = _record(3)
    month = ds.isel(time=slice(0, 1)).copy(deep=True)
    month["sst"].values[0, 3, 4] = 291.5  # land in training, observed now
    out = sparsediff.fill(month, model, steps=2)
    assert out["sst_fill_flag"].values[0, 3, 4] == 0
    assert out["sst"].values[0, 3, 4] == np.float32(291.5)
    assert (out["sst_fill_flag"].values[0][land] == 2).sum() == land.sum() - 1


def test_the_mask_follows_the_coordinates_of_a_permuted_grid() -> None:
    model = _model()
    ds, land = _record(4)
    rolled = ds.isel(time=slice(0, 1)).roll(lon=5, roll_coords=True).isel(lat=slice(None, None, -1))
    out = sparsediff.fill(rolled, model, steps=2)
    expected = np.roll(land, 5, axis=1)[::-1]
    np.testing.assert_array_equal(out["sst_fill_flag"].values[0] == 2, expected)


def test_the_user_mask_wins_over_the_models() -> None:
    model = _model()
    ds, land = _record(5)
    user = xr.DataArray(np.zeros(land.shape, bool), dims=("lat", "lon"))
    user[0, 0] = True
    out = sparsediff.fill(ds.isel(time=slice(0, 1)), model, steps=2, invalid=user)
    flag = out["sst_fill_flag"].values[0]
    assert flag[0, 0] == 2
    assert (flag[land] == 1).all()  # the user said only (0, 0) is invalid
    assert _provenance(out)["invalid"] == "the invalid mask given"


def test_another_grid_falls_back_to_the_rule_and_says_why() -> None:
    model = _model()
    ds, _ = _record(6)
    other = ds.assign_coords(lat=LAT + 0.5)  # not the training grid
    out = sparsediff.fill(other, model, steps=2)
    note = _provenance(out)["invalid"]
    assert note.startswith("points missing at every step along 'time' (the model's rule;")
    assert "does not fit these data" in note


def test_invalid_below_and_along_options() -> None:
    model = _model()
    ds, land = _record(7)
    month = ds.isel(time=slice(0, 2)).copy(deep=True)
    month["sst"].values[:, 0, :] = 250.0  # "ice": at or below the threshold
    out = sparsediff.fill(month, model, steps=2, invalid_below=260.0)
    flag = out["sst_fill_flag"].values
    assert (flag[:, 0, :] == 2).all()
    assert (flag[:, land] == 2).all()
    assert "values <= 260" in _provenance(out)["invalid"]
    month["sst"].values[:, 0, :] = 290.0
    # invalid_along given explicitly adds the rule to the model's mask
    hole = (slice(None), slice(9, 11), slice(0, 2))
    month["sst"].values[hole] = np.nan
    along = sparsediff.fill(month, model, steps=2, invalid_along="time")
    assert (along["sst_fill_flag"].values[hole] == 2).all()
    default = sparsediff.fill(month, model, steps=2)
    assert (default["sst_fill_flag"].values[hole] == 1).all()


def test_cli_invalid_options(tmp_path: Path) -> None:
    model_dir = _model().save(tmp_path / "model")
    ds, land = _record(8)
    month = ds.isel(time=slice(0, 1)).copy(deep=True)
    month["sst"].values[0, 0, 0] = 250.0  # one point of "ice"
    month["mask"] = (("lat", "lon"), np.zeros(land.shape, np.int8))
    month["mask"].values[1, 1] = 1
    src = sparsediff.write(month, tmp_path / "in.nc")
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "fill",
            str(model_dir),
            str(src),
            str(tmp_path / "out.nc"),
            "--steps",
            "2",
            "--invalid",
            "mask",
            "--invalid-below",
            "260",
        ],
    )
    assert res.exit_code == 0, res.output
    flag = sparsediff.open(tmp_path / "out.nc")["sst_fill_flag"].values[0]
    assert flag[1, 1] == 2
    assert flag[0, 0] == 2
    assert not (flag[land] == 2).all()  # the given mask replaced the model's
    res = runner.invoke(
        main, ["fill", str(model_dir), str(src), str(tmp_path / "out2.nc"), "--steps", "2"]
    )
    assert res.exit_code == 0, res.output
    flag = sparsediff.open(tmp_path / "out2.nc")["sst_fill_flag"].values[0]
    np.testing.assert_array_equal(flag == 2, land)  # the model's mask by default


def test_the_mask_is_part_of_the_resume_fingerprint() -> None:
    from sparsediff.filling.store import fingerprint

    ds, _ = _record(9)
    with_mask = fingerprint(ds, _model(), {}, region_dim="time", region_size=1)
    without = fingerprint(ds, _model(with_mask=False), {}, region_dim="time", region_size=1)
    assert with_mask["model"] != without["model"]  # same weights, stats and spec otherwise
    assert with_mask["options"] == without["options"]
