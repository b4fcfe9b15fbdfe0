"""The baseline registry: a baseline is one class that declares what it needs.

A toy baseline defined here, in a test file, is registered and run by
:func:`sparsediff.evaluate` by its name, like the built-in ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pytest
import xarray as xr

from sparsediff.errors import ConfigError
from sparsediff.evaluation.baselines import (
    BASELINES,
    Baseline,
    Setting,
    for_evaluation,
    register_baseline,
)
from sparsediff.evaluation.evaluate import evaluate


class ConstantFill(Baseline):
    """Fills every gap with one constant (a toy baseline)."""

    name: ClassVar[str] = "toy_constant"

    def __init__(self, value: float = 3.0) -> None:
        self.value = value

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        return np.full(values.shape, self.value)


class TimedConstant(ConstantFill):
    """The toy, declaring that it needs a time dim."""

    name: ClassVar[str] = "toy_timed"
    needs: ClassVar[frozenset[str]] = frozenset({"time"})

    def __init__(self, time_dim: object = "time") -> None:
        super().__init__(value=3.0)
        self.time_dim = time_dim  # type: ignore[assignment]


@pytest.fixture
def toys() -> Iterator[None]:
    register_baseline(ConstantFill)
    register_baseline(TimedConstant)
    yield
    BASELINES.pop(ConstantFill.name)
    BASELINES.pop(TimedConstant.name)


def _flat(with_time: bool) -> xr.DataArray:
    dims = ("time", "y", "x") if with_time else ("y", "x")
    shape = (4, 24, 24) if with_time else (24, 24)
    return xr.DataArray(np.full(shape, 5.0), dims=dims, name="v")


def test_a_registered_toy_baseline_runs_in_evaluate(toys: None) -> None:
    table = evaluate(_flat(True), baselines="toy_constant,toy_timed", dims=("y", "x"), seed=0)
    assert list(table["method"]) == ["toy_constant", "toy_timed"]
    assert list(table["kind"]) == ["baseline", "baseline"]
    # truth 5 everywhere, fill 3: the error is exactly -2 at every held-out point
    np.testing.assert_allclose(table["rmse"], 2.0)
    np.testing.assert_allclose(table["bias"], -2.0)


def test_a_need_not_met_skips_the_baseline_with_a_note(toys: None) -> None:
    table = evaluate(_flat(False), baselines="toy_constant,toy_timed", dims=("y", "x"), seed=0)
    assert list(table["method"]) == ["toy_constant"]
    assert any("toy_timed" in n and "time dim" in n for n in table.attrs["notes"])


def test_registration_refuses_bad_classes(toys: None) -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_baseline(type("Other", (ConstantFill,), {}))  # same name, other class
    with pytest.raises(ConfigError, match="unknown needs"):
        register_baseline(
            type("Odd", (ConstantFill,), {"name": "odd", "needs": frozenset({"gpu"})})
        )
    with pytest.raises(ConfigError, match="Baseline or Filler"):
        register_baseline(int)  # type: ignore[arg-type]
    assert "odd" not in BASELINES


def test_the_built_in_baselines_declare_their_needs() -> None:
    notes: list[str] = []
    no_time = Setting(time_dim="time", has_time=False)
    assert for_evaluation("dineof", no_time, notes) is None
    assert for_evaluation("time_mean", no_time, notes) is None
    laplace = for_evaluation("laplace", no_time, notes)
    assert laplace is not None
    assert getattr(laplace, "first_guess", None) == "mean"
    assert len(notes) == 3
    dineof = for_evaluation("dineof", Setting(time_dim="t", has_time=True, seed=7), notes)
    assert getattr(dineof, "seed", None) == 7
    assert getattr(dineof, "time_dim", None) == "t"
    assert for_evaluation("laplace_eof", no_time, notes) is None
    eof = for_evaluation("laplace_eof", Setting(time_dim="t", has_time=True, seed=7), notes)
    assert (getattr(eof, "seed", None), getattr(eof, "time_dim", None)) == (7, "t")


def test_the_cli_default_baselines_are_evaluates() -> None:
    from sparsediff.cli import main
    from sparsediff.evaluation.evaluate import DEFAULT_BASELINES

    evaluate_cmd = main.commands["evaluate"]  # type: ignore[attr-defined]
    (option,) = [p for p in evaluate_cmd.params if p.name == "baselines"]
    assert option.default == ",".join(DEFAULT_BASELINES)
