"""A lazy fill is computed once: persisted when small, sliced (not re-run) for a plot,
and every fill ends with one line counting filled, observed and invalid points."""

from __future__ import annotations

import re
from typing import Any

import matplotlib
import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.errors import ConfigError
from sparsediff.filling import fill as fill_module
from tests.filling.conftest import make_model

matplotlib.use("Agg")

MODEL = make_model(["a"], ["y", "x"], [8, 8], mean=20.0, std=5.0)
LINE = re.compile(r"filled ([\d,]+) points, kept ([\d,]+) as observed, left ([\d,]+) invalid")


class _CountFills:
    """Counts the calls of the model's block fill (a spy: the real function runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs = 0
        real = fill_module.fill_block

        def counted(*args: Any, **kw: Any) -> Any:
            self.runs += 1
            return real(*args, **kw)

        monkeypatch.setattr(fill_module, "fill_block", counted)


def _data(steps: int = 3) -> xr.Dataset:
    rng = np.random.default_rng(0)
    a = rng.normal(20, 5, size=(steps, 12, 16)).astype("float32")
    a[rng.random(a.shape) < 0.3] = np.nan
    a[:, :2, :3] = np.nan  # missing at every step: invalid
    return xr.Dataset({"a": (("t", "y", "x"), a)}, coords={"t": np.arange(steps)})


def test_plot_of_a_lazy_fill_runs_only_its_block_once(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = _CountFills(monkeypatch)
    lazy = sparsediff.fill(
        _data().chunk({"t": 1}), MODEL, members=3, steps=2, persist=False, progress=False
    )
    assert count.runs == 0
    lazy.sparsediff.plot_fill(t=1, path=tmp_path / "f.png")
    assert count.runs == 1  # one block of three, once for every panel
    lazy.compute()
    assert count.runs == 1 + 3


def test_small_lazy_fill_is_persisted_and_reused(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = _CountFills(monkeypatch)
    ds = _data().chunk({"t": 1})
    filled = sparsediff.fill(ds, MODEL, members=3, steps=2, progress=False)
    assert count.runs == 3
    assert filled["a"].chunks is not None  # still dask-backed
    filled.sparsediff.plot_fill(t=0, path=tmp_path / "f.png")
    sparsediff.write(filled, tmp_path / "f.nc")
    assert count.runs == 3  # plot and write read the persisted values
    eager = sparsediff.fill(_data(), MODEL, members=3, steps=2, progress=False)
    np.testing.assert_array_equal(filled["a"].values, eager["a"].values)


def test_persist_threshold_keeps_large_fills_lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fill_module, "PERSIST_MAX_BYTES", 100)
    count = _CountFills(monkeypatch)
    sparsediff.fill(_data().chunk({"t": 1}), MODEL, steps=2, progress=False)
    assert count.runs == 0
    with pytest.raises(ConfigError, match="persist"):
        sparsediff.fill(_data(), MODEL, steps=2, persist="yes")  # type: ignore[arg-type]


def test_fill_ends_with_one_counting_line(capsys: pytest.CaptureFixture[str]) -> None:
    ds = _data()
    out = sparsediff.fill(ds, MODEL, steps=2, invalid_along="t")
    lines = [ln for ln in capsys.readouterr().err.splitlines() if LINE.search(ln)]
    assert len(lines) == 1
    got = [int(g.replace(",", "")) for g in LINE.search(lines[0]).groups()]  # type: ignore[union-attr]
    flag = out["a_fill_flag"].values
    assert got == [int((flag == 1).sum()), int((flag == 0).sum()), int((flag == 2).sum())]
    # invalid: missing at every step (the 2 x 3 corner among them), at each of the 3 steps
    assert got[2] == 3 * int(np.isnan(ds["a"].values).all(axis=0).sum()) >= 3 * 2 * 3
    sparsediff.fill(ds, MODEL, steps=2, progress=False)
    assert not LINE.search(capsys.readouterr().err)
