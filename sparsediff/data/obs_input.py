"""Turning user columns into clean observation arrays: one rule for each kind of bad row.

Used by every constructor of [`Observations`][sparsediff.data.observations.Observations]:
numbers become float64, times ``datetime64[ns]`` (text parsed by pandas, time
zones converted to UTC), nullable columns NaN; rows with a NaN value or
coordinate and repeats of an earlier row are dropped and counted (a
[`SparsediffWarning`][sparsediff.errors.SparsediffWarning]), or refused with ``strict``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from sparsediff.data.target_grid import role_of_name
from sparsediff.errors import InputError, SparsediffWarning

__all__ = ["as_coord", "clean_rows", "column", "first_line", "floats", "isnan", "report"]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (errors are one line)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def as_coord(name: str, values: Any) -> np.ndarray:
    """A coordinate as float64, or datetime64[ns] for a time."""
    arr = np.asarray(values)
    textual = arr.dtype.kind in "OUS"  # strings or Timestamps; numbers stay numbers
    if np.issubdtype(arr.dtype, np.datetime64) or (textual and role_of_name(name) == "time"):
        if not np.issubdtype(arr.dtype, np.datetime64):
            try:
                arr = pd.to_datetime(pd.Series(arr), utc=True).dt.tz_localize(None).to_numpy()
            except (ValueError, TypeError) as exc:
                raise InputError(
                    f"coordinate {name!r} does not hold times: {first_line(exc)}"
                ) from None
        return arr.astype("datetime64[ns]")
    try:
        return arr.astype(np.float64)
    except (ValueError, TypeError):
        raise InputError(f"coordinate {name!r} is not numeric") from None


def floats(values: Any, what: str) -> np.ndarray:
    """``values`` as float64; `InputError` naming ``what`` when they are not numbers."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise InputError(f"the {what} values are not numeric") from None


def column(df: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as numpy; nullable numbers (``pd.NA``) as float64 with NaN."""
    series = df[name]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy()


def isnan(arr: np.ndarray) -> np.ndarray:
    """Missing entries: NaN/inf for numbers, NaT for times."""
    return np.isnat(arr) if np.issubdtype(arr.dtype, np.datetime64) else ~np.isfinite(arr)


def report(dropped: dict[str, int], what: str, n: int, strict: bool, detail: str) -> None:
    """Count ``n`` dropped rows under ``what``; refuse them instead when strict."""
    if n == 0:
        return
    if strict:
        raise InputError(f"{n} observations {detail} (strict: refused)")
    dropped[what] = dropped.get(what, 0) + n
    warnings.warn(f"{n} observations {detail}: dropped", SparsediffWarning, stacklevel=4)


def clean_rows(
    values: np.ndarray, coords: dict[str, np.ndarray], platform: np.ndarray | None, strict: bool
) -> tuple[np.ndarray, dict[str, int]]:
    """Which rows to keep: not NaN in the value or any coordinate, and not a repeat of an
    earlier row (same coordinates, value and platform); the drops counted by reason.

    Raises
    ------
    InputError
        With ``strict``, any row that would be dropped.
    """
    dropped: dict[str, int] = {}
    bad = isnan(values)
    for arr in coords.values():
        bad |= isnan(arr)
    report(dropped, "NaN", int(bad.sum()), strict, "have a NaN value or coordinate")
    keep = ~bad
    frame = pd.DataFrame({**{f"c{i}": a for i, a in enumerate(coords.values())}, "v": values})
    if platform is not None:
        frame["p"] = platform
    dup = frame.duplicated().to_numpy() & keep
    report(dropped, "duplicate", int(dup.sum()), strict, "repeat an earlier row")
    return keep & ~dup, dropped
