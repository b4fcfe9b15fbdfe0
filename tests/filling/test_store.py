"""Streaming fills to Zarr: resume after SIGKILL, schedulers, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import sparsediff
from sparsediff.cli import main
from sparsediff.data.sample_data import open_ostia
from sparsediff.errors import ConfigError, InputError
from sparsediff.filling.store import fill_to_zarr, fingerprint, partial_path, progress_path
from sparsediff.method.options import FillOptions
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


# --------------------------------------------------------------------------- every array


def _raw(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a store, coordinates included, as stored (no CF decoding)."""
    ds = xr.open_zarr(path, decode_cf=False)
    return {str(k): np.asarray(v.values) for k, v in ds.variables.items()}


def _decoded(path: Path) -> dict[str, np.ndarray]:
    """Every variable, coordinates included, CF-decoded (times as datetime64, NaT = NaT)."""
    ds = sparsediff.open(path)
    return {str(k): np.asarray(v.values) for k, v in ds.variables.items()}


def test_stream_keeps_every_coordinate(ostia_store: Path, model_dir: Path, tmp_path: Path) -> None:
    """Non-dimension coordinates (forecast_reference_time, forecast_period) survive a streamed
    fill with their values and attributes, as in the NetCDF output."""
    model = sparsediff.load(model_dir)
    src = sparsediff.open(ostia_store)
    assert "forecast_reference_time" in src.coords
    assert src["forecast_reference_time"].chunks is not None  # lazy: the case that was lost
    out = fill_to_zarr(src, model, tmp_path / "f.zarr", steps=2, seed=1, progress=False)
    nc = sparsediff.write(sparsediff.fill(src, model, steps=2, seed=1), tmp_path / "f.nc")
    streamed, eager = sparsediff.open(out), sparsediff.open(nc)
    assert set(streamed.variables) == set(eager.variables)
    for name in eager.variables:
        np.testing.assert_array_equal(streamed[name].values, eager[name].values, err_msg=name)
    for name in src.coords:
        if streamed[name].dtype.kind == "M":
            assert not np.isnat(streamed[name].values).any(), name
        np.testing.assert_array_equal(streamed[name].values, src[name].values, err_msg=name)
        assert streamed[name].attrs == src[name].attrs, name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xr.open_zarr(out)  # consolidated metadata: ecosystem defaults open it silently


def test_sigkill_at_a_random_point_then_resume_gives_every_array(
    ostia_store: Path, model_dir: Path, tmp_path: Path
) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    rng = np.random.default_rng(seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "sparsediff", "fill", str(model_dir), str(ostia_store)]
    opts = ["--steps", "48", "--seed", "5"]  # 12 regions of about 0.1 s each
    full = tmp_path / "full.zarr"
    subprocess.run([*base, str(full), *opts], check=True, env=env, cwd=ROOT)

    out = tmp_path / "killed.zarr"
    after_regions = int(rng.integers(0, 10))  # of 12: at least two are left to write
    extra = float(rng.uniform(0.0, 0.08))  # into the next region, or its record
    proc = subprocess.Popen([*base, str(out), *opts], env=env, cwd=ROOT)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            try:
                done = json.loads(progress_path(out).read_text())["done"]
            except (OSError, ValueError, KeyError):
                done = None
            if done is not None and len(done) >= after_regions:
                time.sleep(extra)
                break
            time.sleep(0.005)
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not finished, "the fill finished before it could be killed"
    assert not out.exists()
    subprocess.run([*base, str(out), *opts, "--resume"], check=True, env=env, cwd=ROOT)
    assert not partial_path(out).exists()
    assert not progress_path(out).exists()
    why = f"killed after {after_regions} regions + {extra:.3f} s (seed {seed})"
    for get in (_raw, _decoded):
        a, b = get(full), get(out)
        assert a.keys() == b.keys(), why
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{k}: {why}")


# --------------------------------------------------------------------------- resume checks


def _interrupted(src: xr.Dataset, model: sparsediff.Model, out: Path, **kw) -> dict:
    """Start a streamed fill and stop it after its second region, as a crash would."""

    def stop(r: int) -> None:
        if r == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fill_to_zarr(src, model, out, progress=False, on_region=stop, **kw)
    assert partial_path(out).exists()
    return json.loads(progress_path(out).read_text())


@pytest.fixture
def interrupted(ostia_store: Path, model_dir: Path, tmp_path: Path):
    model = sparsediff.load(model_dir)
    src = sparsediff.open(ostia_store)
    out = tmp_path / "r.zarr"
    record = _interrupted(src, model, out, steps=2, seed=3, region_size=2)
    assert record["done"] == [0, 1]
    return src, model, out, record


def _other_input(src: xr.Dataset) -> xr.Dataset:
    other = src.copy(deep=True).load()
    values = other["surface_temperature"].values
    j, i = np.argwhere(np.isfinite(values[5]))[0]
    values[5, j, i] = np.nan  # one more gap, in a month not written yet
    return other


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"seed": 4}, r"fill option 'seed' \(3 there, 4 now\)"),
        ({"members": 2}, r"fill option 'members' \(1 there, 2 now\)"),
        ({"steps": 3}, r"fill option 'steps' \(2 there, 3 now\)"),
        ({"region_size": 3}, r"region_size \(2 there, 3 now\)"),
        ({"input": "values"}, r"the input's values of 'surface_temperature'"),
        ({"input": "time"}, r"the input's coordinate 'time'"),
        (
            {"model": "other"},
            r"the model \(weights, statistics, climatology, invalid mask or spec\)",
        ),
    ],
    ids=["seed", "members", "steps", "region-size", "input-values", "input-coords", "model"],
)
def test_resume_refuses_any_difference(interrupted, change: dict, match: str) -> None:
    src, model, out, record = interrupted
    kw = {"steps": 2, "seed": 3, "region_size": 2}
    kw.update({k: v for k, v in change.items() if k not in ("input", "model")})
    if change.get("input") == "values":
        src = _other_input(src)
    elif change.get("input") == "time":
        src = src.assign_coords(time=src["time"] + np.timedelta64(1, "D"))
    if "model" in change:
        model = make_model(
            ["surface_temperature"],
            ["latitude", "longitude"],
            [16, 32],
            units={"surface_temperature": "K"},
            mean=300.0,
            std=2.0,
            seed=9,
        )
    before = sorted(p.relative_to(out.parent) for p in out.parent.rglob("*"))
    with pytest.raises(InputError, match=rf"^cannot resume .*r\.zarr: {match} differs") as err:
        fill_to_zarr(src, model, out, progress=False, resume=True, **kw)
    assert "\n" not in str(err.value)
    # nothing changed: the partial store and its record are as the interrupted run left them
    assert sorted(p.relative_to(out.parent) for p in out.parent.rglob("*")) == before
    assert json.loads(progress_path(out).read_text()) == record


def test_matching_resume_equals_an_uninterrupted_fill(interrupted, tmp_path: Path) -> None:
    src, model, out, _ = interrupted
    fill_to_zarr(src, model, out, progress=False, resume=True, steps=2, seed=3, region_size=2)
    full = fill_to_zarr(
        src, model, tmp_path / "u.zarr", progress=False, steps=2, seed=3, region_size=2
    )
    a, b = _raw(full), _raw(out)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # the same model saved and loaded has the same fingerprint as the one in memory
    assert (
        fingerprint(src.chunk({"time": 2}), model, {"seed": 3}, region_dim="time", region_size=2)[
            "model"
        ]
        == fingerprint(
            src.chunk({"time": 2}),
            sparsediff.load(model.save(tmp_path / "again")),
            {"seed": 3},
            region_dim="time",
            region_size=2,
        )["model"]
    )


def test_resume_with_options_given_as_an_object(interrupted, tmp_path: Path) -> None:
    """options=FillOptions(...) is the same job as the keywords: same record, resumable."""
    src, model, out, _ = interrupted
    chunked = src.chunk({"time": 2})
    by_object = fingerprint(
        chunked, model, {"options": FillOptions(steps=2, seed=3)}, region_dim="time", region_size=2
    )
    by_keywords = fingerprint(
        chunked, model, {"steps": 2, "seed": 3}, region_dim="time", region_size=2
    )
    assert by_object == by_keywords
    assert "options" not in by_object["options"]  # recorded field by field, as before
    assert by_object["options"]["steps"] == 2
    opts = FillOptions(steps=2, seed=3)
    fill_to_zarr(src, model, out, progress=False, resume=True, options=opts, region_size=2)
    with pytest.raises(ConfigError, match="seed given both"):
        fill_to_zarr(src, model, tmp_path / "x.zarr", progress=False, options=opts, seed=3)
    assert not (tmp_path / "x.zarr").exists()


def test_resume_of_a_record_without_fingerprint_is_refused(interrupted) -> None:
    src, model, out, record = interrupted
    progress_path(out).write_text(json.dumps({"done": record["done"]}))
    with pytest.raises(InputError, match="started by another sparsediff version"):
        fill_to_zarr(src, model, out, progress=False, resume=True, steps=2, seed=3, region_size=2)


# --------------------------------------------------------------------------- bad input, one line


def _one_line_error(args: list[str]) -> str:
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.strip().splitlines() if line]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_cli_existing_output_names_the_cli_flag(
    tmp_path: Path, model_dir: Path, ostia_store: Path, suffix: str
) -> None:
    target = tmp_path / f"o{suffix}"
    target.mkdir() if suffix == ".zarr" else target.write_text("old")
    line = _one_line_error(["fill", str(model_dir), str(ostia_store), str(target)])
    assert "already exists; pass --overwrite to replace it" in line
    assert "mode=" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_cli_region_size_zero(tmp_path: Path, model_dir: Path, ostia_store: Path) -> None:
    out = tmp_path / "o.zarr"
    line = _one_line_error(
        ["fill", str(model_dir), str(ostia_store), str(out), "--region-size", "0"]
    )
    assert "--region-size must be a positive integer, got 0" in line
    assert list(tmp_path.iterdir()) == []
    model = sparsediff.load(model_dir)
    with pytest.raises(InputError, match="region_size must be a positive integer"):
        fill_to_zarr(sparsediff.open(ostia_store), model, out, region_size=0)
    assert list(tmp_path.iterdir()) == []


def test_cli_negative_seed(tmp_path: Path, model_dir: Path, ostia_store: Path) -> None:
    out = tmp_path / "o.zarr"
    line = _one_line_error(["fill", str(model_dir), str(ostia_store), str(out), "--seed", "-1"])
    assert "seed must be a non-negative integer, got -1" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_cli_read_only_target_directory(
    readonly_dir: Path, model_dir: Path, ostia_store: Path, suffix: str
) -> None:
    line = _one_line_error(
        ["fill", str(model_dir), str(ostia_store), str(readonly_dir / "sub" / f"o{suffix}")]
    )
    assert "the directory is not writable" in line
    model = sparsediff.load(model_dir)
    with pytest.raises(InputError, match="not writable"):
        fill_to_zarr(sparsediff.open(ostia_store), model, readonly_dir / "o.zarr", steps=1)


def test_integer_variable_is_filled_as_float(tmp_path: Path) -> None:
    """An int16 variable (no fill value, gaps marked invalid or missing) fills into float32."""
    model = make_model(["counts"], ["y", "x"], [8, 8], mode="pixel", mean=50.0, std=20.0)
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 100, size=(4, 12, 12)).astype(np.int16)
    ds = xr.Dataset({"counts": (("t", "y", "x"), counts)}, coords={"t": np.arange(4)})
    invalid = xr.DataArray(np.zeros((12, 12), bool), dims=("y", "x"))
    invalid[:3, :3] = True
    path = sparsediff.write(ds, tmp_path / "in.nc")
    src = sparsediff.open(path)
    assert src["counts"].dtype == np.int16
    for out in (
        fill_to_zarr(src, model, tmp_path / "o.zarr", steps=2, invalid=invalid, progress=False),
        sparsediff.write(sparsediff.fill(src, model, steps=2, invalid=invalid), tmp_path / "o.nc"),
    ):
        got = sparsediff.open(out)["counts"]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.values[:, 3:, :], counts[:, 3:, :])  # observed, exact
        assert np.isnan(got.values[:, :3, :3]).all()  # invalid: NaN
        flag = sparsediff.open(out)["counts_fill_flag"].values
        assert (flag[:, :3, :3] == 2).all()
    assert not partial_path(tmp_path / "o.zarr").exists()


def test_cli_info_accepts_a_run_directory(model_dir: Path) -> None:
    res = CliRunner().invoke(main, ["info", str(model_dir.parent)])  # the directory holding model/
    assert res.exit_code == 0, res.output
    assert "surface_temperature" in res.output


def test_the_job_record_resolves_the_steps_and_keeps_old_records(interrupted) -> None:
    """Default steps are the model's spread steps in the record; a model with the old
    implicit 16 is recorded as before the field existed (an old job still resumes)."""
    import dataclasses

    src, model, _, _ = interrupted
    chunked = src.chunk({"time": 2})
    at16 = (
        model
        if model.spec.spread_steps == 16
        else dataclasses.replace(model, spec=model.spec.model_copy(update={"spread_steps": 16}))
    )
    at6 = dataclasses.replace(at16, spec=at16.spec.model_copy(update={"spread_steps": 6}))
    r16 = fingerprint(chunked, at16, {"seed": 3}, region_dim="time", region_size=2)
    r6 = fingerprint(chunked, at6, {"seed": 3}, region_dim="time", region_size=2)
    assert r16["options"]["steps"] == 16
    assert r6["options"]["steps"] == 6
    assert r16["options"]["calibrate"] == "validation"  # "auto" on a grid, as recorded before
    assert r16["model"] != r6["model"]
    explicit = fingerprint(chunked, at6, {"seed": 3, "steps": 6}, region_dim="time", region_size=2)
    assert explicit == r6
