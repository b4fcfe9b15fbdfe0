"""Held-out gaps: hide a gap pattern among the observed points of a dataset.

To score a fill you need truth where the method saw nothing. [`make_holdout`][make_holdout]
draws a gap pattern (``"boxes:0.3"``, ``"mcar:0.5"``, ``"cloud:0.3"`` ...; see
[`sparsediff.data.gaps`][sparsediff.data.gaps]) over the spatial ``dims`` of every slice of the
other dims (time, level ...), hides the pattern's points that are **observed**,
and returns the gappy data together with the mask of the hidden points — the
points to score.

Properties the evaluation relies on:

* only observed points are hidden: gaps stay gaps, invalid points stay invalid,
  so ``held`` implies "finite in the input";
* the pattern of a slice is keyed by ``seed`` and the slice's index in the
  *whole* dataset ([`sparsediff.rng.seed_for`][sparsediff.rng.seed_for]), so the same seed gives the
  same gaps whatever the ``region``, the chunking or the other variables;
* the hidden share is the pattern's share of the slice's grid (exactly
  ``round(missing * size)`` grid points, see [`gap_mask`][sparsediff.data.gaps.gap_mask]);
  among the observed points it is the same in expectation;
* with ``protect_along`` (default: the time dim), a point is never hidden at
  *every* step of that dim where it is observed — its first observed step is
  shown again — so a point does not turn "invalid" (never observed) because of
  the holdout, and record-based methods (time mean, EOFs) still have a value
  for it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, overload

import numpy as np
import xarray as xr

from sparsediff.data import masks
from sparsediff.data.gaps import gap_mask, parse_pattern
from sparsediff.data.selection import as_dataset, numeric_variables
from sparsediff.errors import InputError
from sparsediff.rng import Stream, seed_for

__all__ = ["HOLDOUT_KEY", "make_holdout", "region_slices"]

HOLDOUT_KEY = int(Stream.HOLDOUT)
"""Key that separates holdout draws from every other keyed draw of a run (``Stream.HOLDOUT``)."""


def region_slices(
    ds: xr.Dataset | xr.DataArray, region: Mapping[Hashable, Any] | None
) -> dict[Hashable, slice]:
    """Normalise a ``region`` (index ranges per dim) into integer slices.

    Parameters
    ----------
    ds
        The data the region refers to.
    region
        ``None`` (the whole data) or ``{dim: slice(start, stop)}``; a
        ``(start, stop)`` pair or list is accepted for a slice. Indices are
        positions (as `xarray.Dataset.isel`), negatives count from the end.

    Returns
    -------
    dict
        ``{dim: slice(start, stop)}`` with non-negative bounds and step 1.

    Raises
    ------
    InputError
        An unknown dim, a step other than 1 or an empty range.
    """
    out: dict[Hashable, slice] = {}
    if not region:
        return out
    sizes = dict(ds.sizes)
    for dim, spec in region.items():
        if dim not in sizes:
            raise InputError(
                f"region names dim {dim!r}, which the data do not have "
                f"(dims: {', '.join(f'{d}={n}' for d, n in sizes.items())})"
            )
        if isinstance(spec, slice):
            sl = spec
        else:
            try:
                start, stop = spec
            except (TypeError, ValueError):
                raise InputError(
                    f"region of dim {dim!r} must be a slice or a (start, stop) pair, got {spec!r}"
                ) from None
            sl = slice(start, stop)
        start, stop, step = sl.indices(sizes[dim])
        if step != 1:
            raise InputError(f"region of dim {dim!r} must have step 1, got {sl!r}")
        if stop <= start:
            raise InputError(f"region {sl!r} of dim {dim!r} (length {sizes[dim]}) is empty")
        out[dim] = slice(start, stop)
    return out


def _draw(
    shape: tuple[int, ...],
    batch_shape: tuple[int, ...],
    batch_offset: tuple[int, ...],
    full_batch_shape: tuple[int, ...],
    pattern: str,
    missing: float,
    seed: int,
) -> np.ndarray:
    """Hidden points ``(*batch, *spatial)`` (``True`` = hidden), keyed per global slice."""
    out = np.zeros((*batch_shape, *shape), dtype=bool)
    for local in np.ndindex(*batch_shape) if batch_shape else [()]:
        glob = tuple(o + i for o, i in zip(batch_offset, local))
        index = int(np.ravel_multi_index(glob, full_batch_shape)) if glob else 0
        rng = np.random.default_rng(seed_for(seed, HOLDOUT_KEY, index))
        out[local] = ~gap_mask(shape, pattern, missing, rng=rng)
    return out


def _protect(hidden: np.ndarray, observed: np.ndarray, axis: int) -> np.ndarray:
    """Show again the first observed step along ``axis`` of points hidden at all their steps."""
    left = (observed & ~hidden).any(axis=axis, keepdims=True)
    seen = observed.any(axis=axis, keepdims=True)
    lost = seen & ~left
    if not lost.any():
        return hidden
    first = np.argmax(observed, axis=axis)
    steps = np.arange(observed.shape[axis]).reshape(
        [-1 if a == axis else 1 for a in range(observed.ndim)]
    )
    restore = lost & (steps == np.expand_dims(first, axis))
    return hidden & ~restore


@overload
def make_holdout(
    data: xr.Dataset,
    spec: str | tuple[str, float],
    *,
    dims: Sequence[Hashable],
    seed: int = ...,
    variables: str | Iterable[str] | None = ...,
    invalid: masks.InvalidSpec = ...,
    invalid_along: Hashable | Iterable[Hashable] | None = ...,
    region: Mapping[Hashable, Any] | None = ...,
    protect_along: Hashable | None = ...,
) -> tuple[xr.Dataset, xr.Dataset]: ...


@overload
def make_holdout(
    data: xr.DataArray,
    spec: str | tuple[str, float],
    *,
    dims: Sequence[Hashable],
    seed: int = ...,
    variables: str | Iterable[str] | None = ...,
    invalid: masks.InvalidSpec = ...,
    invalid_along: Hashable | Iterable[Hashable] | None = ...,
    region: Mapping[Hashable, Any] | None = ...,
    protect_along: Hashable | None = ...,
) -> tuple[xr.DataArray, xr.DataArray]: ...


def make_holdout(
    data: xr.Dataset | xr.DataArray,
    spec: str | tuple[str, float],
    *,
    dims: Sequence[Hashable],
    seed: int = 0,
    variables: str | Iterable[str] | None = None,
    invalid: masks.InvalidSpec = None,
    invalid_along: Hashable | Iterable[Hashable] | None = None,
    region: Mapping[Hashable, Any] | None = None,
    protect_along: Hashable | None = "time",
) -> tuple[xr.Dataset | xr.DataArray, xr.Dataset | xr.DataArray]:
    """Hide a gap pattern among the observed points.

    Parameters
    ----------
    data
        The data (a DataArray is treated as a one-variable Dataset and the
        results are DataArrays again).
    spec
        Gap pattern: ``"<pattern>:<missing fraction>"`` such as ``"boxes:0.3"``
        ([`parse_pattern`][sparsediff.data.gaps.parse_pattern]), or a ``(pattern,
        fraction)`` pair.
    dims
        The 2 or 3 dims the pattern is drawn over; one pattern per slice of
        the other dims.
    seed
        Seed of the patterns (same seed, same gaps).
    variables
        Variables to hide points of (default: every numeric variable with at
        least two dims); they must share their dims. Other variables are
        returned unchanged.
    invalid, invalid_along
        Invalid points as for [`sparsediff.data.masks.states`][sparsediff.data.masks.states]; they
        are
        never hidden (nor are gaps).
    region
        Index ranges ``{dim: slice(start, stop)}``: hide points only there
        (e.g. the held-out period of a training run). The pattern is drawn
        over the region's extent of ``dims``.
    protect_along
        Never hide a point at every step of this dim where it is observed
        (its first observed step stays visible); ``None`` turns this off. A
        name that is not a dim of the data is ignored.

    Returns
    -------
    gappy : xarray.Dataset or xarray.DataArray
        ``data`` with the held-out points set to NaN (attrs, coords and
        encodings kept; integer variables become float).
    held : xarray.Dataset or xarray.DataArray
        Boolean mask per variable (same dims and coords), ``True`` at the
        held-out points — the points to score. Variables not held out are
        absent from it.

    Raises
    ------
    InputError
        A bad pattern spec, unknown dims, not 2 or 3 pattern dims, variables
        with different dims, or as [`states`][sparsediff.data.masks.states].
    """
    pattern, missing, text = _parse_spec(spec)
    is_da = isinstance(data, xr.DataArray)
    ds = as_dataset(data)
    names = numeric_variables(ds, variables)
    dims = tuple(dims)
    ref = _check_dims(ds, names, dims)
    reg = region_slices(ds, region)
    along = [invalid_along] if isinstance(invalid_along, str) else invalid_along
    if along is not None:
        along = [d for d in along if d in ds.dims]  # type: ignore[union-attr]
    st = masks.states(ds, names, invalid=invalid, invalid_along=along or None)
    order, pattern_full = _pattern(ds, ref, dims, reg, (pattern, missing), seed)
    gappy = ds.copy()
    held_vars: dict[Hashable, xr.DataArray] = {}
    for name in names:
        obs = np.asarray((st[name] == masks.OBSERVED).transpose(*order).values)
        hidden = pattern_full & obs
        if protect_along is not None and protect_along in order:
            hidden = _protect(hidden, obs, order.index(protect_along))
        var = ds[name]
        mask = _held_mask(var, name, hidden, order, text, seed)
        held_vars[name] = mask
        values = var.where(~mask)
        values.attrs = dict(var.attrs)
        values.encoding = dict(var.encoding)
        gappy[name] = values
    held = xr.Dataset(held_vars, attrs={"holdout": text, "holdout_seed": int(seed)})
    if is_da:
        g, h = gappy[names[0]], held[names[0]]
        g.name = h.name = data.name
        return g, h
    return gappy, held


def _parse_spec(spec: str | tuple[str, float]) -> tuple[str, float, str]:
    """The pattern, missing fraction and canonical text of a holdout spec."""
    if isinstance(spec, str):
        pattern, missing = parse_pattern(spec)
        return pattern, missing, spec
    try:
        pattern, missing = parse_pattern(f"{spec[0]}:{spec[1]}")
    except (TypeError, IndexError, KeyError):
        raise InputError(
            f"bad holdout spec {spec!r}; expected '<pattern>:<fraction>' or a pair"
        ) from None
    return pattern, missing, f"{pattern}:{missing:g}"


def _check_dims(ds: xr.Dataset, names: list[str], dims: tuple[Hashable, ...]) -> tuple:
    """The dims the variables share, after checking the pattern dims are among them."""
    if len(dims) not in (2, 3) or len(set(dims)) != len(dims):
        raise InputError(f"holdout dims must be 2 or 3 distinct dims, got {dims}")
    ref = ds[names[0]].dims
    for name in names:
        var = ds[name]
        for d in dims:
            if d not in var.dims:
                raise InputError(
                    f"holdout dim {d!r} is not a dim of variable {name!r} "
                    f"(dims: {', '.join(map(str, var.dims))})"
                )
        if set(var.dims) != set(ref):
            raise InputError(
                f"variables {names} must share their dims for one holdout pattern; "
                f"{name!r} has {var.dims}, {names[0]!r} has {ref}"
            )
    return ref


def _pattern(
    ds: xr.Dataset,
    ref: tuple,
    dims: tuple[Hashable, ...],
    reg: Mapping[Hashable, slice],
    drawn_as: tuple[str, float],
    seed: int,
) -> tuple[tuple, np.ndarray]:
    """The dims order (batch dims, then ``dims``) and the drawn pattern over the whole data.

    ``drawn_as`` is the pattern name and its missing fraction; the pattern is
    drawn over the region ``reg`` and is ``False`` outside it.
    """
    batch = tuple(d for d in ref if d not in dims)
    order = (*batch, *dims)
    full_batch = tuple(ds.sizes[d] for d in batch)
    sub = {d: reg.get(d, slice(0, ds.sizes[d])) for d in order}
    offset = tuple(sub[d].start for d in batch)
    sub_batch = tuple(sub[d].stop - sub[d].start for d in batch)
    sub_shape = tuple(sub[d].stop - sub[d].start for d in dims)
    drawn = _draw(sub_shape, sub_batch, offset, full_batch, *drawn_as, seed)
    pattern_full = np.zeros(tuple(ds.sizes[d] for d in order), dtype=bool)
    pattern_full[tuple(sub[d] for d in order)] = drawn
    return order, pattern_full


def _held_mask(
    var: xr.DataArray, name: str, hidden: np.ndarray, order: tuple, text: str, seed: int
) -> xr.DataArray:
    """The held-out mask of one variable, in its dims and coords (``hidden`` is in ``order``)."""
    mask = xr.DataArray(hidden, dims=order).transpose(*var.dims)
    return xr.DataArray(
        np.asarray(mask.values),
        dims=var.dims,
        coords={k: c for k, c in var.coords.items() if set(c.dims) <= set(var.dims)},
        name=name,
        attrs={
            "long_name": f"held-out points of {name} (hidden before the fill, scored after)",
            "holdout": text,
            "holdout_seed": int(seed),
        },
    )
