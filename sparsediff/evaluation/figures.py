"""The figures of an evaluation: one score per method, and an example fill."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sparsediff import atomic
from sparsediff.errors import InputError

__all__ = ["best_other", "plot_example", "plot_scores"]


def plot_example(
    filled: xr.Dataset,
    variable: str,
    gappy: xr.Dataset,
    truth: xr.Dataset,
    held: xr.Dataset,
    path: Path,
    compare: Mapping[str, xr.Dataset] | None = None,
) -> None:
    """Draw the example fill at the slice with the most held-out points."""
    from sparsediff.plotting import plot_fill

    mask = held[variable]
    lead = list(mask.dims[:-2])
    isel: dict[str, int] = {}
    if lead:
        counts = mask.sum([d for d in mask.dims if d not in lead])
        idx = np.unravel_index(int(np.argmax(np.asarray(counts.values))), counts.shape)
        isel = {str(d): int(i) for d, i in zip(counts.dims, idx)}
    plot_fill(
        filled,
        variable,
        original=gappy,
        truth=truth,
        hidden=held,
        compare=compare,
        path=path,
        **isel,
    )


def best_other(table: pd.DataFrame, variable: str, shown: str) -> str | None:
    """The baseline with the lowest RMSE on ``variable`` (shown beside ``shown``'s fill)."""
    rows = table[(table["variable"] == variable) & (table["method"] != shown)]
    rows = rows[rows["kind"] == "baseline"].dropna(subset=["rmse"])
    return str(rows.sort_values("rmse")["method"].iloc[0]) if len(rows) else None


def plot_scores(
    table: pd.DataFrame,
    path: str | os.PathLike[str] | None = None,
    *,
    metric: str = "rmse",
    units: str | Mapping[str, str] | None = None,
) -> Any:
    """Bar chart of one score per method (one panel per variable).

    Parameters
    ----------
    table
        Output of [`evaluate`][sparsediff.evaluation.evaluate.evaluate].
    path
        Save the figure there (PNG, PDF, ...).
    metric
        Column to draw (default ``"rmse"``).
    units
        Units of the scores (of each variable, as a mapping), shown on the
        axis; leave out for unitless metrics (``spread_skill``, ``ssim``).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InputError
        ``metric`` is not a column of ``table``.
    """
    from matplotlib.figure import Figure

    if metric not in table.columns:
        raise InputError(f"no column {metric!r} in the table (columns: {list(table.columns)})")
    variables = list(dict.fromkeys(table["variable"])) if "variable" in table else [None]
    n_methods = int(table["method"].nunique())
    fig = Figure(figsize=(7, 0.45 * n_methods * len(variables) + 1.2 * len(variables)))
    axes = fig.subplots(len(variables), 1, squeeze=False)[:, 0]
    for ax, var in zip(axes, variables):
        rows = table if var is None else table[table["variable"] == var]
        rows = rows.sort_values(metric, ascending=False, na_position="first")
        colors = ["tab:blue" if k == "model" else "tab:gray" for k in rows.get("kind", [])]
        ax.barh(list(rows["method"]), rows[metric].to_numpy(dtype=float), color=colors or None)
        unit = units.get(str(var), "") if isinstance(units, Mapping) else units
        ax.set_xlabel(f"{metric} [{unit}]" if unit else metric)
        ax.set_title(f"{var}: {metric} on held-out points" if var else metric)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    if path is not None:
        atomic.save_figure(fig, path, dpi=110)
    return fig
