"""The benchmark scripts still run against the current code (tiny sizes; figures not checked)."""

from __future__ import annotations

import pytest

from tests.scripts import BENCHMARKS, run_script


def _run(script: str, *args: str) -> str:
    return run_script(BENCHMARKS / script, *args, timeout=300)


def test_bench_fill_replays_the_fill_calls() -> None:
    pytest.importorskip("iris_sample_data")
    out = _run(
        "bench_fill.py", "--months", "1", "--members", "2", "--steps", "1", "--repeats", "1",
        "--skip-ooc",
    )  # fmt: skip
    assert "members=2: fill" in out
    assert "overhead" in out


def test_bench_first_guess_runs() -> None:
    pytest.importorskip("iris_sample_data")
    out = _run("bench_first_guess.py", "--fields", "1", "--only", "2d", "--gaps", "boxes:0.3")
    assert "laplace+cg" in out


def test_bench_adapt_runs() -> None:
    pytest.importorskip("iris_sample_data")
    out = _run(
        "bench_adapt.py", "--adapt-steps", "1", "--members", "2", "--months", "1",
        "--longitudes", "64",
    )  # fmt: skip
    assert "| adapt1_input |" in out
    assert "best classical" in out
