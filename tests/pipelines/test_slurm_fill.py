"""pipelines/slurm/fill.sbatch runs as SLURM would run it (``srun`` a pass-through here):
one job fills the output; a second job (an array task) on the same output stops at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import sparsediff
from tests.filling.conftest import make_model
from tests.test_lock import _holder

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipelines" / "slurm" / "fill.sbatch"


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "sparsediff").write_text(f'#!/bin/sh\nexec {sys.executable} -m sparsediff "$@"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "SLURM_CPUS_PER_TASK": "1",
    }


def _job(tmp_path: Path) -> tuple[list[str], Path, np.ndarray]:
    """The model and input files, and the template's command line."""
    make_model(["v"], ["y", "x"], [8, 8], mean=20.0, std=5.0).save(tmp_path / "model")
    rng = np.random.default_rng(0)
    v = rng.normal(20.0, 5.0, (4, 10, 12)).astype("float32")
    v[rng.random(v.shape) < 0.3] = np.nan
    sparsediff.write(xr.Dataset({"v": (("time", "y", "x"), v)}), tmp_path / "in.zarr")
    out = tmp_path / "out.zarr"
    cmd = ["bash", str(SCRIPT), str(tmp_path / "model"), str(tmp_path / "in.zarr"), str(out)]
    return cmd, out, v


def test_a_second_job_on_the_output_of_a_running_one_stops_at_once(tmp_path: Path) -> None:
    cmd, out, _ = _job(tmp_path)
    env = _env(tmp_path)
    with _holder(out) as proc:  # another job is filling this output
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, res.stderr
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert lines == [line for line in lines if line.startswith("error: ")], res.stderr
        assert f"is being written by another run (pid {proc.pid} on host" in lines[-1]
        assert not out.exists()


@pytest.mark.slow
def test_the_sbatch_template_fills_its_output(tmp_path: Path) -> None:
    """Starts a local dask cluster (about 90 s on a busy 2-core machine)."""
    cmd, out, v = _job(tmp_path)
    env = _env(tmp_path)
    res = subprocess.run(
        [*cmd, "--steps", "2"], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    filled = xr.open_zarr(out)
    obs = np.isfinite(v)
    np.testing.assert_array_equal(filled["v"].values[obs], v[obs])
    assert np.isfinite(filled["v"].values).all()
