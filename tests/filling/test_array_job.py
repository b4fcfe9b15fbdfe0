"""HPC array jobs (sparsediff.filling.array_job): an init step, then concurrent tasks that
each fill their range of steps into the one store; the bytes equal one single fill."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.errors import InputError
from sparsediff.filling.array_job import fill_region, init_store, missing_ranges
from sparsediff.filling.store import fill_to_zarr
from tests.filling.conftest import make_model
from tests.pipelines.test_slurm_fill import _env
from tests.test_lock import _holder

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "pipelines" / "slurm" / "fill_array.sbatch"
MODEL = make_model(
    ["v"], ["y", "x"], [8, 8], mean=20.0, std=5.0, context_dim="time", context_offsets=[-1, 1]
)


def _data(n: int = 5) -> xr.Dataset:
    rng = np.random.default_rng(0)
    v = rng.normal(20.0, 5.0, (n, 10, 12)).astype("float32")
    v[rng.random(v.shape) < 0.3] = np.nan
    return xr.Dataset(
        {"v": (("time", "y", "x"), v, {"units": "K"})},
        coords={"time": np.arange(n), "y": np.arange(10.0), "x": np.arange(12.0)},
    )


def _assert_same_store(a: Path, b: Path) -> None:
    x, y = xr.open_zarr(a), xr.open_zarr(b)
    assert sorted(x.variables) == sorted(y.variables)
    for name in x.variables:
        assert x[name].dtype == y[name].dtype, name
        np.testing.assert_array_equal(x[name].values, y[name].values, err_msg=str(name))
        assert x[name].attrs == y[name].attrs, name
    stamp = ("history", "sparsediff_fill")
    assert {k: v for k, v in x.attrs.items() if k not in stamp} == {
        k: v for k, v in y.attrs.items() if k not in stamp
    }
    fx, fy = json.loads(x.attrs["sparsediff_fill"]), json.loads(y.attrs["sparsediff_fill"])
    fx.pop("filled_at")
    fy.pop("filled_at")
    assert fx == fy


def test_concurrent_array_tasks_of_the_slurm_template_write_the_bytes_of_one_fill(
    tmp_path: Path,
) -> None:
    """pipelines/slurm/fill_array.sbatch as SLURM runs it (``srun`` a pass-through): the
    init, then three tasks at once (the CLI's --init and --region), against one CLI fill."""
    MODEL.save(tmp_path / "model")
    sparsediff.write(_data(), tmp_path / "in.nc")
    paths = [str(tmp_path / "model"), str(tmp_path / "in.nc")]
    opts = ["--region-size", "2", "--steps", "2", "--members", "2", "--device", "cpu"]
    env = {**_env(tmp_path), "STEPS_PER_TASK": "2", "SLURM_CPUS_PER_TASK": "1"}

    def job(mode: str, task: int = 0) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", str(TEMPLATE), mode, *paths, str(out), *opts],
            env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    out = tmp_path / "out.zarr"
    init = job("init")
    assert init.wait(timeout=300) == 0, init.communicate()
    assert missing_ranges(out, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    tasks = [job("task", i) for i in (2, 0, 1)]  # steps 4:6 (clipped to 4:5), 0:2, 2:4
    for t in tasks:
        assert t.wait(timeout=300) == 0, t.communicate()
    assert missing_ranges(out, 2) == []
    single = subprocess.run(
        [sys.executable, "-m", "sparsediff", "fill", *paths, str(tmp_path / "single.zarr"), *opts],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr
    _assert_same_store(out, tmp_path / "single.zarr")


def test_tasks_refuse_what_does_not_fit_the_init(tmp_path: Path) -> None:
    ds, out = _data(), tmp_path / "out.zarr"
    kw = {"steps": 1, "region_size": 2}
    with pytest.raises(InputError, match=r"not an initialised array-job store .*--init"):
        fill_region(ds, MODEL, out, slice(0, 2), **kw)
    init_store(ds, MODEL, out, **kw)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError, match=r"time=1:3 does not start and end on region boundaries"):
        fill_region(ds, MODEL, out, slice(1, 3), **kw)
    with pytest.raises(
        InputError, match=r"fill option 'seed' \(0 there, 4 now\) differs from the init"
    ):
        fill_region(ds, MODEL, out, slice(0, 2), seed=4, **kw)
    with pytest.raises(InputError, match=r"region_size \(2 there, 1 now\) differs from the init"):
        fill_region(ds, MODEL, out, slice(0, 2), steps=1, region_size=1)
    with pytest.raises(InputError, match=r"the input's values of 'v' differs from the init"):
        fill_region(ds + 1, MODEL, out, slice(0, 2), **kw)
    busy = r"being written by another run \(pid \d+ "
    with _holder(out.with_name("out.zarr.0-2")), pytest.raises(InputError, match=busy):
        fill_region(ds, MODEL, out, slice(0, 2), **kw)  # the same range, running elsewhere
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert missing_ranges(out, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    fill_region(ds, MODEL, out, slice(2, 4), **kw)
    assert missing_ranges(out, 2) == [slice(0, 2), slice(4, 5)]
    assert missing_ranges(out) == missing_ranges(out, 2)  # the job's region size
    assert missing_ranges(out, 1) == [slice(0, 1), slice(1, 2), slice(4, 5)]
    part = xr.open_zarr(out)["v"].values
    assert np.isfinite(part[2:4]).all()
    assert np.isnan(part[[0, 1, 4]]).all()  # not written yet
    with pytest.raises(InputError, match="already exists"):
        init_store(ds, MODEL, out, **kw)
    fill_to_zarr(ds, MODEL, tmp_path / "single.zarr", progress=False, **kw)
    for sl in (slice(0, 2), slice(4, 5)):
        fill_region(ds, MODEL, out, sl, **kw)
    _assert_same_store(out, tmp_path / "single.zarr")
