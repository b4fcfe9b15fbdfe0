"""The one line a fill ends with: how many points it filled, kept and left invalid."""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr

__all__ = ["flag_counts", "summary_line"]


def flag_counts(filled: xr.Dataset) -> dict[str, int]:
    """Points per fill-flag state over every ``<var>_fill_flag`` of ``filled``.

    Parameters
    ----------
    filled
        Output of ``sparsediff.fill`` (or a store it was written to).

    Returns
    -------
    dict
        ``{"filled": n, "observed": n, "invalid": n}``: flag values 1, 0 and 2,
        summed over the variables (one dask compute for all of them).
    """
    flags = [filled[v] for v in filled.data_vars if str(v).endswith("_fill_flag")]
    todo = [[(f == code).sum().data for code in (1, 0, 2)] for f in flags]
    (done,) = dask.compute(todo)
    totals = np.sum(np.asarray(done, dtype=np.int64).reshape(-1, 3), axis=0)
    return {"filled": int(totals[0]), "observed": int(totals[1]), "invalid": int(totals[2])}


def summary_line(counts: dict[str, int]) -> str:
    """``"filled 1,234 points, kept 5,678 as observed, left 90 invalid (NaN)"``."""
    return (
        f"filled {counts['filled']:,} points, kept {counts['observed']:,} as observed, "
        f"left {counts['invalid']:,} invalid (NaN)"
    )
