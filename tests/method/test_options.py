"""``FillOptions`` is the one definition of the fill options.

``sparsediff.fill`` (and every public function that takes ``options=``), the
``sparsediff fill`` / ``sparsediff evaluate`` options and the ``sparsediff_fill``
provenance attribute must follow its fields; these tests fail when any of them
drifts apart (a field added, renamed or given another default in one place only).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import sparsediff
from sparsediff.accessor import SparsediffAccessor
from sparsediff.cli import main
from sparsediff.diffusion.samplers import SAMPLERS
from sparsediff.errors import ConfigError, InputError
from sparsediff.evaluation.evaluate import DEFAULT_OPTIONS
from sparsediff.evaluation.fillers import ModelFiller
from sparsediff.evaluation.points import evaluate_points
from sparsediff.filling.arguments import FillArguments
from sparsediff.filling.array_job import fill_region, init_store
from sparsediff.filling.store import fill_to_zarr
from sparsediff.method.options import FillKeywords, FillOptions, fill_option_fields, option_type
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


def test_the_keywords_type_is_the_fields() -> None:
    assert list(FillKeywords.__annotations__) == [f.name for f in FIELDS]
    assert typing.get_type_hints(FillKeywords) == typing.get_type_hints(FillOptions)
    assert not FillKeywords.__required_keys__  # every keyword may be left out


@pytest.mark.parametrize(
    "function",
    [
        sparsediff.fill,
        sparsediff.evaluate,
        fill_to_zarr,
        init_store,
        fill_region,
        ModelFiller,
        SparsediffAccessor.fill,
        evaluate_points,
    ],
)
def test_public_functions_take_options_and_the_fields_as_keywords(function: Any) -> None:
    params = inspect.signature(function).parameters
    assert params["options"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["options"].default is None
    assert not [f.name for f in FIELDS if f.name in params]  # not restated one by one
    (var_kw,) = [p for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    writers = (fill_to_zarr, init_store, fill_region)  # they pass fill's other keywords on
    want = "Unpack[FillArguments]" if function in writers else "Unpack[FillKeywords]"
    if function is not evaluate_points:  # its keywords go on to fill_points, typed Any there
        assert var_kw.annotation == want
    for f in FIELDS:
        assert f.name in (sparsediff.fill.__doc__ or ""), f"{f.name} is not documented"


def test_the_writers_keywords_are_those_of_fill() -> None:
    params = inspect.signature(sparsediff.fill).parameters
    fill_hints = typing.get_type_hints(sparsediff.fill)
    hints = typing.get_type_hints(FillArguments)
    assert set(FillKeywords.__annotations__) <= set(hints)
    others = [k for k in hints if k not in FillKeywords.__annotations__]
    assert others
    for name in others:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert fill_hints[name] == hints[name], name


def test_fold_takes_options_or_keywords_not_both() -> None:
    assert FillOptions.fold(None) == FillOptions()
    assert FillOptions.fold(None, members=3, seed=np.int64(4)) == FillOptions(members=3, seed=4)
    assert type(FillOptions.fold(None, seed=np.int64(4)).seed) is int
    given = FillOptions(steps=3)
    assert FillOptions.fold(given) is given
    assert FillOptions.fold(None, defaults=DEFAULT_OPTIONS, steps=2).members == 8
    assert FillOptions.fold(given, defaults=DEFAULT_OPTIONS).members == 1  # options win whole
    with pytest.raises(ConfigError, match="members given both in options= and as keyword"):
        FillOptions.fold(given, members=2)
    with pytest.raises(ConfigError, match=r"unknown fill option.*membrs"):
        FillOptions.fold(None, membrs=2)
    with pytest.raises(ConfigError, match="options must be a FillOptions, got dict"):
        FillOptions.fold({"members": 2})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="members must be >= 1"):
        FillOptions.fold(None, members=0)
    with pytest.raises(InputError, match="seed must be a non-negative integer"):
        FillOptions.fold(None, seed=-1)


def test_fill_with_options_is_fill_with_the_keywords() -> None:
    model = make_model(["a"], ["y", "x"], [8, 8])
    kw = {"members": 2, "steps": 2, "seed": 3, "guidance": 0.5, "cfg_scale": 1.5}
    by_keywords = sparsediff.fill(_data(), model, device="cpu", progress=False, **kw)
    by_options = sparsediff.fill(
        _data(), model, device="cpu", progress=False, options=FillOptions(**kw)
    )
    np.testing.assert_array_equal(by_options["a"].values, by_keywords["a"].values)
    plain = sparsediff.fill(
        _data(), model, device="cpu", progress=False, members=2, steps=2, seed=3
    )
    assert not np.array_equal(plain["a"].values, by_keywords["a"].values)  # guidance counts
    with pytest.raises(ConfigError, match="seed given both"):
        sparsediff.fill(_data(), model, options=FillOptions(), seed=1)
    with pytest.raises(ConfigError, match="unknown fill option"):
        sparsediff.fill(_data(), model, member=2)  # type: ignore[call-arg]


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


def test_the_evaluate_command_has_every_field_with_the_defaults_of_evaluate() -> None:
    options = _options("evaluate")
    for f in FIELDS:  # sparsediff.evaluate passes every field to the fill
        assert options[f.name].default == getattr(DEFAULT_OPTIONS, f.name), f.name
        assert options[f.name].opts == [f"--{f.name.replace('_', '-')}"]
    assert options["members"].default == 8  # evaluate's own default
    assert dataclasses.replace(DEFAULT_OPTIONS, members=1) == FillOptions()


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


def test_the_fill_samples_at_the_steps_the_spread_is_calibrated_with() -> None:
    from sparsediff.method.spec import ModelSpec

    # the spread factors are fitted at calibration.steps, recorded as spread_steps;
    # a fill at other steps is rougher or smoother than the factors assume (docs:
    # calibrated at 16, filled at 6, spread/skill 1.18 where 1.07)
    assert FillOptions().steps is None
    assert FillOptions().at_steps(6).steps == 6
    assert FillOptions(steps=3).at_steps(6).steps == 3
    assert ModelSpec.model_fields["spread_steps"].default == 16  # models calibrated before
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        FillOptions(steps=0)
