"""Plots people would rather look at than read: the fill panels and the calibration figure.

:func:`plot_fill` draws the input with its gaps, the fill, optional classical
fills, the truth and the error, and the ensemble spread of one 2D slice; it
computes that slice once (one dask compute for every panel), so on a lazy fill
it runs the model only for the blocks that hold the slice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["plot_fill"]

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
        mask.where(mask).plot(ax=ax, cmap=ListedColormap([colour]), add_colorbar=False)


def _slice_label(field: xr.DataArray) -> str:
    """``"time = 2006-07-16"`` for the scalar coordinates of a 2D slice (dates to the day)."""
    parts = []
    for name, coord in field.coords.items():
        if coord.ndim != 0 or name == "member":
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
        Save the figure there (PNG, PDF, ...) and close it.
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
    return _draw(panels, invalid, hid, variable, da.attrs.get("units", ""), path)


def _draw(
    panels: list[tuple[str, xr.DataArray, str]],
    invalid: xr.DataArray | None,
    hid: xr.DataArray | None,
    variable: str,
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
        field.plot(ax=ax, cbar_kwargs={"label": f"{variable}{unit}"}, **kw)
        if hid is not None and bool(hid.any()):
            hid.astype(float).plot.contour(
                ax=ax, levels=[0.5], colors=[HIDDEN_COLOUR], linewidths=0.8, add_colorbar=False
            )
            title += " — held-out points outlined"
        ax.set_title(title)
    label = _slice_label(panels[1][1])
    head = f"{variable}{unit}" + (f" — {label}" if label else "")
    if invalid is not None and bool(invalid.any()):
        head += " — invalid (land) dark grey"
    fig.suptitle(head)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
