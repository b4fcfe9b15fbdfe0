"""Malformed input, one case per kind: one clear line, a non-zero exit, nothing written.

Every CLI case runs the real command line (click's runner, in process; two cases in a
real subprocess) against real files, and checks that

* the exit code is not 0,
* stderr holds exactly one line, ``error: ...``, matching the expected message,
* there is no traceback anywhere in the output,
* nothing under the working directory was created, removed or changed (every file's
  bytes are compared before and after; a partial store of an interrupted fill included).

API cases check the exception type, its one-line message and the same snapshot.
The reliability page (docs/reliability.md) lists these cases with what the user sees.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from click.testing import CliRunner

import sparsediff
from sparsediff.cli import main
from sparsediff.errors import (
    CheckpointError,
    CompatibilityError,
    ConfigError,
    InputError,
    SparsediffError,
)
from sparsediff.filling.store import fill_to_zarr, partial_path
from tests.filling.conftest import make_model
from tests.training.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
LAT = np.arange(-55.0, 56.0, 10.0)  # 12 points
LON = np.arange(0.0, 360.0, 15.0)  # 24 points, global


def _dataset(seed: int = 0, *, units: str | None = "K", offset: float = 0.0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    values = rng.normal(300.0, 2.0, size=(4, LAT.size, LON.size)).astype("float32") + offset
    values[rng.random(values.shape) < 0.3] = np.nan
    values[:, 2:4, 5:8] = np.nan  # land
    attrs = {"units": units} if units else {}
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), values, attrs)},
        coords={"time": np.arange(4), "lat": LAT, "lon": LON},
    )


def _model(**kw: Any) -> sparsediff.Model:
    return make_model(
        ["sst"],
        ["lat", "lon"],
        [8, 8],
        mode="pixel",
        units={"sst": "K"},
        mean=300.0,
        std=2.0,
        invalid_along="time",
        **kw,
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working directory: data, a model, a model with a climatology, a config."""
    sparsediff.write(_dataset(), tmp_path / "in.nc")
    _model().save(tmp_path / "model")
    clim_model = _model(climatology_dim="time")
    clim_model.climatology = {
        "sst": xr.DataArray(
            np.full((LAT.size, LON.size), 300.0),
            dims=("lat", "lon"),
            coords={"lat": LAT, "lon": LON},
        )
    }
    clim_model.stats = make_model(["sst"], ["lat", "lon"], [8, 8], mean=0.0, std=2.0).stats
    clim_model.save(tmp_path / "clim_model")
    (tmp_path / "out").mkdir()
    return tmp_path


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with the SHA-256 of its bytes (directories as 'dir')."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _cli_fails(root: Path, args: list[str], match: str) -> str:
    """Run the CLI; check one matching error line, no traceback, nothing changed."""
    assert isinstance(args, list), args
    before = _snapshot(root)
    res = CliRunner().invoke(main, args)
    assert res.exit_code not in (0, None), res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert _snapshot(root) == before, "the command changed files"
    return lines[0]


def _fill(work: Path, *extra: str, model: str = "model", data: str = "in.nc") -> list[str]:
    return ["fill", str(work / model), str(work / data), str(work / "out" / "f.nc"), *extra]


# --------------------------------------------------------------------------- CLI: fill


def _write(work: Path, name: str, ds: xr.Dataset) -> None:
    sparsediff.write(ds, work / name)


def _edit_config(work: Path, edit: Callable[[dict], None], model: str = "model") -> None:
    path = work / model / "config.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _then(*steps: Any) -> Any:
    """The last of ``steps`` (the earlier ones are set-up done for their effect)."""
    return steps[-1]


FILL_CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "input-missing": (
        lambda w: _fill(w, data="nope.nc"),
        r"nope\.nc",
    ),
    "input-unknown-format": (
        lambda w: _then((w / "notes.txt").write_text("hi"), _fill(w, data="notes.txt")),
        r"notes\.txt",
    ),
    "model-missing": (
        lambda w: _fill(w, model="nomodel"),
        r"nomodel is not a sparsediff model directory \(no config\.json\)",
    ),
    "model-dir-two-levels-up": (
        lambda w: _then(
            shutil.copytree(w / "model", w / "runs" / "demo" / "model"), _fill(w, model="runs")
        ),
        r"runs is not a sparsediff model directory .*did you mean '.*runs/demo/model'\?",
    ),
    "config-json-is-a-list": (
        lambda w: _then((w / "model" / "config.json").write_text("[1, 2]"), _fill(w)),
        r"holds a JSON list, not a sparsediff model description",
    ),
    "config-json-not-json": (
        lambda w: _then((w / "model" / "config.json").write_text("{oops"), _fill(w)),
        r"config\.json is not valid JSON",
    ),
    "format-version": (
        lambda w: _edit_config(w, lambda d: d.update(format_version=99)) or _fill(w),
        r"model format version 99; this sparsediff reads version 2",
    ),
    "absurd-widths-65536": (
        lambda w: (
            _edit_config(
                w, lambda d: d["prior"]["config"]["backbone"].update(widths=[65536, 65536])
            )
            or _fill(w)
        ),
        r"backbone\.widths = 65536 is outside \[0, 4096\]",
    ),
    "tampered-stats": (
        lambda w: _then(
            (w / "model" / "stats.json").write_text(
                (w / "model" / "stats.json").read_text().replace('"mean": 300.0', '"mean": 340.0')
            ),
            _fill(w),
        ),
        r"stats\.json does not match the checksum in config\.json",
    ),
    "tampered-weights": (
        lambda w: _flip_last_byte(w / "model" / "prior.safetensors") or _fill(w),
        r"prior\.safetensors does not match the checksum",
    ),
    "no-trained-prior": (
        lambda w: _edit_config(w, lambda d: d.update(prior=None)) or _fill(w),
        r"this pixel model has no trained prior; train all its stages before filling",
    ),
    "output-exists-nc": (
        lambda w: _then((w / "out" / "f.nc").write_text("old"), _fill(w)),
        r"f\.nc already exists; pass --overwrite to replace it$",
    ),
    "output-exists-zarr": (
        lambda w: (
            (w / "out" / "f.zarr").mkdir()
            or ["fill", str(w / "model"), str(w / "in.nc"), str(w / "out" / "f.zarr")]
        ),
        r"f\.zarr already exists; pass --overwrite to replace it$",
    ),
    "region-size-0": (
        lambda w: _fill(w, "--region-size", "0"),
        r"--region-size must be a positive",
    ),
    "seed-negative": (lambda w: _fill(w, "--seed", "-1"), r"seed must be a non-negative integer"),
    "seed-not-a-number": (lambda w: _fill(w, "--seed", "abc"), r"'abc' is not a valid integer"),
    "members-0": (lambda w: _fill(w, "--members", "0"), r"members must be >= 1, got 0"),
    "steps-0": (lambda w: _fill(w, "--steps", "0"), r"steps must be >= 1, got 0"),
    "batch-size-0": (lambda w: _fill(w, "--batch-size", "0"), r"batch_size must be >= 1, got 0"),
    "unknown-sampler": (lambda w: _fill(w, "--sampler", "magic"), r"unknown sampler 'magic'"),
    "negative-guidance": (lambda w: _fill(w, "--guidance", "-1"), r"guidance must be >= 0"),
    "device-tpu": (lambda w: _fill(w, "--device", "tpu"), r"unknown device 'tpu'; use auto, cpu"),
    "threads-0": (lambda w: _fill(w, "--threads", "0"), r"--threads must be a positive integer"),
    "missing-variable": (
        lambda w: (
            _write(w, "other.nc", _dataset().rename({"sst": "t2m"})) or _fill(w, data="other.nc")
        ),
        r"the model fills \['sst'\] but the data lacks \['sst'\]",
    ),
    "missing-dim": (
        lambda w: (
            _write(w, "other.nc", _dataset().rename({"lon": "x"})) or _fill(w, data="other.nc")
        ),
        r"has dims \['time', 'lat', 'x'\] \(missing \['lon'\]\); rename dims",
    ),
    "units-differ": (
        lambda w: (
            _write(w, "other.nc", _dataset(units="degC", offset=-273.15))
            or _fill(w, data="other.nc")
        ),
        r"'sst' is in 'degC' but the model was trained on 'K'",
    ),
    "celsius-without-units": (
        lambda w: (
            _write(w, "other.nc", _dataset(units=None, offset=-273.15)) or _fill(w, data="other.nc")
        ),
        r"lie 137 training standard deviations.*another unit or scale.*--no-value-check",
    ),
    "grid-shifted-half-a-cell": (
        lambda w: (
            _write(w, "other.nc", _dataset().assign_coords(lon=LON + 7.5))
            or _fill(w, model="clim_model", data="other.nc")
        ),
        r"the data's 'lon' = 7\.5 is not on the grid of the climatology of 'sst'",
    ),
    "all-nan-variable": (
        lambda w: (
            _write(w, "other.nc", _dataset().assign(sst=lambda d: d["sst"] * np.nan))
            or _fill(w, data="other.nc")
        ),
        r"variable 'sst' has no finite value",
    ),
    "invalid-mask-unknown": (
        lambda w: _fill(w, "--invalid", "land"),
        r"invalid mask 'land' is neither a variable of the dataset .* nor an existing file",
    ),
    "invalid-mask-wrong-shape": (
        lambda w: (
            _write(
                w, "mask.nc", xr.Dataset({"m": (("lat", "lon"), np.zeros((5, LON.size), "int8"))})
            )
            or _fill(w, "--invalid", str(w / "mask.nc"))
        ),
        r"invalid mask of shape \(lat: 5, lon: 24\) does not match variable 'sst'",
    ),
    "invalid-below-not-a-number": (
        lambda w: _fill(w, "--invalid-below", "low"),
        r"Invalid value for '--invalid-below': 'low' is not a valid float",
    ),
    "invalid-below-inf": (
        lambda w: _fill(w, "--invalid-below", "inf"),
        r"the invalid rule \(.*values <= inf\) marks all of the 765 observed values of 'sst'",
    ),
    "steps-below-min-observed-share": (
        lambda w: _fill(w, "--min-observed-share", "0.9"),
        r"4 of 4 steps of 'sst' have an observed share below 0\.9: time=0 \(\d+%\)",
    ),
    "min-observed-share-above-1": (
        lambda w: _fill(w, "--min-observed-share", "2"),
        r"Invalid value for '--min-observed-share': 2\.0 is not in the range 0\.0<=x<=1\.0",
    ),
    "member-dim-in-input": (
        lambda w: (
            _write(w, "other.nc", xr.concat([_dataset(), _dataset(1)], dim="member"))
            or _fill(w, data="other.nc")
        ),
        r"the data already have a 'member' dim \(size 2\); a fill adds its own",
    ),
    "model-given-as-its-config-json": (
        lambda w: _fill(w, model="model/config.json"),
        r"config\.json is a file; a model is the directory that holds .*pass '.*model'$",
    ),
    "array-task-without-init": (
        lambda w: [
            *["fill", str(w / "model"), str(w / "in.nc"), str(w / "out" / "f.zarr")],
            *["--region", "time=0:2"],
        ],
        r"f\.zarr is not an initialised array-job store \(no \.f\.zarr\.job\.json\); run the init",
    ),
    "array-init-into-nc": (
        lambda w: _fill(w, "--init"),
        r"array jobs \(--init, --region\) write Zarr stores; .*f\.nc is not one",
    ),
    "missing-argument": (
        lambda w: ["fill", str(w / "model"), str(w / "in.nc")],
        r"Missing argument 'OUTPUT'",
    ),
}


@pytest.mark.parametrize("case", list(FILL_CASES))
def test_cli_fill_bad_input(work: Path, case: str) -> None:
    setup, match = FILL_CASES[case]
    _cli_fails(work, setup(work), match)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_cli_fill_into_a_read_only_directory(work: Path, readonly_dir: Path, suffix: str) -> None:
    target = readonly_dir / "sub" / f"f{suffix}"
    before = sorted(p.name for p in readonly_dir.iterdir())
    args = ["fill", str(work / "model"), str(work / "in.nc"), str(target)]
    _cli_fails(work, args, r"the directory is not writable")
    assert sorted(p.name for p in readonly_dir.iterdir()) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cli_fill_cuda_without_a_gpu(work: Path) -> None:
    _cli_fails(work, _fill(work, "--device", "cuda"), r"torch sees no CUDA GPU here")


def _interrupted(work: Path) -> Path:
    """A streamed fill stopped after its second region (as a crash would leave it)."""
    out = work / "out" / "r.zarr"

    def stop(r: int) -> None:
        if r == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fill_to_zarr(
            sparsediff.open(work / "in.nc"),
            work / "model",
            out,
            steps=2,
            seed=3,
            progress=False,
            on_region=stop,
        )
    assert partial_path(out).exists()
    return out


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--seed", "4"], r"fill option 'seed' \(3 there, 4 now\) differs"),
        (["--seed", "3", "--members", "2"], r"fill option 'members' \(1 there, 2 now\) differs"),
        (["--seed", "3", "--region-size", "2"], r"region_size \(1 there, 2 now\) differs"),
    ],
    ids=["seed", "members", "region-size"],
)
def test_cli_resume_that_does_not_match(work: Path, extra: list[str], match: str) -> None:
    out = _interrupted(work)
    args = ["fill", str(work / "model"), str(work / "in.nc"), str(out), "--steps", "2"]
    _cli_fails(work, [*args, "--resume", *extra], rf"cannot resume .*r\.zarr: {match}")


# --------------------------------------------------------------------------- CLI: others


def _config(work: Path, edit: Callable[[dict], None]) -> Path:
    cfg = json.loads(json.dumps(TINY))
    edit(cfg)
    path = work / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


TRAIN_CASES: dict[str, tuple[Callable[[dict], None], str]] = {
    "steps-true": (
        lambda c: c["autoencoder"].update(steps=True),
        r"autoencoder\.steps.*(integer|int)",
    ),
    "steps-0": (lambda c: c["prior"].update(steps=0), r"prior\.steps.*greater than or equal to 1"),
    "unknown-key": (lambda c: c["optim"].update(learning_rate=1e-3), r"learning_rate"),
    "holdout-fraction-0.99": (
        lambda c: c["data"].update(holdout_fraction=0.99),
        r"the training part along 'time' is too small",
    ),
    "key-training-would-not-read": (
        lambda c: c["data"].update(context_offsets=[-2, 2]),
        r"invalid config: data\.context_offsets need data\.context_dim, which is not set",
    ),
    "window-larger-than-domain": (
        lambda c: c["window"].update(size=[64, 32], stride=[64, 32]),
        r"window\.size 64 along 'latitude' is larger than the domain \(18\)",
    ),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_cli_train_bad_config(work: Path, case: str) -> None:
    edit, match = TRAIN_CASES[case]
    cfg = _config(work, edit)
    _cli_fails(work, ["train", str(cfg), "--out", str(work / "out" / "run")], match)


def test_cli_train_resume_pointing_outside_the_run(work: Path) -> None:
    run = work / "out" / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": "../../../model"}))
    cfg = _config(work, lambda c: None)
    _cli_fails(work, ["train", str(cfg), "--out", str(run), "--resume"], r"latest\.json")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--holdout", "squares:0.3"], r"squares"),
        (["--region", "time=a:b"], r"bad --region 'time=a:b'; expected DIM=START:STOP"),
        (["--device", "tpu"], r"unknown device 'tpu'"),
        (["--threads", "0"], r"--threads must be a positive integer"),
    ],
    ids=["holdout-pattern", "region", "device", "threads"],
)
def test_cli_evaluate_bad_options(work: Path, args: list[str], match: str) -> None:
    _cli_fails(work, ["evaluate", str(work / "model"), str(work / "in.nc"), *args], match)


def test_cli_info_of_a_missing_path(work: Path) -> None:
    _cli_fails(work, ["info", str(work / "nothing.nc")], r"nothing\.nc")


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--device", "tpu"], r"^error: unknown device 'tpu'"),
        (["--members", "x"], r"^error: Invalid value for '--members'"),
    ],
    ids=["device", "usage"],
)
def test_a_real_process_prints_one_line_and_no_traceback(
    work: Path, extra: list[str], match: str
) -> None:
    before = _snapshot(work)
    cmd = [sys.executable, "-m", "sparsediff", *_fill(work), *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert re.search(match, lines[0])
    assert "Traceback" not in res.stderr + res.stdout
    assert _snapshot(work) == before


# --------------------------------------------------------------------------- API


API_CASES: dict[str, tuple[Callable[[Path], Any], type[SparsediffError], str]] = {
    "numpy-input": (
        lambda w: sparsediff.fill(np.zeros((3, 8, 8)), w / "model"),
        InputError,
        r"got ndarray; wrap it with named dims first, e\.g\. xr\.DataArray",
    ),
    "seed-abc": (
        lambda w: sparsediff.fill(_dataset(), w / "model", seed="abc"),
        InputError,
        r"seed must be a non-negative integer, got 'abc'",
    ),
    "members-text": (
        lambda w: sparsediff.fill(_dataset(), w / "model", members="3"),
        ConfigError,
        r"members must be an integer, got '3'",
    ),
    "model-of-wrong-type": (
        lambda w: sparsediff.fill(_dataset(), {"weights": 1}),
        InputError,
        r"model must be a sparsediff Model or the path of a model directory, got dict",
    ),
    "model-path-missing": (
        lambda w: sparsediff.fill(_dataset(), str(w / "nomodel")),
        CheckpointError,
        r"is not a sparsediff model directory",
    ),
    "device-tpu": (
        lambda w: sparsediff.fill(_dataset(), w / "model", device="tpu"),
        ConfigError,
        r"unknown device 'tpu'",
    ),
    "check-values-not-bool": (
        lambda w: sparsediff.fill(_dataset(), w / "model", check_values="no"),
        ConfigError,
        r"check_values must be True or False",
    ),
    "invalid-below-text": (
        lambda w: sparsediff.fill(_dataset(), w / "model", invalid_below="low"),
        ConfigError,
        r"invalid_below must be a number, None or 'model'",
    ),
    "celsius-without-units": (
        lambda w: sparsediff.fill(_dataset(units=None, offset=-273.15), w / "model"),
        CompatibilityError,
        r"another unit or scale",
    ),
    "zarr-target-exists": (
        lambda w: fill_to_zarr(_dataset(), w / "model", w / "model"),
        InputError,
        r"does not end in \.zarr",
    ),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_bad_input(work: Path, case: str) -> None:
    call, kind, match = API_CASES[case]
    before = _snapshot(work)
    with pytest.raises(kind, match=match) as err:
        call(work)
    assert "\n" not in str(err.value)
    assert _snapshot(work) == before


def test_api_accepts_a_model_path_and_an_override_of_the_value_check(work: Path) -> None:
    ds = _dataset(units=None, offset=-273.15)
    for model in (work / "model", str(work / "model")):
        out = sparsediff.fill(ds, model, steps=1, check_values=False)
        assert json.loads(out.attrs["sparsediff_fill"])["value_check"] == "off"
    res = (
        CliRunner().invoke(
            main, [*_fill(work, data="other.nc"), "--no-value-check", "--steps", "1"]
        )
        if _write(work, "other.nc", ds) is None
        else None
    )
    assert res is not None
    assert res.exit_code == 0, res.output
    assert (work / "out" / "f.nc").exists()
