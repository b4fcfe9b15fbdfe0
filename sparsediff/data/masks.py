"""The three states of a grid point: observed, gap and invalid (DESIGN §1).

Every point of every variable is exactly one of

* ``OBSERVED`` (0): a usable value (see
  [`MissingRule`][sparsediff.data.missing_rule.MissingRule]) that is not masked as invalid;
* ``GAP`` (1): missing and to be filled;
* ``INVALID`` (2): never filled (land in an ocean field, air around a head),
  given by a user mask and/or found as points missing at every step of a dim.

[`states`][states] returns a ``uint8`` array per variable with these codes (the
``flag_values`` of the fill flag); [`observed`][observed], [`gap`][gap] and
`invalid` turn it into boolean masks (``True`` where that state holds,
so ``observed(...)`` is the mask that is ``True`` for observed points).

Which values are missing is decided in `sparsediff.data.missing_rule`; how a user's
invalid mask is read and checked, in `sparsediff.data.invalid_rules`. Their public
names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from sparsediff.data.invalid_rules import (
    InvalidSpec,
    _along_dims,
    _fit_mask,
    _user_masks,
    at_or_below,
    invalid_mask,
)
from sparsediff.data.missing_rule import FILL_MAGNITUDE, MissingRule, finite_mask
from sparsediff.data.selection import as_dataset, numeric_variables, validate_dims
from sparsediff.errors import InputError

__all__ = [
    "FILL_MAGNITUDE",
    "FLAG_MEANINGS",
    "GAP",
    "INVALID",
    "OBSERVED",
    "InvalidSpec",
    "MissingRule",
    "at_or_below",
    "finite_mask",
    "gap",
    "gap_summary",
    "grid_invalid",
    "invalid",
    "invalid_mask",
    "observed",
    "states",
    "states_and_range",
]

OBSERVED = 0
GAP = 1
INVALID = 2
FLAG_MEANINGS = "observed gap invalid"


def _to_state(
    ok: xr.DataArray, inv: xr.DataArray | None, var: xr.DataArray, name: str
) -> xr.DataArray:
    st = (~ok).astype(np.uint8)  # OBSERVED = 0, GAP = 1
    if inv is not None:
        # DataArray.where keeps the coordinates' attributes (xr.where drops them)
        st = st.where(~inv, np.uint8(INVALID)).transpose(*var.dims)
    st = st.astype(np.uint8, copy=False)
    st.attrs = {
        "long_name": f"state of {name}",
        "flag_values": np.array([OBSERVED, GAP, INVALID], dtype=np.uint8),
        "flag_meanings": FLAG_MEANINGS,
    }
    st.name = name
    return st


def _classify(
    ds: xr.Dataset | xr.DataArray,
    variables: str | Iterable[str] | None,
    invalid: InvalidSpec | Mapping[str, InvalidSpec],
    invalid_along: Hashable | Iterable[Hashable] | None,
    with_range: bool,
) -> tuple[xr.Dataset, dict[str, tuple[float, float]]]:
    data = as_dataset(ds)
    names = numeric_variables(data, variables)
    along = _along_dims(data, invalid_along)
    users = _user_masks(data, names, invalid)
    oks: dict[str, xr.DataArray] = {}
    todo: dict[str, Any] = {}
    for name in names:
        var = data[name]
        validate_dims(var, var.dims)
        user = users[name]
        if user is not None:
            _fit_mask(user, var, name)
        ok = finite_mask(var)
        oks[name] = ok
        todo[f"any/{name}"] = ok.any()
        dims = [d for d in along if d in var.dims]
        if dims:
            todo[f"along/{name}"] = ~ok.any(dim=dims)
        if with_range:
            seen = ok if user is None else (ok & ~_fit_mask(user, var, name))
            values = var.where(seen)
            todo[f"min/{name}"] = values.min()
            todo[f"max/{name}"] = values.max()
    (done,) = dask.compute(todo)
    out: dict[str, xr.DataArray] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for name in names:
        var = data[name]
        if not bool(done[f"any/{name}"]):
            raise InputError(f"variable {name!r} has no finite value (all NaN or fill value)")
        user = users[name]
        inv = _fit_mask(user, var, name) if user is not None else None
        along_mask = done.get(f"along/{name}")
        if along_mask is not None:
            inv = along_mask if inv is None else (inv | along_mask)
        out[name] = _to_state(oks[name], inv, var, name)
        if with_range:
            ranges[name] = (float(done[f"min/{name}"]), float(done[f"max/{name}"]))
    return xr.Dataset(out, attrs={"flag_meanings": FLAG_MEANINGS}), ranges


def states(
    ds: xr.Dataset | xr.DataArray,
    variables: str | Iterable[str] | None = None,
    *,
    invalid: InvalidSpec | Mapping[str, InvalidSpec] = None,
    invalid_along: Hashable | Iterable[Hashable] | None = None,
) -> xr.Dataset:
    """Classify every point as ``OBSERVED``, ``GAP`` or ``INVALID``.

    Parameters
    ----------
    ds
        The data (a DataArray is treated as a one-variable dataset).
    variables
        Variables to classify; default as
        [`numeric_variables`][sparsediff.data.io.numeric_variables].
    invalid
        User mask of invalid points: a variable name, a DataArray (``True``/1
        = invalid) that broadcasts against the variables, or a NetCDF/Zarr
        file holding one such variable; or a mapping of variable name to
        such a mask (a variable left out has none).
    invalid_along
        A dim (or dims): points missing at every step of it are invalid
        (land in a sea-surface field with ``"time"``). Combined with
        ``invalid`` by OR. Variables without that dim are not affected.

    Returns
    -------
    xarray.Dataset
        One ``uint8`` variable per data variable, same dims and coords,
        with CF ``flag_values``/``flag_meanings``. Lazy if the data are.

    Raises
    ------
    InputError
        Unknown or non-numeric variable, unknown or zero-length dim, a mask
        whose dims or shape do not match, or a variable that is all missing.

    Notes
    -----
    The all-missing check and the small ``invalid_along`` mask are computed
    here, in one pass over the data; the returned states stay lazy and no
    longer depend on a reduction over the whole array.
    """
    return _classify(ds, variables, invalid, invalid_along, with_range=False)[0]


def states_and_range(
    ds: xr.Dataset | xr.DataArray,
    variables: str | Iterable[str] | None = None,
    *,
    invalid: InvalidSpec | Mapping[str, InvalidSpec] = None,
    invalid_along: Hashable | Iterable[Hashable] | None = None,
) -> tuple[xr.Dataset, dict[str, tuple[float, float]]]:
    """[`states`][states], and the smallest and largest observed value of each variable.

    The range is computed in the same pass over the data as the states'
    checks (a lazy input is not read once more for it).

    Parameters
    ----------
    ds, variables, invalid, invalid_along
        As for [`states`][states].

    Returns
    -------
    states : xarray.Dataset
        As [`states`][states].
    ranges : dict
        Per variable, ``(min, max)`` over its usable values outside the
        user's invalid mask.
    """
    return _classify(ds, variables, invalid, invalid_along, with_range=True)


def grid_invalid(
    st: xr.Dataset, spatial: Iterable[Hashable], along: Hashable | Iterable[Hashable] | None
) -> dict[str, xr.DataArray]:
    """Points invalid at every step: the invalid mask of a grid, as a model carries it.

    Parameters
    ----------
    st
        The output of [`states`][states] (of the training data).
    spatial
        The spatial dims (always kept).
    along
        The dims the invalid rule ran along (``invalid_along``); the mask is
        reduced over those of them the data have, or, when there are none,
        over every non-spatial dim (so a level dim of a 2-D model is kept
        when land is found along time).

    Returns
    -------
    dict
        Per variable, a computed boolean DataArray (``True`` = invalid at
        every step) with the kept dims and their 1-D coordinates.
    """
    keep = set(spatial)
    steps = [d for d in (() if along is None else validate_dims(st, along)) if d not in keep]
    out: dict[str, xr.DataArray] = {}
    for name, s in st.data_vars.items():
        over = [d for d in steps if d in s.dims] or [d for d in s.dims if d not in keep]
        mask = (s == INVALID).all(over) if over else (s == INVALID)
        mask = mask.reset_coords(drop=True)
        mask = mask.drop_vars([c for c in mask.coords if mask[c].dims != (c,)])
        mask.attrs = {"long_name": f"points of {name} invalid at every training step"}
        out[str(name)] = mask.compute().rename(str(name))
    return out


def _select(st: xr.Dataset | xr.DataArray, code: int) -> xr.Dataset | xr.DataArray:
    if not isinstance(st, xr.Dataset | xr.DataArray):
        raise InputError(f"expected the result of states(), got {type(st).__name__}")
    return st == code


def observed(st: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    """``True`` where the state is ``OBSERVED`` (the mask convention of DESIGN §1).

    Parameters
    ----------
    st
        The output of [`states`][states] (or one of its variables).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Boolean, same structure as ``st``.
    """
    return _select(st, OBSERVED)


def gap(st: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    """``True`` where the state is ``GAP`` (missing and to be filled).

    Parameters
    ----------
    st
        The output of [`states`][states] (or one of its variables).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Boolean, same structure as ``st``.
    """
    return _select(st, GAP)


def invalid(st: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    """``True`` where the state is ``INVALID`` (never filled).

    Parameters
    ----------
    st
        The output of [`states`][states] (or one of its variables).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Boolean, same structure as ``st``.
    """
    return _select(st, INVALID)


def gap_summary(
    ds: xr.Dataset | xr.DataArray,
    variables: str | Iterable[str] | None = None,
    *,
    invalid: InvalidSpec = None,
    invalid_along: Hashable | Iterable[Hashable] | None = None,
    by: Hashable | None = None,
) -> pd.DataFrame:
    """Tabulate how much of each variable is missing.

    Parameters
    ----------
    ds, variables, invalid, invalid_along
        As for [`states`][states].
    by
        ``None`` (default): one row per variable. A dim name: the gap fraction
        along that dim (reduced over all other dims), one column per variable.

    Returns
    -------
    pandas.DataFrame
        With ``by=None``: index ``variable``; columns ``points``,
        ``observed``, ``gap``, ``invalid`` (counts) and ``gap_fraction`` (gap
        points among non-invalid points). With ``by=dim``: index the
        coordinate of ``dim`` (or positions), values the gap fraction at
        each step (NaN where every point is invalid).

    Raises
    ------
    InputError
        As [`states`][states], or ``by`` not a dim of the dataset.
    """
    data = as_dataset(ds)
    st = states(data, variables, invalid=invalid, invalid_along=invalid_along)
    if by is not None:
        validate_dims(data, by)
        todo: dict[str, Any] = {}
        for name, s in st.data_vars.items():
            if by in s.dims:
                other = [d for d in s.dims if d != by]
                todo[str(name)] = (
                    (s == GAP).sum(other).data,
                    (s != INVALID).sum(other).data,
                )
        (done,) = dask.compute(todo)
        index = data.indexes[by] if by in data.indexes else pd.RangeIndex(data.sizes[by])
        columns: dict[str, Any] = {}
        for name, (n_gap, n_valid) in done.items():
            n_valid = np.asarray(n_valid, dtype=np.float64)
            frac = np.full(n_valid.shape, np.nan)
            np.divide(n_gap, n_valid, out=frac, where=n_valid > 0)
            columns[name] = frac
        frame = pd.DataFrame(columns, index=pd.Index(index, name=str(by)))
        frame.columns.name = "gap_fraction"
        return frame
    counts: dict[str, Any] = {
        str(name): [(s == code).sum().data for code in (OBSERVED, GAP, INVALID)]
        for name, s in st.data_vars.items()
    }
    (done,) = dask.compute(counts)
    rows = []
    for name, (n_obs, n_gap, n_inv) in done.items():
        valid = int(n_obs) + int(n_gap)
        rows.append(
            {
                "variable": name,
                "points": int(st[name].size),
                "observed": int(n_obs),
                "gap": int(n_gap),
                "invalid": int(n_inv),
                "gap_fraction": (int(n_gap) / valid) if valid else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("variable")
