"""sparsediff.evaluate, the held-out gaps it scores on, and `sparsediff evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from click.testing import CliRunner

from sparsediff.cli import main
from sparsediff.data.sample_data import mni152_invalid
from sparsediff.errors import ConfigError, InputError
from sparsediff.evaluation.evaluate import evaluate
from sparsediff.evaluation.holdout import make_holdout
from tests.evaluation.conftest import DIMS

torch.set_num_threads(1)


# --------------------------------------------------------------------------- holdout


def test_holdout_hides_only_observed_points(ostia: xr.Dataset) -> None:
    sst = ostia["surface_temperature"]
    land = sst.isnull().all("time")
    gappy, held = make_holdout(ostia, "boxes:0.3", dims=DIMS, seed=1, invalid_along="time")
    h = held["surface_temperature"]
    assert h.dtype == bool
    assert h.dims == sst.dims
    observed = sst.notnull()
    # only observed points are hidden: never land, never an existing gap
    assert not bool((h & ~observed).any())
    assert not bool((h & land).any())
    g = gappy["surface_temperature"]
    # gappy = original with exactly the held points removed
    np.testing.assert_array_equal(g.isnull().values, (sst.isnull() | h).values)
    xr.testing.assert_identical(g.where(~h), sst.where(~h))
    assert g.attrs == sst.attrs
    share = float(h.sum() / observed.sum())
    assert 0.25 < share < 0.35, share


def test_holdout_is_keyed_by_seed_and_time_index(ostia: xr.Dataset) -> None:
    _, a = make_holdout(ostia, "cloud:0.4", dims=DIMS, seed=5)
    _, b = make_holdout(ostia, "cloud:0.4", dims=DIMS, seed=5)
    _, c = make_holdout(ostia, "cloud:0.4", dims=DIMS, seed=6)
    xr.testing.assert_identical(a, b)
    assert not a["surface_temperature"].equals(c["surface_temperature"])
    # the slices differ from one time step to the next
    m = a["surface_temperature"]
    assert not m.isel(time=0).equals(m.isel(time=1))
    # a region draws the same pattern for a time step as the whole record did, nothing outside
    _, r = make_holdout(ostia, "cloud:0.4", dims=DIMS, seed=5, region={"time": slice(6, 12)})
    rm = r["surface_temperature"]
    assert not bool(rm.isel(time=slice(0, 6)).any())
    xr.testing.assert_equal(rm.isel(time=slice(6, 12)), m.isel(time=slice(6, 12)))


def test_holdout_never_hides_a_point_at_every_time(ostia: xr.Dataset) -> None:
    short = ostia.isel(time=slice(0, 3))
    sst = short["surface_temperature"]
    ever = sst.notnull().any("time")
    gappy, _ = make_holdout(short, "mcar:0.9", dims=DIMS, seed=0)
    left = gappy["surface_temperature"].notnull().any("time")
    xr.testing.assert_equal(left, ever)
    unprotected, _ = make_holdout(short, "mcar:0.9", dims=DIMS, seed=0, protect_along=None)
    assert int((ever & ~unprotected["surface_temperature"].notnull().any("time")).sum()) > 100


def test_holdout_dataarray_and_bad_specs(ostia: xr.Dataset) -> None:
    sst = ostia["surface_temperature"]
    gappy, held = make_holdout(sst, ("mcar", 0.2), dims=DIMS, seed=0)
    assert isinstance(gappy, xr.DataArray)
    assert isinstance(held, xr.DataArray)
    assert gappy.name == held.name == "surface_temperature"
    with pytest.raises(InputError, match="unknown gap pattern 'holes'"):
        make_holdout(ostia, "holes:0.3", dims=DIMS)
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        make_holdout(ostia, "boxes:1.2", dims=DIMS)
    with pytest.raises(InputError, match="'depth'"):
        make_holdout(ostia, "boxes:0.3", dims=("latitude", "depth"))
    with pytest.raises(InputError, match="region names dim 'level'"):
        make_holdout(ostia, "boxes:0.3", dims=DIMS, region={"level": slice(0, 2)})


# --------------------------------------------------------------------------- evaluate


def test_evaluate_scores_every_method_on_held_out_points(
    trained: dict[str, Any], ostia_eval: xr.Dataset, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    table = evaluate(
        ostia_eval,
        trained["latent"],
        models={"pixel": trained["pixel"]},
        members=3,
        steps=4,
        region={"time": slice(18, 24)},
        out=out,
    )
    methods = ["sparsediff", "pixel", "time_mean", "linear", "laplace", "laplace_eof", "dineof"]
    assert list(table["method"]) == methods
    assert list(table["kind"]) == ["model"] * 2 + ["baseline"] * 5
    scores = ["rmse", "mae", "bias", "crps", "spectrum_score", "seconds"]
    assert np.isfinite(table[scores].to_numpy()).all()
    assert (table["rmse"] > 0).all()
    assert (table["rmse"] >= table["mae"]).all()
    ens = table["kind"] == "model"
    assert np.isfinite(table.loc[ens, "spread_skill"]).all()
    assert table.loc[~ens, "spread_skill"].isna().all()
    # the CRPS of a deterministic fill is its MAE; an ensemble's CRPS is below its mean's MAE
    np.testing.assert_allclose(table.loc[~ens, "crps"], table.loc[~ens, "mae"], rtol=1e-12)
    assert (table.loc[ens, "crps"] < table.loc[ens, "mae"]).all()
    assert "psnr" not in table  # 2 spatial dims: no image metrics
    # scored on the held-out points of the region only: ~30% of 6 months of sea points
    sea = int(ostia_eval["surface_temperature"].isel(time=slice(18, 24)).notnull().sum())
    assert 0.25 * sea < table["n_points"].iloc[0] < 0.35 * sea
    # the outputs
    written = pd.read_csv(out / "scores.csv")
    pd.testing.assert_frame_equal(written, table, check_exact=False)
    for name in ("example_fill.png", "rmse_by_method.png"):
        assert (out / name).stat().st_size > 10_000
    assert table.attrs["holdout"] == "boxes:0.3"
    assert table.attrs["region"] == {"time": [18, 24]}


def test_evaluate_is_deterministic(trained: dict[str, Any], ostia_eval: xr.Dataset) -> None:
    small = ostia_eval.isel(time=slice(18, 24))
    kw: dict[str, Any] = {"members": 2, "steps": 3, "baselines": ("linear",), "seed": 4}
    a = evaluate(small, trained["latent"], **kw).drop(columns="seconds")
    b = evaluate(small, trained["latent"], **kw).drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b)
    c = evaluate(small, trained["latent"], **{**kw, "seed": 5}).drop(columns="seconds")
    assert not np.allclose(a["rmse"], c["rmse"])


def test_evaluate_volume_baselines_only(mni_small: xr.Dataset) -> None:
    vol = mni_small.isel(z=slice(0, 16), y=slice(0, 24), x=slice(0, 24))
    invalid = mni152_invalid(vol)
    table = evaluate(vol, dims=("z", "y", "x"), holdout="boxes:0.2", invalid=invalid, seed=0)
    assert list(table["method"]) == ["linear", "laplace"]
    notes = " ".join(table.attrs["notes"])
    assert "time_mean" in notes
    assert "dineof" in notes
    assert np.isfinite(table[["rmse", "crps", "psnr", "ssim", "spectrum_score"]].to_numpy()).all()
    assert (table["ssim"] <= 1).all()
    assert (table["psnr"] > 10).all()


def test_bad_input_fails_before_writing(
    trained: dict[str, Any], ostia_eval: xr.Dataset, tmp_path: Path
) -> None:
    out = tmp_path / "never"
    with pytest.raises(InputError, match="gap pattern"):
        evaluate(ostia_eval, trained["latent"], holdout="blobs:0.3", out=out)
    with pytest.raises(ConfigError, match="unknown baseline 'kriging'"):
        evaluate(ostia_eval, trained["latent"], baselines=("linear", "kriging"), out=out)
    with pytest.raises(ConfigError, match="members"):
        evaluate(ostia_eval, trained["latent"], members=0, out=out)
    with pytest.raises(InputError, match="nothing to evaluate"):
        evaluate(ostia_eval, baselines=(), dims=DIMS, out=out)
    with pytest.raises(InputError, match="region names dim 'depth'"):
        evaluate(ostia_eval, trained["latent"], region={"depth": slice(0, 1)}, out=out)
    assert not out.exists()


# --------------------------------------------------------------------------- CLI


def test_cli_evaluate_prints_the_table(
    trained: dict[str, Any], ostia_eval: xr.Dataset, tmp_path: Path
) -> None:
    path = tmp_path / "sst.nc"
    ostia_eval.isel(time=slice(18, 24)).to_netcdf(path)
    out = tmp_path / "cli_eval"
    args = [
        "evaluate",
        str(trained["path"]),
        str(path),
        "--members",
        "2",
        "--steps",
        "3",
        "--baselines",
        "linear,laplace",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.split()[:2] == ["variable", "method"])
    assert "rmse" in header.split()
    assert "crps" in header.split()
    for method in ("sparsediff", "linear", "laplace"):
        assert any(method in line.split() for line in lines), method
    assert (out / "scores.csv").is_file()


def test_cli_evaluate_bad_holdout_is_one_line(trained: dict[str, Any], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["evaluate", str(trained["path"]), str(tmp_path / "x.nc"), "--holdout", "boxes"]
    )
    assert result.exit_code != 0
    assert result.stdout == ""
    err = result.stderr.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error:")
    assert "boxes" in err[0]
