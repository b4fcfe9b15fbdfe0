"""The benchmark scripts still run against the current code (tiny sizes; figures not checked)."""

from __future__ import annotations

import json

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


def test_bench_points_runs() -> None:
    out = _run("bench_points.py", "--sizes", "2000", "--res", "10", "--days", "2")
    assert "B/point" in out
    assert "     2000" in out


def test_bench_points_fill_runs_both_methods_and_stops_kriging() -> None:
    pytest.importorskip("iris_sample_data")
    pytest.importorskip("gstools")
    out = _run(
        "bench_points_fill.py", "--fill-sizes", "300", "--ensemble", "2", "--ensemble-at", "300",
        "--kriging-sizes", "300", "3000", "10000", "--max-gib", "0.005",
    )  # fmt: skip
    rows = {tuple(line.split()[:3]): line.split()[3:] for line in out.splitlines()[2:-1]}
    for key in (("300", "fill", "1"), ("300", "fill", "2"), ("300", "kriging", "1")):
        share, _, wall, cpu, peak, _, rmse = (float(x) for x in rows[key])
        assert 0 < share < 100
        assert wall > 0
        assert cpu > 0
        assert peak > 100
        assert 0 < rmse < 3  # a map of SST in K, not noise
    # 3000 points: about 500 a month, a kriging system over the 0.005 GiB guard; the rest not run
    assert rows[("3000", "kriging", "1")][:3] == ["skipped:", "would", "need"]
    assert rows[("10000", "kriging", "1")][:2] == ["not", "run:"]


def test_bench_readme_snippet_runs() -> None:
    pytest.importorskip("iris_sample_data")
    out = _run("bench_readme_snippet.py", "--months", "1", "--members", "1", "--steps", "1")
    assert "(plot + write) / one fill" in out


def test_bench_gpu_runs_on_cpu_at_tiny_size() -> None:
    pytest.importorskip("iris_sample_data")
    out = _run(
        "bench_gpu.py", "--device", "cpu", "--months", "1", "--members", "1", "--steps", "1",
        "--repeats", "1",
    )  # fmt: skip
    (line,) = [x for x in out.splitlines() if x.startswith("json ")]
    row = json.loads(line[5:])
    assert row["points_per_s"] > 0
    assert row["peak_mib"] > 0
    assert 0 < row["mfu"] < 1
    assert row["gflop_per_row"] > 0


def test_bench_cost_runs() -> None:
    pytest.importorskip("iris_sample_data")
    out = _run("bench_cost.py", "--months", "2", "--members", "2", "--steps", "1", "--repeats", "1")
    assert "fill x2" in out
    assert "dineof" in out


def test_bench_scaling_runs_on_a_local_cluster() -> None:
    pytest.importorskip("iris_sample_data")
    pytest.importorskip("distributed")
    out = _run(
        "bench_scaling.py", "--mode", "workers", "--workers", "1", "--months", "1",
        "--members", "1",
    )  # fmt: skip
    assert "workers 1: fill" in out


def test_bench_adapt_runs() -> None:
    pytest.importorskip("iris_sample_data")
    out = _run(
        "bench_adapt.py", "--adapt-steps", "1", "--members", "2", "--months", "1",
        "--longitudes", "64",
    )  # fmt: skip
    assert "| adapt1_input |" in out
    assert "best classical" in out
