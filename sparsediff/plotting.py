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


def plot_fill(
    filled: xr.Dataset,
    variable: str | None = None,
    *,
    original: xr.Dataset | None = None,
    truth: xr.Dataset | None = None,
    path: str | os.PathLike[str] | None = None,
    **isel: int,
) -> Any:
    """Draw the input with its gaps, the fill, and the ensemble spread side by side.

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
        ("input (gaps white)", _field(obs, isel), "viridis"),
        ("filled" + (" (ensemble mean)" if members else ""), _field(mean, isel), "viridis"),
    ]
    if truth is not None:
        panels.append(("truth", _field(truth[variable], isel), "viridis"))
    if spread is not None:
        panels.append(("ensemble spread (std)", _field(spread, isel), "magma"))
    vals = np.concatenate([np.ravel(p[1].values) for p in panels if p[2] == "viridis"])
    vmin, vmax = np.nanpercentile(vals, [1, 99]) if np.isfinite(vals).any() else (0, 1)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.4 * len(panels)), squeeze=False)
    for ax, (title, field, cmap) in zip(axes[:, 0], panels, strict=True):
        kw = {"vmin": vmin, "vmax": vmax} if cmap == "viridis" else {}
        field.plot(ax=ax, cmap=cmap, **kw)
        ax.set_title(title)
    units = da.attrs.get("units", "")
    fig.suptitle(f"{variable}" + (f" [{units}]" if units else ""))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
