"""Plots people would rather look at than read: observed / filled / spread panels."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["plot_fill"]


def _field(da: xr.DataArray, isel: dict[str, int]) -> xr.DataArray:
    da = da.isel({k: v for k, v in isel.items() if k in da.dims})
    while da.ndim > 2:
        da = da.isel({da.dims[0]: 0})
    return da


#: Colours of the points that hold no value in the input panel.
GAP_COLOUR = "#d9d9d9"
INVALID_COLOUR = "#404040"
HIDDEN_COLOUR = "#e8002d"


def _overlay(ax: Any, mask: xr.DataArray, colour: str) -> None:
    """Paint the True points of a 2D mask in one flat colour."""
    from matplotlib.colors import ListedColormap

    if bool(mask.any()):
        mask.where(mask).plot(ax=ax, cmap=ListedColormap([colour]), add_colorbar=False)


def plot_fill(
    filled: xr.Dataset,
    variable: str | None = None,
    *,
    original: xr.Dataset | None = None,
    truth: xr.Dataset | None = None,
    hidden: xr.DataArray | xr.Dataset | None = None,
    path: str | os.PathLike[str] | None = None,
    **isel: int,
) -> Any:
    """Draw the input with its gaps, the fill, and the ensemble spread side by side.

    In the input panel gaps are light grey and invalid points (land, air: flag
    2) dark grey; held-out points, when given, are outlined in red on every
    panel.

    Parameters
    ----------
    filled
        Output of :func:`sparsediff.fill` (with or without a ``member`` dim).
    variable
        Variable to show (default: the first one with a ``_fill_flag``).
    original
        The gappy input (default: the filled data masked by its flag).
    truth
        Optional complete field to show as an extra panel.
    hidden
        Optional mask (True = hidden for scoring, e.g. the ``held`` output of
        :func:`~sparsediff.evaluation.holdout.make_holdout`; a Dataset gives
        its ``variable``), outlined on every panel.
    path
        Save the figure there (PNG, PDF, ...) and close it.
    **isel
        Index of the 2D slice to show (e.g. ``time=0``); further dims take index 0.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if variable is None:
        flagged = [
            str(v)[: -len("_fill_flag")] for v in filled.data_vars if str(v).endswith("_fill_flag")
        ]
        if not flagged:
            raise ValueError("no <var>_fill_flag variable found; pass variable=")
        variable = flagged[0]
    da = filled[variable]
    flag = filled.get(f"{variable}_fill_flag")
    members = "member" in da.dims
    mean = da.mean("member") if members else da
    spread = da.std("member") if members and da.sizes["member"] > 1 else None
    if original is not None:
        obs = original[variable]
    elif flag is not None:
        obs = mean.where(flag == 0)
    else:
        obs = mean
    panels: list[tuple[str, xr.DataArray, str]] = [
        ("input (gaps light grey, invalid dark grey)", _field(obs, isel), "viridis"),
        ("filled" + (" (ensemble mean)" if members else ""), _field(mean, isel), "viridis"),
    ]
    if truth is not None:
        panels.append(("truth", _field(truth[variable], isel), "viridis"))
    if spread is not None:
        panels.append(("ensemble spread (std)", _field(spread, isel), "magma"))
    vals = np.concatenate([np.ravel(p[1].values) for p in panels if p[2] == "viridis"])
    vmin, vmax = np.nanpercentile(vals, [1, 99]) if np.isfinite(vals).any() else (0, 1)
    hid = None
    if hidden is not None:
        hmask = hidden[variable] if isinstance(hidden, xr.Dataset) else hidden
        hid = _field(hmask.astype(bool), isel)
    invalid = _field(flag == 2, isel) if flag is not None else None
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.4 * len(panels)), squeeze=False)
    for i, (ax, (title, field, cmap)) in enumerate(zip(axes[:, 0], panels, strict=True)):
        kw = {"vmin": vmin, "vmax": vmax} if cmap == "viridis" else {}
        if i == 0:
            missing = field.isnull()
            if invalid is not None:
                _overlay(ax, missing & ~invalid.values, GAP_COLOUR)
                _overlay(ax, invalid.copy(data=invalid.values & missing.values), INVALID_COLOUR)
            else:
                _overlay(ax, missing, GAP_COLOUR)
        field.plot(ax=ax, cmap=cmap, **kw)
        if hid is not None and bool(hid.any()):
            hid.astype(float).plot.contour(
                ax=ax, levels=[0.5], colors=[HIDDEN_COLOUR], linewidths=0.8, add_colorbar=False
            )
            title += " — held-out points outlined"
        ax.set_title(title)
    units = da.attrs.get("units", "")
    fig.suptitle(f"{variable}" + (f" [{units}]" if units else ""))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
