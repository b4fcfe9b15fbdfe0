"""Plots people would rather look at than read: the fill panels and the calibration figure.

[`plot_fill`][plot_fill] draws the input with its gaps, the fill, optional classical
fills, the truth and the error, and the ensemble spread of one 2D slice; it
computes that slice once (one dask compute for every panel), so on a lazy fill
it runs the model only for the blocks that hold the slice.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from sparsediff.atomic import save_figure

__all__ = ["plot_calibration", "plot_fill", "plot_training"]

#: Colours of the points that hold no value: gaps in the input, invalid points
#: (land, air: flag 2) in every panel, and the outline of held-out points.
GAP_COLOUR = "#d9d9d9"
INVALID_COLOUR = "#404040"
HIDDEN_COLOUR = "#e8002d"
#: Colour maps: values, spread (0 is the palest colour, not black), error.
VALUE_CMAP = "viridis"
SPREAD_CMAP = "YlOrRd"
ERROR_CMAP = "RdBu_r"


def _slice2d(da: xr.DataArray, isel: Mapping[str, int], keep: tuple[str, ...] = ()) -> xr.DataArray:
    """``da`` at ``isel``; further leading dims (not in ``keep``) take index 0."""
    da = da.isel({k: v for k, v in isel.items() if k in da.dims})
    while da.ndim > 2 + sum(d in da.dims for d in keep):
        first = next(d for d in da.dims if d not in keep)
        da = da.isel({first: 0})
    return da


def _overlay(ax: Any, mask: xr.DataArray, colour: str) -> None:
    """Paint the True points of a 2D mask in one flat colour."""
    from matplotlib.colors import ListedColormap

    if bool(mask.any()):
        # xarray's plot accessor is mistyped for mypy (pydata/xarray#9155); it runs fine
        mask.where(mask).plot(  # type: ignore[call-arg]
            ax=ax, cmap=ListedColormap([colour]), add_colorbar=False
        )


def _slice_label(field: xr.DataArray, dims: Sequence[Hashable]) -> str:
    """``"time = 2006-07-16"``: where the 2D slice lies along ``dims`` (dates to the day)."""
    parts = []
    for name, coord in field.coords.items():
        if coord.ndim != 0 or name == "member" or name not in dims:
            continue
        value = coord.values
        if np.issubdtype(value.dtype, np.datetime64):
            text = str(np.datetime_as_string(value, unit="D"))
        elif hasattr(value.item(), "strftime"):  # cftime dates
            text = value.item().strftime("%Y-%m-%d")
        elif np.issubdtype(value.dtype, np.number):
            text = f"{value.item():g}"
        else:
            text = str(value)
        parts.append(f"{name} = {text}")
    return ", ".join(parts)


def _panels(
    sub: xr.Dataset, variable: str, members: bool, names: list[str]
) -> list[tuple[str, xr.DataArray, str]]:
    """(title, 2D field, kind) of every panel; kind is ``value``, ``error`` or ``spread``."""
    from sparsediff.filling.fill import ensemble_mean, ensemble_std

    da = sub[variable]
    mean = ensemble_mean(sub[[variable]])[variable] if members else da
    panels = [
        ("input (gaps light grey)", sub["__input"], "value"),
        ("sparsediff fill" + (" (ensemble mean)" if members else ""), mean, "value"),
    ]
    panels += [(f"{name} fill", sub[f"__compare_{name}"], "value") for name in names]
    if "__truth" in sub:
        panels.append(("truth", sub["__truth"], "value"))
        panels.append(("error: fill − truth", mean - sub["__truth"], "error"))
    if members and da.sizes["member"] > 1:
        spread = ensemble_std(sub[[variable]])[variable]  # exactly 0 at observed points
        panels.append(("ensemble spread (std over members)", spread, "spread"))
    return panels


def plot_fill(
    filled: xr.Dataset,
    variable: str | None = None,
    *,
    original: xr.Dataset | None = None,
    truth: xr.Dataset | None = None,
    hidden: xr.DataArray | xr.Dataset | None = None,
    compare: Mapping[str, xr.Dataset | xr.DataArray] | None = None,
    path: str | os.PathLike[str] | None = None,
    **isel: int,
) -> Any:
    """Draw the input with its gaps, the fill and its ensemble spread side by side.

    Invalid points (land, air: flag 2) are dark grey on every panel and gaps
    light grey in the input; held-out points, when given, are outlined in red.
    The slice's coordinates (e.g. its date) head the figure. Only the slice
    shown is computed, in one pass for all panels.

    Parameters
    ----------
    filled
        Output of ``sparsediff.fill`` (with or without a ``member`` dim).
    variable
        Variable to show (default: the first one with a ``_fill_flag``).
    original
        The gappy input (default: the filled data masked by its flag).
    truth
        Optional complete field: adds a truth panel and an error panel
        (fill − truth).
    hidden
        Optional mask (True = hidden for scoring, e.g. the ``held`` output of
        ``sparsediff.evaluation.holdout.make_holdout``; a Dataset gives its
        ``variable``), outlined on every panel.
    compare
        Other fills to show beside it, ``{name: Dataset or DataArray}`` (e.g. a
        classical fill), on the same colour scale.
    path
        Save the figure there, atomically, in the format its suffix names (PNG, PDF,
        ...), and close it.
    **isel
        Index of the 2D slice to show (e.g. ``time=0``); further dims take index 0.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if variable is None:
        flagged = [
            str(v)[: -len("_fill_flag")] for v in filled.data_vars if str(v).endswith("_fill_flag")
        ]
        if not flagged:
            raise ValueError("no <var>_fill_flag variable found; pass variable=")
        variable = flagged[0]
    da = filled[variable]
    members = "member" in da.dims
    keep = ("member",) if members else ()
    parts: dict[str, xr.DataArray] = {variable: _slice2d(da, isel, keep)}
    flag = filled.get(f"{variable}_fill_flag")
    if flag is not None:
        parts["__flag"] = _slice2d(flag, isel)
    if original is not None:
        parts["__input"] = _slice2d(original[variable], isel)
    names = list(compare or {})
    for name, other in (compare or {}).items():
        field = other[variable] if isinstance(other, xr.Dataset) else other
        parts[f"__compare_{name}"] = _slice2d(
            field.mean("member") if "member" in field.dims else field, isel
        )
    if truth is not None:
        parts["__truth"] = _slice2d(truth[variable], isel)
    if hidden is not None:
        hmask = hidden[variable] if isinstance(hidden, xr.Dataset) else hidden
        parts["__hidden"] = _slice2d(hmask.astype(bool), isel)
    sub = xr.Dataset(parts).compute()  # one pass over the (possibly lazy) fill
    if "__input" not in sub:
        first = sub[variable].isel(member=0) if members else sub[variable]
        sub["__input"] = first.where(sub["__flag"] == 0) if "__flag" in sub else first
    panels = _panels(sub, variable, members, names)
    invalid = sub["__flag"] == 2 if "__flag" in sub else None
    hid = sub.get("__hidden")
    head = f"{variable}" + (f" [{da.attrs['units']}]" if da.attrs.get("units") else "")
    label = _slice_label(panels[1][1], list(da.dims))
    head += f" — {label}" if label else ""
    if invalid is not None and bool(invalid.any()):
        head += "\ninvalid points (land) dark grey"
    return _draw(panels, invalid, hid, head, da.attrs.get("units", ""), path)


def _draw(
    panels: list[tuple[str, xr.DataArray, str]],
    invalid: xr.DataArray | None,
    hid: xr.DataArray | None,
    head: str,
    units: str,
    path: str | os.PathLike[str] | None,
) -> Any:
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    vals = np.concatenate([np.ravel(p[1].values) for p in panels if p[2] == "value"])
    vmin, vmax = np.nanpercentile(vals, [1, 99]) if np.isfinite(vals).any() else (0, 1)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.4 * len(panels)), squeeze=False)
    unit = f" [{units}]" if units else ""
    for i, (ax, (title, field, kind)) in enumerate(zip(axes[:, 0], panels, strict=True)):
        missing = field.isnull()
        if invalid is not None:
            _overlay(ax, invalid.copy(data=invalid.values & missing.values), INVALID_COLOUR)
        if i == 0:
            gaps = missing & ~invalid.values if invalid is not None else missing
            _overlay(ax, gaps, GAP_COLOUR)
        if kind == "value":
            kw: dict[str, Any] = {"vmin": vmin, "vmax": vmax, "cmap": VALUE_CMAP}
        elif kind == "error":
            lim = float(np.nanpercentile(np.abs(field.values), 99)) if field.notnull().any() else 1
            kw = {"vmin": -(lim or 1.0), "vmax": lim or 1.0, "cmap": ERROR_CMAP}
        else:
            kw = {"vmin": 0.0, "cmap": SPREAD_CMAP}
        name = {"value": "value", "error": "fill − truth", "spread": "spread"}[kind]
        field.plot(ax=ax, cbar_kwargs={"label": f"{name}{unit}"}, **kw)
        if hid is not None and bool(hid.any()):
            hid.astype(float).plot.contour(
                ax=ax, levels=[0.5], colors=[HIDDEN_COLOUR], linewidths=0.8, add_colorbar=False
            )
            title += " — held-out points outlined"
        ax.set_title(title)
    fig.suptitle(head)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
        plt.close(fig)
    return fig


def plot_calibration(
    by_distance: Any,
    ranks: xr.DataArray,
    *,
    units: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Is the spread right? Spread and error by distance to the data, and the rank histogram.

    Parameters
    ----------
    by_distance
        The table of [`by_distance`][sparsediff.evaluation.spread.by_distance]
        (its ``all`` row is left out of the left panel and quoted in its title).
    ranks
        The counts of [`rank_histogram`][sparsediff.evaluation.metrics.rank_histogram].
    units
        Units of the variable (axis label of the left panel).
    path
        Save the figure there, atomically, in the format its suffix names (PNG, PDF, ...).

    Returns
    -------
    matplotlib.figure.Figure
        Left: the ensemble mean's RMSE and the member spread (scaled by
        ``sqrt((K + 1) / K)``, so the two lines meet for a calibrated ensemble)
        per distance bin, with the spread/skill ratio written over each bin.
        Right: the rank histogram as a share of the points, with the flat
        line ``1 / (K + 1)`` of a calibrated ensemble.
    """
    from matplotlib.figure import Figure

    table = by_distance.set_index("bin")
    bins = [b for b in table.index if b != "all"]
    rows = table.loc[bins]
    k = int(ranks.sizes["rank"]) - 1
    factor = np.sqrt((k + 1) / k) if k > 0 else 1.0
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    x = np.arange(len(bins))
    left.plot(x, rows["rmse"], "o-", color="black", label="error (RMSE of the mean)")
    left.plot(x, factor * rows["spread"], "s--", color="tab:red", label="spread (scaled std)")
    for i, ratio in enumerate(rows["spread_skill"]):
        left.annotate(f"{ratio:.2f}", (i, float(rows["rmse"].iloc[i])), textcoords="offset points",
                      xytext=(0, 8), ha="center", fontsize=8)  # fmt: skip
    left.set_xticks(x, [f"{b}\n({n:,})" for b, n in zip(bins, rows["points"], strict=True)])
    left.set_xlabel("distance to the nearest observed point [grid steps] (hidden points)")
    left.set_ylabel(f"RMSE / spread [{units}]" if units else "RMSE / spread")
    overall = table.loc["all", "spread_skill"] if "all" in table.index else float("nan")
    left.set_title(f"spread/skill per bin (1 = calibrated; all points: {overall:.2f})")
    left.legend(loc="upper left", fontsize=8)
    left.grid(alpha=0.3)
    share = ranks.values / max(int(ranks.values.sum()), 1)
    right.bar(ranks["rank"].values, share, color="tab:blue")
    right.axhline(1 / (k + 1), color="black", linestyle="--", label="calibrated (flat)")
    right.set_xlabel(f"rank of the truth among the {k} members")
    right.set_ylabel("share of hidden points")
    right.set_title("rank histogram (flat = calibrated)")
    right.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_training(
    run_dir: str | os.PathLike[str], *, path: str | os.PathLike[str] | None = None
) -> Any:
    """Training curves of a run: the loss (and held-out RMSE) per step, one panel per stage.

    Parameters
    ----------
    run_dir
        A training run's output directory (``sparsediff train ... --out RUN``),
        holding ``metrics.csv``.
    path
        Save the figure there, atomically, in the format its suffix names (PNG, PDF, ...).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InputError
        No ``metrics.csv`` in ``run_dir``, or one without logged steps.

    Examples
    --------
    ``python -c "from sparsediff.plotting import plot_training; plot_training('runs/demo',
    path='curves.png')"``
    """
    import pandas as pd
    from matplotlib.figure import Figure

    from sparsediff.errors import InputError

    csv_path = os.path.join(os.fspath(run_dir), "metrics.csv")
    if not os.path.isfile(csv_path):
        raise InputError(f"no metrics.csv in {os.fspath(run_dir)!r}: is it a training run?")
    table = pd.read_csv(csv_path)
    if table.empty or "stage" not in table:
        raise InputError(f"{csv_path!r} holds no logged training step")
    stages = list(dict.fromkeys(table["stage"]))
    fig = Figure(figsize=(5.5 * len(stages), 3.6))
    axes = fig.subplots(1, len(stages), squeeze=False)[0]
    for ax, stage in zip(axes, stages, strict=True):
        rows = table[table["stage"] == stage]
        ax.plot(rows["step"], rows["loss"], color="black", label="training loss")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"{stage}")
        ax.grid(alpha=0.3)
        val = rows.dropna(subset=["val_rmse"]) if "val_rmse" in rows else rows.iloc[:0]
        if len(val):
            twin = ax.twinx()
            twin.plot(val["step"], val["val_rmse"], "o-", color="tab:red", label="held-out RMSE")
            twin.set_ylabel("held-out RMSE (physical units)")
            twin.legend(loc="upper right", fontsize=8)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
