"""The filled output keeps CF metadata: no CF issue its input did not have.

Checked with the IOOS compliance checker (suite ``cf:1.11``, offline: its
standard-name table ships with it) on NetCDF. The checker reads Zarr only
through netCDF-C's NCZarr, which loses 0-d variables and attribute types of
plain Zarr stores (it reports those as errors of the store), so a streamed
Zarr fill is checked as the NetCDF file of the same Dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.data.cf import cf_conventions
from sparsediff.filling.store import fill_to_zarr

SUITE = "cf:1.11"

# loading the checkers announces the deprecation of one we do not use
pytestmark = pytest.mark.filterwarnings("ignore:The ioos_sos checker is deprecated")


def cf_issues(path: Path, tmp_path: Path) -> set[str]:
    """High- and medium-priority findings of the CF checker, as 'section: message'."""
    runner = pytest.importorskip("compliance_checker.runner")
    runner.CheckSuite.load_all_available_checkers()
    report = tmp_path / f"{path.name}.json"
    runner.ComplianceChecker.run_checker(
        str(path),
        checker_names=[SUITE],
        verbose=0,
        criteria="normal",
        output_filename=str(report),
        output_format="json_new",
    )
    doc = json.loads(report.read_text())[str(path)][SUITE]
    found = set()
    for level in ("high_priorities", "medium_priorities"):
        for group in doc[level]:
            found.update(f"{group['name']}: {m}" for m in group["msgs"])
    return found


@pytest.fixture(scope="module")
def demo_model() -> sparsediff.Model:
    from sparsediff.demo import DEMO_MODEL

    return sparsediff.load(DEMO_MODEL)


@pytest.mark.parametrize("members", [1, 2])
def test_filled_netcdf_has_no_cf_issue_its_input_lacks(
    ostia_path: Path, demo_model: sparsediff.Model, tmp_path: Path, members: int
) -> None:
    src = sparsediff.open(ostia_path).isel(time=slice(0, 3))
    filled = sparsediff.fill(src, demo_model, steps=2, members=members)
    out = sparsediff.write(filled, tmp_path / "filled.nc")
    before = cf_issues(ostia_path, tmp_path)
    after = cf_issues(out, tmp_path)
    assert after - before == set()
    # the specifics the issue named
    back = xr.open_dataset(out, decode_times=False)
    for name in ("latitude", "longitude", "time"):
        assert back[name].attrs["standard_name"] == name
        assert "_FillValue" not in back[name].attrs
    assert back["latitude"].attrs["units"] == "degrees_north"
    assert back.attrs["Conventions"] == "CF-1.9"
    if members > 1:
        assert back["member"].attrs["long_name"] == "ensemble member"
    back.close()


def test_streamed_zarr_fill_has_no_cf_issue_its_input_lacks(
    ostia_path: Path, demo_model: sparsediff.Model, tmp_path: Path
) -> None:
    src = sparsediff.open(ostia_path).isel(time=slice(0, 3))
    store = fill_to_zarr(src, demo_model, tmp_path / "f.zarr", steps=2, members=2, progress=False)
    streamed = sparsediff.open(store)
    for name in src.coords:
        assert streamed[name].attrs == src[name].attrs, name
        np.testing.assert_array_equal(streamed[name].values, src[name].values, err_msg=name)
    out = sparsediff.write(streamed, tmp_path / "streamed.nc")
    assert cf_issues(out, tmp_path) - cf_issues(ostia_path, tmp_path) == set()


def test_coordinate_attributes_survive_fill_with_an_invalid_mask(
    ostia: xr.Dataset, demo_model: sparsediff.Model
) -> None:
    """The land mask (points missing at every time) used to strip every coordinate's attrs."""
    out = sparsediff.fill(ostia.isel(time=slice(0, 2)), demo_model, steps=1)
    for name in ostia.coords:
        assert out[name].attrs == ostia[name].attrs, name
    flag = out["surface_temperature_fill_flag"]
    assert (flag.values == 2).any()  # the land is there
    assert flag["latitude"].attrs == ostia["latitude"].attrs


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, "CF-1.9"),
        ("CF-1.5", "CF-1.9"),
        ("CF-1.6 ACDD-1.3", "CF-1.9 ACDD-1.3"),
        ("ACDD-1.3, CF-1.8", "ACDD-1.3, CF-1.9"),
        ("CF-1.10", "CF-1.10"),
        ("CF-1.11, ACDD-1.3", "CF-1.11, ACDD-1.3"),
        ("COARDS", "CF-1.9 COARDS"),
        (b"CF-1.4", "CF-1.9"),
    ],
)
def test_conventions_name_cf_1_9_or_later(before: object, after: str) -> None:
    assert cf_conventions(before) == after
