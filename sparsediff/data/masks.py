"""The three states of a grid point: observed, gap and invalid (DESIGN §1).

Every point of every variable is exactly one of

* ``OBSERVED`` (0): a usable value (see below) that is not masked as invalid;
* ``GAP`` (1): missing and to be filled;
* ``INVALID`` (2): never filled (land in an ocean field, air around a head),
  given by a user mask and/or found as points missing at every step of a dim.

[`states`][states] returns a ``uint8`` array per variable with these codes (the
``flag_values`` of the fill flag); [`observed`][observed], [`gap`][gap] and
`invalid` turn it into boolean masks (``True`` where that state holds,
so ``observed(...)`` is the mask that is ``True`` for observed points).

**Which values are missing** ([`MissingRule`][MissingRule], one rule for training,
fill and the statistics). A value is missing when it is

1. NaN or ±inf;
2. of magnitude ``>= 1e20`` (`FILL_MAGNITUDE`) in a floating-point
   variable: no physical field in sparsediff's scope reaches it, and it is
   what fill values look like in practice (netCDF's default 9.97e36, the
   1e20 of CMIP and NCL, 1e30 of older models) when a file does not declare
   them. Rescale a variable whose real values reach 1e20;
3. equal to the ``_FillValue`` or ``missing_value`` attribute (data opened
   without CF decoding; decoded data already hold NaN there);
4. outside ``valid_min``/``valid_max``/``valid_range`` (CF), when the
   variable declares them. For decoded packed data the bounds are unpacked
   with the ``scale_factor``/``add_offset`` of the encoding, as CF states
   them in packed units.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

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

InvalidSpec = str | os.PathLike[str] | xr.DataArray | None


#: Values of at least this magnitude are fill values, not observations (rule 2 above).
FILL_MAGNITUDE = 1e20


def _bound(value: Any) -> float | None:
    try:
        return float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class MissingRule:
    """Which values of one variable are missing (see the module docstring).

    Attributes
    ----------
    fills
        Values that mark a missing point (``_FillValue``, ``missing_value``).
    valid_min, valid_max
        CF valid bounds, in the units of the values as read (``None``: none).
    magnitude
        Whether values of magnitude ``>= FILL_MAGNITUDE`` are missing (floats).
    """

    fills: tuple[float, ...] = ()
    valid_min: float | None = None
    valid_max: float | None = None
    magnitude: bool = True

    @classmethod
    def of(cls, da: xr.DataArray) -> MissingRule:
        """The rule of a variable, from its dtype, attributes and encoding."""
        attrs, enc = da.attrs, da.encoding
        fills = tuple(
            float(f)
            for key in ("_FillValue", "missing_value")
            if attrs.get(key) is not None
            for f in np.atleast_1d(attrs[key])
            if np.issubdtype(np.asarray(f).dtype, np.number)
        )
        lo, hi = _bound(attrs.get("valid_min")), _bound(attrs.get("valid_max"))
        if "valid_range" in attrs:
            rng = np.atleast_1d(attrs["valid_range"])
            if rng.size == 2:
                lo, hi = _bound(rng[0]), _bound(rng[1])
        packed = "scale_factor" in enc or "add_offset" in enc
        if packed and "scale_factor" not in attrs and "add_offset" not in attrs:
            # decoded packed data: CF gives the valid bounds in packed units
            scale, offset = float(enc.get("scale_factor", 1.0)), float(enc.get("add_offset", 0.0))
            bounds = sorted(b * scale + offset for b in (lo, hi) if b is not None)
            if lo is not None and hi is not None:
                lo, hi = bounds
            elif lo is not None:
                lo = lo * scale + offset
            elif hi is not None:
                hi = hi * scale + offset
        return cls(fills, lo, hi, da.dtype.kind in "fc")

    def usable(self, x: np.ndarray) -> np.ndarray:
        """``True`` where ``x`` holds a usable (not missing) value."""
        x = np.asarray(x)
        if x.dtype.kind in "fc":
            with np.errstate(invalid="ignore", over="ignore"):  # float16: 1e20 is inf
                ok = np.isfinite(x)
                if self.magnitude:
                    ok &= np.abs(x) < FILL_MAGNITUDE
        else:
            ok = np.ones(x.shape, dtype=bool)
        if self.fills:
            ok &= ~np.isin(x, np.asarray(self.fills, dtype=np.float64))
        with np.errstate(invalid="ignore", over="ignore"):
            if self.valid_min is not None:
                ok &= x >= self.valid_min
            if self.valid_max is not None:
                ok &= x <= self.valid_max
        return ok


def finite_mask(da: xr.DataArray) -> xr.DataArray:
    """``True`` where ``da`` holds a usable value (see [`MissingRule`][MissingRule]).

    Parameters
    ----------
    da
        A numeric variable. CF-decoded data carry NaN at fill values; for
        undecoded data the ``_FillValue``/``missing_value`` attributes count
        too; magnitudes ``>= 1e20`` and values outside the CF valid range are
        missing.

    Returns
    -------
    xarray.DataArray
        Boolean, same dims as ``da`` (lazy if ``da`` is).
    """
    rule = MissingRule.of(da)
    return xr.apply_ufunc(rule.usable, da, dask="parallelized", output_dtypes=[bool])


def _along_dims(ds: xr.Dataset, along: Hashable | Iterable[Hashable] | None) -> tuple:
    if along is None:
        return ()
    return validate_dims(ds, along)


def _mask_from_file(path: Path) -> xr.DataArray:
    from sparsediff.data.io import open as open_data

    mask_ds = open_data(path)
    names = [str(n) for n in mask_ds.data_vars]
    if len(names) != 1:
        raise InputError(
            f"invalid-mask file {str(path)!r} must hold exactly one data variable, "
            f"it holds {', '.join(names) or 'none'}"
        )
    return mask_ds[names[0]]


def invalid_mask(ds: xr.Dataset, spec: InvalidSpec) -> xr.DataArray | None:
    """Resolve an ``invalid`` argument into a boolean DataArray (``True`` = invalid).

    Parameters
    ----------
    ds
        The dataset the mask belongs to.
    spec
        ``None``; the name of a variable of ``ds``; a DataArray (bool, or
        numeric where non-zero — NaN included — means invalid); or the path of
        a NetCDF/Zarr file holding exactly one such variable.

    Returns
    -------
    xarray.DataArray or None
        The boolean mask, with the dims of the mask (it broadcasts later).

    Raises
    ------
    InputError
        An unknown name, a missing file, or a mask that is not bool or numeric.
    """
    if spec is None:
        return None
    if isinstance(spec, xr.DataArray):
        mask, what = spec, f"invalid mask {spec.name!r}" if spec.name else "invalid mask"
    elif isinstance(spec, str) and spec in ds.variables:
        mask, what = ds[spec], f"invalid mask variable {spec!r}"
    elif isinstance(spec, str | os.PathLike):
        path = Path(os.fspath(spec)).expanduser()
        if not path.exists():
            raise InputError(
                f"invalid mask {os.fspath(spec)!r} is neither a variable of the dataset "
                f"(variables: {', '.join(map(str, ds.variables))}) nor an existing file"
            )
        mask, what = _mask_from_file(path), f"invalid mask from {str(path)!r}"
    else:
        raise InputError(
            "invalid must be a variable name, a DataArray or a file path, "
            f"got {type(spec).__name__}"
        )
    if mask.dtype == np.bool_:
        out = mask
    elif np.issubdtype(mask.dtype, np.number):
        out = mask != 0
    else:
        raise InputError(f"{what} has dtype {mask.dtype}; it must be bool or 0/1 numbers")
    out.attrs = {}
    out.name = "invalid"
    return out


def at_or_below(
    ds: xr.Dataset, variables: Iterable[str], threshold: float, *, invalid: InvalidSpec = None
) -> xr.DataArray:
    """Invalid mask of points where any variable is ``<= threshold`` (e.g. air = 0).

    Parameters
    ----------
    ds
        The data.
    variables
        Variables the rule looks at.
    threshold
        Points at or below it are invalid.
    invalid
        An extra ``invalid`` spec (as for [`states`][states]) OR-ed in.

    Returns
    -------
    xarray.DataArray
        Boolean, ``True`` = invalid; lazy if the data are.
    """
    masks_ = [ds[v] <= threshold for v in variables]
    out = masks_[0]
    for m in masks_[1:]:
        out = out | m
    extra = invalid_mask(ds, invalid)
    return out if extra is None else (out | extra)


def _fit_mask(mask: xr.DataArray, var: xr.DataArray, name: str) -> xr.DataArray:
    """Check ``mask`` broadcasts against ``var``; return it with ``var``'s coords."""

    def shape_text(obj: xr.DataArray) -> str:
        return "(" + ", ".join(f"{d}: {n}" for d, n in obj.sizes.items()) + ")"

    bad = [d for d in mask.dims if d not in var.sizes or var.sizes[d] != mask.sizes[d]]
    if bad:
        raise InputError(
            f"invalid mask of shape {shape_text(mask)} does not match variable {name!r} "
            f"of shape {shape_text(var)} (dim {bad[0]!r})"
        )
    for d in mask.dims:
        if d in mask.indexes and d in var.indexes:
            a, b = mask.indexes[d], var.indexes[d]
            same = a.equals(b)
            if not same and a.dtype.kind in "iuf" and b.dtype.kind in "iuf":
                same = bool(np.allclose(np.asarray(a), np.asarray(b)))
            if not same:
                raise InputError(
                    f"coordinates of dim {d!r} differ between the invalid mask "
                    f"and variable {name!r}"
                )
    return mask.drop_vars(list(mask.coords))


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


def _user_masks(
    data: xr.Dataset, names: list[str], invalid: InvalidSpec | Mapping[str, InvalidSpec]
) -> dict[str, xr.DataArray | None]:
    """The resolved user mask of each variable (one spec for all, or one per variable)."""
    if isinstance(invalid, Mapping):
        unknown = [k for k in invalid if k not in names]
        if unknown:
            raise InputError(f"invalid masks given for {unknown}, which are not among {names}")
        return {n: invalid_mask(data, invalid.get(n)) for n in names}
    shared = invalid_mask(data, invalid)
    return dict.fromkeys(names, shared)


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
