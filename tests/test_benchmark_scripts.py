"""The benchmark scripts still run against the current code (tiny sizes; figures not checked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


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
