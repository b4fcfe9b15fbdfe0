"""Streaming fills to Zarr: resume after SIGKILL, schedulers, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import sparsediff
from sparsediff.cli import main
from sparsediff.data.sample_data import open_ostia
from sparsediff.filling.store import fill_to_zarr, partial_path, progress_path
from tests.filling.conftest import make_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ostia_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 months of real OSTIA SST with extra holes, as a Zarr store."""
    ds = open_ostia().isel(time=slice(0, 12), longitude=slice(0, 96)).load()
    rng = np.random.default_rng(0)
    sst = ds["surface_temperature"].values
    sst[rng.random(sst.shape) < 0.2] = np.nan
    ds["surface_temperature"].values[:] = sst
    path = tmp_path_factory.mktemp("data") / "ostia.zarr"
    sparsediff.write(ds, path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = make_model(
        ["surface_temperature"],
        ["latitude", "longitude"],
        [16, 32],
        units={"surface_temperature": "K"},
        mean=300.0,
        std=2.0,
    )
    return model.save(tmp_path_factory.mktemp("m") / "model")


def _arrays(path: Path) -> dict[str, np.ndarray]:
    ds = sparsediff.open(path)
    return {str(v): ds[v].values for v in ds.data_vars}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_stream_matches_in_memory_fill_and_keeps_observed(
    ostia_store: Path, model_dir: Path, tmp_path: Path
) -> None:
    model = sparsediff.load(model_dir)
    src = sparsediff.open(ostia_store)
    out = fill_to_zarr(src, model, tmp_path / "f.zarr", steps=3, seed=2, progress=False)
    eager = sparsediff.fill(src.load(), model, steps=3, seed=2)
    got = sparsediff.open(out)
    np.testing.assert_array_equal(
        got["surface_temperature"].values, eager["surface_temperature"].values
    )
    obs = np.isfinite(src["surface_temperature"].values)
    np.testing.assert_array_equal(
        got["surface_temperature"].values[obs], src["surface_temperature"].values[obs]
    )
    assert got.attrs["history"].count("sparsediff") == src.attrs["history"].count("sparsediff") + 1
    assert not partial_path(out).exists()
    assert not progress_path(out).exists()


def test_sigkill_then_resume_writes_the_same_bytes(
    ostia_store: Path, model_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "sparsediff", "fill", str(model_dir), str(ostia_store)]
    opts = ["--steps", "24", "--seed", "7"]
    subprocess.run([*base, str(tmp_path / "full.zarr"), *opts], check=True, env=env, cwd=ROOT)

    out = tmp_path / "killed.zarr"
    progress = progress_path(out)
    proc = subprocess.Popen([*base, str(out), *opts], env=env, cwd=ROOT)
    killed = False
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if progress.exists():
                try:
                    done = json.loads(progress.read_text())["done"]
                except (json.JSONDecodeError, KeyError):
                    done = []
                if len(done) >= 3:
                    proc.send_signal(signal.SIGKILL)
                    killed = True
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and not killed:
            proc.kill()
        proc.wait()
    assert killed, "the fill finished before it could be killed"
    # an interrupted fill never leaves a store that looks complete
    assert not out.exists()
    assert partial_path(out).exists()
    subprocess.run([*base, str(out), *opts, "--resume"], check=True, env=env, cwd=ROOT)
    _same(_arrays(tmp_path / "full.zarr"), _arrays(out))


def test_threaded_and_local_cluster_give_the_same_bytes(ostia_store: Path, model_dir: Path) -> None:
    from dask.distributed import Client, LocalCluster

    model = sparsediff.load(model_dir)
    src = sparsediff.open(ostia_store).chunk({"time": 2})
    threaded = sparsediff.fill(src, model, steps=3, seed=4).compute(scheduler="threads")
    other_chunks = sparsediff.fill(src.chunk({"time": 5}), model, steps=3, seed=4).compute()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        distributed = sparsediff.fill(src, model, steps=3, seed=4).compute()
    for v in ("surface_temperature", "surface_temperature_fill_flag"):
        np.testing.assert_array_equal(threaded[v].values, distributed[v].values)
        np.testing.assert_array_equal(threaded[v].values, other_chunks[v].values)


def test_cli_errors_are_one_line(tmp_path: Path, model_dir: Path, ostia_store: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        main, ["fill", str(model_dir), str(tmp_path / "missing.nc"), str(tmp_path / "o.zarr")]
    )
    assert res.exit_code != 0
    lines = [line for line in res.output.strip().splitlines() if line]
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert "missing.nc" in lines[0]
    res = runner.invoke(
        main, ["fill", str(tmp_path / "nomodel"), str(ostia_store), str(tmp_path / "o.zarr")]
    )
    assert res.exit_code != 0
    assert "config.json" in res.output
    assert not (tmp_path / "o.zarr").exists()


def test_cli_info_describes_model_and_dataset(model_dir: Path, ostia_store: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["info", str(model_dir)])
    assert res.exit_code == 0, res.output
    assert "surface_temperature" in res.output
    assert "parameters" in res.output
    res = runner.invoke(main, ["info", str(ostia_store)])
    assert res.exit_code == 0, res.output
    assert "gap" in res.output
