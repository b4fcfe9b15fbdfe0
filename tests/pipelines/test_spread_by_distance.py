"""The spread-by-distance diagnostic: its distances and its per-bin spread/skill."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.scripts import PIPELINES, load_script


@pytest.fixture(scope="module")
def diag() -> ModuleType:
    return load_script(PIPELINES / "spread_by_distance.py", "spread_by_distance")


def test_distance_is_per_field_over_the_spatial_axes(diag: ModuleType) -> None:
    shown = np.zeros((2, 9, 7), dtype=bool)  # (time, y, x)
    shown[0, 4, 3] = True
    shown[1, 0, 0] = True
    dist = diag.distance_field(shown, [1, 2])
    assert dist.shape == shown.shape
    assert dist[0, 4, 3] == 0
    assert dist[0, 0, 0] == 4  # chessboard: max(|dy|, |dx|) = max(4, 3)
    assert dist[1, 8, 6] == 8
    # a periodic x wraps: the far column is one step from the shown one
    wrapped = diag.distance_field(shown[1:], [1, 2], periodic=[False, True])
    assert wrapped[0, 0, 6] == 1
    # axes given in another order: the same distances, transposed
    moved = diag.distance_field(np.moveaxis(shown, 0, 2), [0, 1])
    np.testing.assert_array_equal(np.moveaxis(moved, 2, 0), dist)


def test_spread_skill_per_bin_is_exact_on_a_constructed_ensemble(diag: ModuleType) -> None:
    k = 4
    truth = np.zeros((1, 6, 6))
    shown = np.ones_like(truth, dtype=bool)
    shown[0, 1:5, 1:5] = False  # a 4x4 box: 12 points at distance 1, 4 at distance 2
    dist = diag.distance_field(shown, [1, 2])
    near, far = (dist == 1) & ~shown, (dist == 2) & ~shown
    signs = np.array([1.0, -1.0, 1.0, -1.0])[:, None, None, None]
    members = np.zeros((k, *truth.shape))
    members += np.where(near, 0.5, 0.0) + signs * np.where(near, 0.2, 0.0)  # error 0.5
    members += np.where(far, 2.0, 0.0) + signs * np.where(far, 1.0, 0.0)  # error 2
    values = truth.copy()
    table = diag.by_distance(values, shown, members, dist).set_index("bin")
    assert table.loc["1-1", "points"] == 12
    assert table.loc["2-3", "points"] == 4
    assert table.loc["all", "points"] == 16
    spread_near = np.sqrt(np.var([0.2, -0.2, 0.2, -0.2], ddof=1))
    ratio = np.sqrt((k + 1) / k) * spread_near / 0.5
    assert table.loc["1-1", "rmse"] == pytest.approx(0.5)
    assert table.loc["1-1", "spread_skill"] == pytest.approx(ratio)
    assert table.loc["2-3", "rmse"] == pytest.approx(2.0)
    assert table.loc["2-3", "spread_skill"] == pytest.approx(ratio * 5 / 4)
    # points never observed (NaN truth) are not scored
    values[0, 2, 2] = np.nan
    assert (
        diag.by_distance(values, shown, members, dist).set_index("bin").loc["all", "points"] == 15
    )


def test_a_run_without_the_model_is_one_line_and_exit_2(
    diag: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.scripts import CONFIGS

    code = diag.main([str(CONFIGS / "quality_tiny.yaml"), str(tmp_path / "no_run")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert "\n" not in err
