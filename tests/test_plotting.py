"""The fill figure: every panel it promises, spread from ensemble_std, land alike everywhere."""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.filling.fill import ensemble_std
from sparsediff.plotting import INVALID_COLOUR, plot_fill
from tests.filling.conftest import make_model

matplotlib.use("Agg")

MODEL = make_model(["a"], ["y", "x"], [8, 8], mean=20.0, std=5.0)


def _case() -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    rng = np.random.default_rng(1)
    truth = rng.normal(20, 5, size=(2, 12, 16)).astype("float32")
    truth[:, :3, :4] = np.nan  # land
    times = np.array(["2006-07-16", "2006-08-16"], dtype="datetime64[ns]")
    full = xr.Dataset({"a": (("time", "y", "x"), truth)}, coords={"time": times})
    gappy = full.copy(deep=True)
    gappy["a"].values[1, 6:10, 8:14] = np.nan  # gaps: at one step only
    gappy["a"].values[0, 8:12, 2:6] = np.nan
    filled = sparsediff.fill(gappy, MODEL, members=3, steps=2, invalid_along="time", progress=False)
    assert int((filled["a_fill_flag"] == 2).sum()) == 2 * 3 * 4
    return full, gappy, filled


def _meshes(fig: Any) -> dict[str, np.ndarray]:
    """Title of each panel -> the array its (last) colour mesh shows."""
    out = {}
    for ax in fig.axes:
        if not ax.get_title():
            continue
        mesh = [c for c in ax.collections if hasattr(c, "get_array")][-1]
        out[ax.get_title()] = np.ma.filled(mesh.get_array().astype(float), np.nan)
    return out


def test_panels_error_compare_date_and_spread(tmp_path: Any) -> None:
    full, gappy, filled = _case()
    fig = plot_fill(filled, "a", original=gappy, truth=full, compare={"classical": full}, time=1)
    panels = _meshes(fig)
    titles = list(panels)
    assert titles[0].startswith("input")
    assert "classical fill" in titles
    assert "error: fill − truth" in titles
    assert "2006-08-16" in fig._suptitle.get_text()
    mean = filled["a"].isel(time=1).mean("member").values
    err = panels["error: fill − truth"].reshape(mean.shape)
    np.testing.assert_allclose(err, mean - full["a"].isel(time=1).values, atol=1e-5)
    spread_title = next(t for t in titles if t.startswith("ensemble spread"))
    spread = panels[spread_title].reshape(mean.shape)
    want = ensemble_std(filled)["a"].isel(time=1).values
    np.testing.assert_array_equal(spread, want)
    observed = np.isfinite(gappy["a"].isel(time=1).values)
    assert (spread[observed] == 0).all()  # exactly 0, not float noise
    assert (spread[~observed & np.isfinite(want)] > 0).all()


def test_land_is_the_same_colour_in_every_panel() -> None:
    full, gappy, filled = _case()
    fig = plot_fill(filled, "a", original=gappy, truth=full, time=0)
    land_colour = matplotlib.colors.to_rgba(INVALID_COLOUR)
    for ax in fig.axes:
        if not ax.get_title():
            continue
        flat = [
            c
            for c in ax.collections
            if hasattr(c, "get_cmap")
            and c.get_cmap().N == 1
            and np.allclose(c.get_cmap()(0), land_colour)
        ]
        assert flat, f"no land overlay in panel {ax.get_title()!r}"


def test_calibration_figure_draws_the_tables_it_is_given() -> None:
    from sparsediff.evaluation.metrics import rank_histogram
    from sparsediff.evaluation.spread import by_distance, distance_field
    from sparsediff.plotting import plot_calibration

    rng = np.random.default_rng(2)
    truth = rng.normal(size=(2, 20, 30))
    shown = rng.random(truth.shape) < 0.2
    members = truth + rng.normal(size=(4, *truth.shape))
    dist = distance_field(shown, [1, 2])
    table = by_distance(truth, shown, members, dist)
    ens = xr.DataArray(members, dims=("member", "t", "y", "x"))
    ranks = rank_histogram(
        ens, ens.isel(member=0, drop=True) * 0 + truth, xr.DataArray(~shown, dims=("t", "y", "x"))
    )
    fig = plot_calibration(table, ranks, units="K")
    left, right = fig.axes
    rows = table[table["bin"] != "all"]
    error, spread = left.get_lines()[:2]
    np.testing.assert_allclose(error.get_ydata(), rows["rmse"])
    np.testing.assert_allclose(spread.get_ydata(), np.sqrt(5 / 4) * rows["spread"])
    heights = [p.get_height() for p in right.patches]
    np.testing.assert_allclose(heights, ranks.values / ranks.values.sum())
    assert left.get_ylabel().endswith("[K]")


def test_figures_are_written_atomically_in_the_format_of_their_suffix(tmp_path: Any) -> None:
    from matplotlib.figure import Figure

    from sparsediff.atomic import save_figure
    from sparsediff.plotting import plot_training

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("stage,step,loss,val_rmse\nprior,1,2.0,\nprior,2,1.0,0.5\n")
    plot_training(run, path=tmp_path / "curves.pdf")
    assert (tmp_path / "curves.pdf").read_bytes().startswith(b"%PDF")
    plot_training(run, path=tmp_path / "curves")  # no suffix: PNG, at that very path
    assert (tmp_path / "curves").read_bytes().startswith(b"\x89PNG")
    old = (tmp_path / "curves.pdf").read_bytes()
    fig = Figure()
    fig.subplots().plot([0, 1])
    with pytest.raises(ValueError, match="xyz"):  # a format matplotlib cannot write
        save_figure(fig, tmp_path / "curves.xyz")

    class HalfRendered:  # a figure whose render fails after writing some bytes
        def savefig(self, fname: Any, **kwargs: Any) -> None:
            fname.write(b"%PDF-half")
            raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):  # the old file stays as it was
        save_figure(HalfRendered(), tmp_path / "curves.pdf")
    assert (tmp_path / "curves.pdf").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves", "curves.pdf", "run"]
