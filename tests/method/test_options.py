"""``FillOptions`` is the one definition of the fill options.

``sparsediff.fill``, the ``sparsediff fill`` / ``sparsediff evaluate`` options and
the ``sparsediff_fill`` provenance attribute must follow its fields; these tests
fail when any of them drifts apart (a field added, renamed or given another
default in one place only).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import sparsediff
from sparsediff.cli import main
from sparsediff.diffusion.samplers import SAMPLERS
from sparsediff.errors import ConfigError
from sparsediff.method.options import FillOptions, fill_option_fields, option_type
from tests.filling.conftest import make_model

FIELDS = fill_option_fields()

#: A value other than the default for every option: a new field must be added here.
VALUES: dict[str, Any] = {
    "members": 2,
    "steps": 2,
    "sampler": "euler",
    "seed": 3,
    "guidance": 0.5,
    "cfg_scale": 1.5,
    "sigma_min": 0.01,
    "sigma_max": 40.0,
    "batch_size": 3,
    "precision": "bfloat16",
    "compile": "aot_eager",
}


def _options(command: str) -> dict[str, click.Option]:
    cmd = main.commands[command]
    with click.Context(cmd) as ctx:
        return {str(p.name): p for p in cmd.get_params(ctx) if isinstance(p, click.Option)}


def _data() -> xr.Dataset:
    values = np.random.default_rng(0).normal(size=(2, 8, 8)).astype("float32")
    values[:, 2:5, 2:5] = np.nan
    return xr.Dataset({"a": (("t", "y", "x"), values)})


def test_the_test_values_cover_every_field_and_differ_from_the_defaults() -> None:
    assert [f.name for f in FIELDS] == list(VALUES)
    for f in FIELDS:
        assert VALUES[f.name] != f.default, f.name
        assert isinstance(VALUES[f.name], option_type(f)), f.name
    FillOptions(**VALUES)  # valid values


def test_bad_precision_and_compile_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="precision must be one of"):
        FillOptions(precision="float16")
    with pytest.raises(ConfigError, match="compile must be"):
        FillOptions(compile="")
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        FillOptions(batch_size=0)
    assert FillOptions().batch_size is None  # rows from the free memory


def test_every_field_is_a_keyword_of_sparsediff_fill_with_the_same_default() -> None:
    params = inspect.signature(sparsediff.fill).parameters
    for f in FIELDS:
        assert f.name in params, f"sparsediff.fill has no keyword {f.name!r}"
        p = params[f.name]
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, f.name
        assert p.default == f.default, f.name
        assert type(p.default) is type(f.default), f.name
        assert f.name in (sparsediff.fill.__doc__ or ""), f"{f.name} is not documented"


def test_every_field_is_an_option_of_the_fill_command() -> None:
    options = _options("fill")
    click_types = {int: click.INT, float: click.FLOAT, str: click.STRING}
    for f in FIELDS:
        assert f.name in options, f"sparsediff fill has no option for {f.name!r}"
        option = options[f.name]
        assert option.opts == [f"--{f.name.replace('_', '-')}"]
        assert option.default == f.default, f.name
        assert type(option.default) is type(f.default), f.name
        assert option.type is click_types[option_type(f)]
        assert option.help == f.metadata["help"]
    # the names users already type
    for name in ("--members", "--steps", "--sampler", "--seed", "--guidance", "--batch-size"):
        assert any(name in o.opts for o in options.values()), name


def test_the_evaluate_command_has_the_fields_sparsediff_evaluate_takes() -> None:
    params = inspect.signature(sparsediff.evaluate).parameters
    options = _options("evaluate")
    shared = [f.name for f in FIELDS if f.name in params]
    assert {"members", "steps", "sampler", "seed", "batch_size"} <= set(shared)
    for f in FIELDS:
        if f.name in params:
            assert options[f.name].default == params[f.name].default, f.name
        else:  # an option that would be ignored must not be offered
            assert f.name not in options, f.name
    assert options["members"].default == 8  # evaluate's own default


def test_the_sampler_help_names_every_sampler() -> None:
    (sampler,) = [f for f in FIELDS if f.name == "sampler"]
    for name in SAMPLERS:
        assert name in sampler.metadata["help"], name


def test_every_field_is_recorded_in_the_provenance() -> None:
    model = make_model(["a"], ["y", "x"], [8, 8])
    filled = sparsediff.fill(_data(), model, device="cpu", **VALUES)
    record = json.loads(filled.attrs["sparsediff_fill"])
    assert {k: record.get(k) for k in VALUES} == VALUES


def test_the_fill_command_passes_every_field_to_the_fill(tmp_path: Path) -> None:
    make_model(["a"], ["y", "x"], [8, 8]).save(tmp_path / "model")
    _data().to_netcdf(tmp_path / "in.nc")
    args = [
        "fill",
        str(tmp_path / "model"),
        str(tmp_path / "in.nc"),
        str(tmp_path / "out.nc"),
        "--device",
        "cpu",
    ]
    for name, value in VALUES.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with xr.open_dataset(tmp_path / "out.nc") as out:
        record = json.loads(out.attrs["sparsediff_fill"])
    assert {k: record.get(k) for k in VALUES} == VALUES
