"""The public names of DESIGN §6 are what they say, whatever the modules behind them are called."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import sparsediff


@pytest.mark.parametrize("name", ["fill", "evaluate", "train", "load", "open", "write"])
def test_package_level_names_are_the_functions(name: str) -> None:
    # `sparsediff.filling.fill` and `sparsediff.evaluation.evaluate` are modules named
    # after the function they hold: the package-level names must be the functions
    value = getattr(sparsediff, name)
    assert inspect.isfunction(value), f"sparsediff.{name} is {value!r}, not a function"
    assert value.__name__ == name


def test_model_and_all() -> None:
    assert inspect.isclass(sparsediff.Model)
    assert set(sparsediff.__all__) <= set(dir(sparsediff))
    assert {"fill", "evaluate", "train", "load", "open", "write", "Model"} <= set(
        sparsediff.__all__
    )


def test_importing_the_modules_first_does_not_shadow_the_functions() -> None:
    # importing a submodule binds it on its parent package; the package root must still
    # hand out the functions afterwards
    code = (
        "import sparsediff.filling.fill, sparsediff.evaluation.evaluate, inspect, sparsediff\n"
        "assert inspect.isfunction(sparsediff.fill), sparsediff.fill\n"
        "assert inspect.isfunction(sparsediff.evaluate), sparsediff.evaluate\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
