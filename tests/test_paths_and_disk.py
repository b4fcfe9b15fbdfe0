"""Paths and devices that used to give unclear errors: symlink loops, a full disk, a
model's config.json given for the model (issue 19)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import sparsediff
from sparsediff.cli import main
from sparsediff.errors import CheckpointError, InputError
from tests.filling.conftest import make_model


def _data(n: int = 3) -> xr.Dataset:
    rng = np.random.default_rng(0)
    v = rng.normal(20.0, 5.0, (n, 10, 12))
    v[rng.random(v.shape) < 0.3] = np.nan
    return xr.Dataset({"v": (("time", "y", "x"), v)}, coords={"time": np.arange(n)})


@pytest.fixture
def loop(tmp_path: Path) -> Path:
    """``loop/a -> b -> a``."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    return tmp_path


def test_a_symlink_loop_is_named_for_inputs_outputs_and_models(loop: Path) -> None:
    for call in (
        lambda: sparsediff.open(loop / "a"),
        lambda: sparsediff.write(_data(), loop / "a"),
        lambda: sparsediff.write(_data(), loop / "a" / "out.nc"),
        lambda: sparsediff.load(loop / "b"),
    ):
        with pytest.raises(InputError, match=r"is a loop of symbolic links") as err:
            call()
        assert f"{str(loop / 'a')!r}" in str(err.value) or f"{str(loop / 'b')!r}" in str(err.value)
    assert sorted(p.name for p in loop.iterdir()) == ["a", "b"]


@pytest.mark.parametrize("which", ["input", "output", "output-parent"])
def test_cli_fill_with_a_symlink_loop_is_one_line(loop: Path, which: str) -> None:
    make_model(["v"], ["y", "x"], [8, 8], mean=20.0, std=5.0).save(loop / "model")
    sparsediff.write(_data(), loop / "in.nc")
    paths = {"input": (loop / "a", loop / "o.nc"), "output": (loop / "in.nc", loop / "a")}
    inp, out = paths.get(which, (loop / "in.nc", loop / "a" / "o.nc"))
    res = CliRunner().invoke(main, ["fill", str(loop / "model"), str(inp), str(out), "--overwrite"])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "is a loop of symbolic links" in lines[0]


def test_a_models_config_json_given_as_the_model_names_its_directory(tmp_path: Path) -> None:
    make_model(["v"], ["y", "x"], [8, 8]).save(tmp_path / "model")
    with pytest.raises(
        CheckpointError, match=r"config\.json is a file; a model is the directory"
    ) as e:
        sparsediff.load(tmp_path / "model" / "config.json")
    assert f"pass {str(tmp_path / 'model')!r}" in str(e.value)
    with pytest.raises(CheckpointError, match=r"stats\.json is a file;.*pass"):
        sparsediff.load(tmp_path / "model" / "stats.json")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB file system (tmpfs; needs root, skipped elsewhere)."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr!r}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)  # lazy: a leaked handle


@pytest.mark.parametrize("name", ["out.nc", "out.zarr"])
def test_a_full_disk_is_said_and_nothing_is_left(small_disk: Path, name: str) -> None:
    big = _data(30)  # 30 x 10 x 12 x 8 bytes = 28 KiB per ... x 10 variables
    big = big.assign({f"w{i}": big["v"] + i for i in range(12)})
    with pytest.raises(InputError, match=r"the disk is full .*nothing was written") as err:
        sparsediff.write(big, small_disk / name)
    assert "\n" not in str(err.value)
    assert list(small_disk.iterdir()) == []
    small = _data(1)  # fits: written as usual
    sparsediff.write(small, small_disk / name)
    assert (small_disk / name).exists()
