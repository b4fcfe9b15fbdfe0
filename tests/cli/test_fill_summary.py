"""The CLI's fill ends with one counting line; ``info`` reports land as invalid."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import sparsediff
from sparsediff.cli import main

pytest.importorskip("iris_sample_data")

LINE = re.compile(r"^filled ([\d,]+) points, kept ([\d,]+) as observed, left ([\d,]+) invalid")


@pytest.fixture(scope="module")
def sst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sparsediff.data.sample_data import open_ostia

    ds = open_ostia().isel(time=slice(50, 52)).load()
    ds["surface_temperature"].values[0, 5:10, 100:140] = np.nan  # a cloud over sea
    path = tmp_path_factory.mktemp("cli") / "sst.nc"
    ds.to_netcdf(path)
    return path


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_fill_ends_with_the_counts_of_its_output(sst: Path, tmp_path: Path, suffix: str) -> None:
    from sparsediff.demo import DEMO_MODEL

    out = tmp_path / f"f{suffix}"
    res = CliRunner().invoke(main, ["fill", str(DEMO_MODEL), str(sst), str(out), "--steps", "1"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if LINE.match(ln)]
    assert len(lines) == 1, res.stderr
    got = [int(g.replace(",", "")) for g in LINE.match(lines[0]).groups()]  # type: ignore[union-attr]
    flag = sparsediff.open(out)["surface_temperature_fill_flag"].values
    assert got == [int((flag == 1).sum()), int((flag == 0).sum()), int((flag == 2).sum())]
    src = sparsediff.open(sst)["surface_temperature"].values
    land = np.isnan(src).all(axis=0)
    assert got[2] == 2 * int(land.sum()) > 0
    assert got[0] == int((np.isnan(src) & ~land).sum()) > 0  # the cloud, not the land
    assert res.stdout.strip().endswith(f"filled data written to {out}")


def test_info_reports_land_as_invalid(sst: Path) -> None:
    res = CliRunner().invoke(main, ["info", str(sst)])
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.stdout.splitlines() if ln.startswith("surface_temperature "))
    _, points, observed, gap, invalid, _ = row.split()
    assert int(points) == int(observed) + int(gap) + int(invalid)
    src = sparsediff.open(sst)["surface_temperature"].values
    land = 2 * int(np.isnan(src).all(axis=0).sum())
    assert int(invalid) == land > 0
    assert int(gap) == int(np.isnan(src).sum()) - land > 0  # the cloud over sea
