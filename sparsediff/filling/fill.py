"""``sparsediff.fill``: gappy Dataset + trained model → reconstructed Dataset.

The result holds, per filled variable ``v``:

- ``v``: observed points bit-identical to the input, gaps filled, invalid NaN;
  with ``members=K > 1`` a leading ``member`` dim;
- ``v_fill_flag``: uint8, CF flags ``0 observed, 1 filled, 2 invalid``, linked
  from ``v`` by ``ancillary_variables``.

A dask-backed input gives a dask-backed result: blocks are the input's chunks
along the batch dims (time, level, ...), each with the whole spatial domain, so
the numbers never depend on the chunking (noise is keyed by global position).
A result of at most [`PERSIST_MAX_BYTES`][PERSIST_MAX_BYTES] is computed once, by ``fill``
itself (``persist``), so plotting it and writing it reuse those values instead
of running the model again; a larger one stays lazy (each ``compute`` of it
runs the model on the blocks it needs: write it once, or use
``sparsediff.filling.store.fill_to_zarr``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Unpack

import dask.array as da
import numpy as np
import xarray as xr

from sparsediff.data import coverage, masks, plausibility
from sparsediff.data.cf import cf_conventions
from sparsediff.data.climatology import add_climatology, aligned_climatology, anomalies
from sparsediff.data.grid import is_global_longitude
from sparsediff.data.order import sort_along
from sparsediff.data.selection import as_dataset
from sparsediff.devices import resolve_device
from sparsediff.errors import ConfigError, SparsediffWarning
from sparsediff.filling.block import fill_block
from sparsediff.filling.compatibility import check_compatible
from sparsediff.filling.fit_input import FITTED_TO_INPUT, check_fit_options, fit_to_input
from sparsediff.filling.invalid import InvalidRule, resolve_invalid
from sparsediff.filling.summary import flag_counts, summary_line
from sparsediff.filling.windows import FillOptions
from sparsediff.method.eof_guess import aligned_eofs
from sparsediff.method.options import FillKeywords
from sparsediff.model import Model, as_model

__all__ = ["check_compatible", "ensemble_mean", "ensemble_std", "fill", "is_global_longitude"]

PERSIST_MAX_BYTES = 1 << 30
"""Largest dask-backed fill (filled variables and flags, in bytes) that ``fill``
computes at once with ``persist=None``; a larger one is returned lazy."""

MEMBER_ATTRS = {"long_name": "ensemble member", "standard_name": "realization", "units": "1"}

FLAG_ATTRS = {
    "flag_values": np.array([0, 1, 2], dtype=np.uint8),
    "flag_meanings": "observed filled invalid",
    "long_name": "sparsediff fill flag",
}


def _block_fn(plan: _FillPlan, overlap: Any, progress: bool | None) -> Any:
    """The function that fills one block of ``plan``'s arrays (in memory, or a dask chunk)."""
    model, opts, n_batch_dims = plan.model, plan.opts, len(plan.batch_dims)
    batch_shape = tuple(plan.ds.sizes[d] for d in plan.batch_dims)
    eofs = None
    if model.eofs:  # the first guess's EOF background, on the data's grid
        eofs = aligned_eofs(plan.ds, model.eofs, model.spec.eof_prior, plan.variables, model.dims)

    def run(
        data: np.ndarray, state: np.ndarray, *context: np.ndarray, block_info: Any = None
    ) -> np.ndarray:
        # data: (C, *batch, *spatial) block; batch offsets from block_info;
        # context: per offset, the neighbouring values and their observed mask
        if block_info is not None and block_info.get(0) is not None:
            loc = block_info[0]["array-location"][1 : 1 + n_batch_dims]
        else:
            loc = [(0, s) for s in data.shape[1 : 1 + n_batch_dims]]
        ranges = [np.arange(a, b) for a, b in loc]
        grids = np.meshgrid(*ranges, indexing="ij") if ranges else []
        ids = (
            np.ravel_multi_index([g.ravel() for g in grids], batch_shape)
            if ranges
            else np.zeros(1, dtype=int)
        )
        c = data.shape[0]
        bshape = data.shape[1 : 1 + n_batch_dims]
        spatial = data.shape[1 + n_batch_dims :]
        flat = data.reshape(c, -1, *spatial)
        flat_state = state.reshape(c, -1, *spatial)
        pairs = [
            (context[i].reshape(c, -1, *spatial), context[i + 1].reshape(c, -1, *spatial))
            for i in range(0, len(context), 2)
        ]
        out = fill_block(
            model,
            flat,
            flat_state,
            ids.tolist(),
            opts,
            context=pairs,
            periodic=plan.periodic,
            overlap=overlap,
            device=plan.device,
            progress=progress,
            eofs=eofs,
        )
        return out.reshape(opts.members, c, *bshape, *spatial)

    return run


def _context_axis(model: Model, order: Sequence[Hashable], ds: xr.Dataset) -> int | None:
    """Axis (in the ``(variable, *order)`` array) of the model's context dim, if any."""
    dim = model.spec.context_dim
    if not model.spec.n_context:
        return None
    if dim not in order:
        warnings.warn(
            f"the model uses neighbouring steps along {dim!r} as context, but the data have "
            f"no {dim!r} dim: filling without context (expect poorer fills)",
            SparsediffWarning,
            stacklevel=4,  # the caller of fill
        )
        return -1
    return 1 + list(order).index(str(dim))


def _shift(arr: Any, offset: int, axis: int, fill: Any, xp: Any) -> Any:
    """``arr`` moved so that position ``i`` holds ``arr[i + offset]`` (``fill`` past the ends)."""
    n = arr.shape[axis]
    pad_shape = list(arr.shape)
    pad_shape[axis] = min(abs(offset), n)
    pad = xp.full(tuple(pad_shape), fill, dtype=arr.dtype)
    take = [slice(None)] * arr.ndim
    if offset > 0:
        take[axis] = slice(min(offset, n), n)
        parts = [arr[tuple(take)], pad]
    else:
        take[axis] = slice(0, max(n + offset, 0))
        parts = [pad, arr[tuple(take)]]
    return xp.concatenate(parts, axis=axis)


def _context_arrays(
    data: Any, state: Any, offsets: Sequence[int], axis: int | None, xp: Any
) -> list[Any]:
    """Per offset, the neighbouring values and their observed mask (flat list of pairs).

    Built by shifting the whole arrays (lazily for dask), so every block gets
    its neighbours whatever the chunking; past either end a neighbour is all
    unobserved. ``axis == -1``: the data have no context dim (all unobserved).
    """
    if axis is None:
        return []
    out: list[Any] = []
    for off in offsets:
        if axis == -1:
            out += [xp.zeros_like(data), xp.zeros(state.shape, dtype=bool)]
            continue
        values = _shift(data, int(off), axis, np.nan, xp)
        obs = _shift(state == masks.OBSERVED, int(off), axis, False, xp)
        out += [values, obs]
    return out


def _float_copy(ds: xr.Dataset, variables: Sequence[str]) -> xr.Dataset:
    """``ds`` with integer ``variables`` as float (fills and invalid points need NaN)."""
    ints = [v for v in variables if ds[v].dtype.kind in "iu"]
    if not ints:
        return ds
    ds = ds.copy()
    for v in ints:
        var = ds[v]
        as_float = var.astype(np.float32 if var.dtype.itemsize <= 2 else np.float64)
        as_float.attrs = dict(var.attrs)
        as_float.encoding = {
            k: val for k, val in var.encoding.items() if k not in ("dtype", "_FillValue")
        }
        ds[v] = as_float
    return ds


def fill(
    ds: xr.Dataset | xr.DataArray | Model | str | os.PathLike[str] | None = None,
    model: Model | str | os.PathLike[str] | None = None,
    *,
    options: FillOptions | None = None,
    device: str = "auto",
    invalid: Any = None,
    invalid_below: float | str | None = "model",
    invalid_along: str | Sequence[str] | None = "model",
    check_values: bool = True,
    min_observed_share: float | None = None,
    overlap: Sequence[int] | int | None = None,
    periodic: Sequence[bool] | None = None,
    progress: bool | None = None,
    persist: bool | None = None,
    adapt: Any = None,
    calibrate: str = "auto",
    points: Any = None,
    like: Any = None,
    bounds: Any = None,
    resolution: Any = None,
    **keywords: Unpack[FillKeywords],
) -> xr.Dataset:
    """Fill the gaps of a Dataset with a trained model.

    ``fill(model, points=obs, like=grid)`` fills a grid from point observations
    instead ([`fill_points`][sparsediff.filling.points.fill_points]; the model
    comes first, the other options apply as here).

    How to sample: ``options=FillOptions(...)``, or its fields as keywords
    (``members``, ``steps``, ``sampler``, ``seed``, ``guidance``,
    ``cfg_scale``, ``sigma_min``, ``sigma_max``, ``batch_size``, ``precision``
    and ``compile``; not both), each documented on
    [`FillOptions`][sparsediff.method.options.FillOptions]. Their defaults need
    no tuning (16 steps of DPM-Solver++(2M), as the spread was calibrated; no
    guidance; float32); ``members=K > 1``
    adds a ``member`` dim, and the same ``seed`` (any integer >= 0) gives the
    same bytes whatever the chunking or scheduler.

    Parameters
    ----------
    ds
        Data with gaps (NaN / ``_FillValue``), an xarray Dataset or DataArray
        with named dims. dask-backed input gives a lazy result.
    model
        A trained [`Model`][sparsediff.model.Model], or the path of a model
        (or run) directory.
    options
        How to sample ([`FillOptions`][sparsediff.method.options.FillOptions]);
        ``None``: from the keywords ``members=``, ``seed=``, ... (their defaults
        for those not given).
    device
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``.
    invalid
        Invalid mask (variable name, DataArray or file; True = invalid); without
        it, the model's training mask on the grid it was trained on (the rules:
        [`sparsediff.filling.invalid`][sparsediff.filling.invalid]).
    invalid_below
        Points at or below this value are invalid (e.g. air around a head);
        ``"model"``: the training rule, when no ``invalid`` is given; ``None``: none.
    invalid_along
        Dims along which all-missing points are invalid; ``"model"``: the
        training setting, when that dim exists and the model has no mask for this grid.
    check_values
        Refuse observed values clearly in another unit or scale, warn about
        values far outside the training range
        ([`sparsediff.data.plausibility`][sparsediff.data.plausibility]); ``False``: neither.
    min_observed_share
        Refuse a step (a position of the non-spatial dims) with fewer observed
        points than this share of its valid points
        ([`sparsediff.data.coverage`][sparsediff.data.coverage]); ``None``: only
        warn about steps without any observed point.
    overlap, periodic
        Tiling options per spatial dim; ``periodic`` defaults to True for a
        global longitude.
    progress
        A bar over model calls, and a closing line on standard error (points
        filled, kept as observed, left invalid). ``None``: the bar only when
        interactive, the line always (not for a lazy result); ``False``: neither.
    persist
        For dask-backed input: ``True`` computes the fill now and keeps it in
        memory (a ``dask.distributed`` cluster's), so plotting and writing it do
        not run the model again; ``False``: lazy; ``None``: persist a result of
        at most [`PERSIST_MAX_BYTES`][PERSIST_MAX_BYTES].
    adapt
        Fine-tune the model on the observed points of ``ds`` first
        ([`sparsediff.training.adapt`][sparsediff.training.adapt]): ``None`` or 0: off;
        an int: that many steps keyed by ``seed``; or
        [`AdaptOptions`][sparsediff.training.adapt.AdaptOptions].
    calibrate
        ``"validation"``: the model's own spread calibration; ``"input"``: refit on hidden
        observed points of ``ds`` ([`input_calibration`][sparsediff.training.input_calibration]);
        ``"auto"`` (default): the model's own for gridded ``ds``, a refit for ``points``.
    points, like, bounds, resolution
        Observations to fill from, and the target grid (a template, or bounds
        plus a resolution); see [`sparsediff.filling.points`][sparsediff.filling.points].
    **keywords
        The fields of [`FillOptions`][sparsediff.method.options.FillOptions]
        (``members=8``, ``seed=3``, ...) when ``options`` is not given.

    Returns
    -------
    xarray.Dataset
        Filled variables, ``<var>_fill_flag`` flag variables, original attrs
        and coordinates, a provenance attribute (``sparsediff_fill``: the
        options, the model, which points were taken as invalid), and
        ``Conventions`` naming CF 1.9 or later (the flags and ``member`` need it).

    Raises
    ------
    InputError
        Input that is not an xarray object; a bad seed or invalid mask; repeated
        values in the context dim's coordinate; an invalid rule that marks
        (nearly) every observed value invalid; a step below ``min_observed_share``.
    CompatibilityError
        Data the model cannot fill ([`check_compatible`][check_compatible]), or observed
        values clearly in another unit or scale.
    ConfigError
        A bad option (members, steps, sampler, device, ...), an unknown keyword,
        or an option given both in ``options`` and as a keyword.
    CheckpointError
        A model path that does not hold a readable model.

    Warns
    -----
    SparsediffWarning
        Grid spacing far from training; many observed values far outside the
        training range; a model invalid rule that cannot run on these data;
        steps without any observed point.

    Notes
    -----
    An integer variable is filled in a float copy (``float32`` up to 16 bits,
    else ``float64``, exact up to 2**53) and returned as float, without its
    integer ``dtype`` encoding. A model's climatology is matched to the data by
    coordinates (a rolled longitude gets each point's climatology); the tiling
    of such a grid differs, so its fill equals the canonical grid's up to the
    permutation only where the completion does not depend on the tiling. Steps
    of the context dim out of coordinate order are filled in order and
    returned in the input's order ([`sparsediff.data.order`][sparsediff.data.order]).
    """
    given = dict(locals())  # the keywords, as given
    if points is not None:  # a grid from point observations (sparsediff.filling.points)
        return _fill_from_points(given)
    model, ds = _model_and_data(ds, model)
    opts = _options(options, dict(keywords), check_values, persist)
    device = resolve_device(device)
    model.method.check_ready()  # a model without its trained stages: refused before any compute
    check_compatible(ds, model)
    min_share = coverage.check_share(min_observed_share)
    ds, restore = sort_along(ds, model.spec.context_dim if model.spec.n_context else None)
    invalid_kw = dict(invalid=invalid, invalid_below=invalid_below, invalid_along=invalid_along)
    fitting = check_fit_options(adapt, calibrate, opts.seed)  # bad options: before any read
    plan = _plan(ds, model, opts, device, invalid_kw, check_values, min_share, periodic)
    if fitting:  # after the checks of the data, so that refused input costs no training
        fitted = fit_to_input(ds, model, adapt=adapt, calibrate=calibrate, seed=opts.seed,
                              device=device, steps=opts.steps, progress=progress,
                              **invalid_kw)  # fmt: skip
        at = opts.at_steps(fitted.spec.spread_steps)  # an input calibration's steps
        plan = dataclasses.replace(plan, model=fitted.to(device).eval(), opts=at)
    out = _compute(plan, overlap, progress)
    result = _assemble(plan, out)
    computed = not isinstance(out, da.Array) or _persist(result, plan.variables, persist)
    _finish(result, plan, check_values)
    if computed and progress is not False:
        print(summary_line(flag_counts(result)), file=sys.stderr, flush=True)
    return result if restore is None else result.isel({model.spec.context_dim: restore})


@dataclass(frozen=True)
class _FillPlan:
    """What the compute and assemble stages of a fill work from, decided once."""

    model: Model  # on its device, in eval mode (adapted/calibrated when asked)
    opts: FillOptions
    device: str
    ds: xr.Dataset  # sorted, float, anomalies when the model has a climatology
    source: xr.Dataset  # the same before anomalies (observed values, bit for bit)
    states: xr.Dataset  # observed / gap / invalid per point
    rule: InvalidRule
    climatology: dict[str, xr.DataArray] | None
    dims: tuple[Hashable, ...]  # of the filled variables, as given
    batch_dims: list[Hashable]
    order: list[Hashable]  # batch dims, then the model's spatial dims
    periodic: tuple[bool, ...]
    context_axis: int | None

    @property
    def variables(self) -> list[str]:
        """The filled variables (the model's)."""
        return list(self.model.variables)


def _fill_from_points(given: dict[str, Any]) -> xr.Dataset:
    """``fill(model, points=obs, like=grid)``: the other keywords go to ``fill_points``."""
    from sparsediff.filling.points import fill_points

    skip = ("ds", "model", "points", "like", "keywords")
    kw = {k: v for k, v in given.items() if k not in skip} | given["keywords"]
    first = given["model"] if given["ds"] is None else given["ds"]  # the model, given first
    return fill_points(first, given["points"], given["like"], **kw)


def _model_and_data(ds: Any, model: Any) -> tuple[Model, xr.Dataset]:
    """The model (loaded from a path) and the data as a Dataset, or one clear error."""
    if not isinstance(ds, xr.Dataset | xr.DataArray):
        as_dataset(ds)  # one clear error for other objects
        raise AssertionError  # as_dataset raised
    if model is None:
        raise ConfigError(
            "fill needs a model: fill(ds, model) or fill(model, points=obs, like=...)"
        )
    model = as_model(model)
    return model, as_dataset(ds, name=model.variables[0] if len(model.variables) == 1 else None)


def _options(
    options: FillOptions | None, keywords: dict[str, Any], check_values: Any, persist: Any
) -> FillOptions:
    """The sampling options of a fill (check_values and persist checked too)."""
    opts = FillOptions.fold(options, **keywords)
    if not isinstance(check_values, bool):
        raise ConfigError(f"check_values must be True or False, got {check_values!r}")
    if persist is not None and not isinstance(persist, bool):
        raise ConfigError(f"persist must be True, False or None, got {persist!r}")
    return opts


def _plan(
    ds: xr.Dataset,
    model: Model,
    opts: FillOptions,
    device: str,
    invalid_kw: dict[str, Any],
    check_values: bool,
    min_share: float | None,
    periodic: Sequence[bool] | None,
) -> _FillPlan:
    """Classify the points, check the values and the coverage, and lay out the arrays.

    Warnings point at the caller of ``fill``.
    """
    ds = _float_copy(ds, model.variables)
    model = model.to(device).eval()
    variables, spatial = model.variables, list(model.dims)
    first = ds[variables[0]]
    batch_dims = [d for d in first.dims if d not in spatial]
    order = [*batch_dims, *spatial]
    climatology = aligned_climatology(ds, model.climatology) if model.climatology else None
    rule = resolve_invalid(ds, model, **invalid_kw)
    if rule.warning:
        warnings.warn(rule.warning, SparsediffWarning, stacklevel=3)
    if check_values:
        for message in plausibility.check_values(
            ds, variables, model.stats, spatial=spatial, climatology=climatology, below=rule.below
        ):
            warnings.warn(message, SparsediffWarning, stacklevel=3)
    states, ranges = masks.states_and_range(
        ds, variables, invalid=rule.invalid, invalid_along=rule.along
    )
    if check_values:
        for message in plausibility.range_warnings(ranges, model.stats, model.climatology):
            warnings.warn(message, SparsediffWarning, stacklevel=3)
    counts = coverage.coverage(ds, states, variables, spatial)
    coverage.check_rule(counts, rule.source)
    for message in coverage.sparse_steps(counts, ds, min_share):
        warnings.warn(message, SparsediffWarning, stacklevel=3)
    source = ds
    if climatology:
        ds = anomalies(ds, climatology)
    if periodic is None:
        periodic = tuple(d in ds.coords and is_global_longitude(ds[d]) for d in spatial)
    return _FillPlan(
        model=model,
        opts=opts.at_steps(model.spec.spread_steps),
        device=device,
        ds=ds,
        source=source,
        states=states,
        rule=rule,
        climatology=climatology,
        dims=tuple(first.dims),
        batch_dims=batch_dims,
        order=order,
        periodic=tuple(periodic),
        context_axis=_context_axis(model, order, ds),
    )


def _compute(plan: _FillPlan, overlap: Any, progress: bool | None) -> Any:
    """Run the model: ``(member, variable, *order)`` values, dask-backed for dask input.

    A dask input is filled block by block (its chunks along the batch dims, each
    with the whole spatial domain); an in-memory one at once.
    """
    model, ds, order, nb = plan.model, plan.ds, plan.order, len(plan.batch_dims)
    data = xr.concat([ds[v].transpose(*order) for v in plan.variables], dim="variable")
    state = xr.concat([plan.states[v].transpose(*order) for v in plan.variables], dim="variable")
    run = _block_fn(plan, overlap, progress)
    offsets = model.spec.context_offsets
    if data.chunks is None:
        arr, sarr_np = np.asarray(data.values), np.asarray(state.values)
        return run(arr, sarr_np, *_context_arrays(arr, sarr_np, offsets, plan.context_axis, np))
    darr = data.data.rechunk({0: -1, **{1 + nb + i: -1 for i in range(len(model.dims))}})
    sarr = da.asarray(state.data).rechunk(darr.chunks)
    extra = _context_arrays(darr, sarr, offsets, plan.context_axis, da)
    return da.map_blocks(
        run,
        darr,
        sarr,
        *[a.rechunk(darr.chunks) for a in extra],
        new_axis=0,
        chunks=((plan.opts.members,), *darr.chunks),
        dtype=data.dtype,
        meta=np.empty((0,) * (darr.ndim + 1), dtype=data.dtype),
    )


def _assemble(plan: _FillPlan, out: Any) -> xr.Dataset:
    """The filled variables (observed points bit-identical) and their flag variables."""
    ds, members = plan.ds, plan.opts.members
    result = xr.Dataset(coords=ds.coords, attrs=dict(ds.attrs))
    for i, v in enumerate(plan.variables):
        filled = xr.DataArray(out[:, i], dims=["member", *plan.order])
        if members == 1:
            filled = filled.isel(member=0, drop=True)
        filled = filled.transpose(*([d for d in ["member"] if members > 1] + list(plan.dims)))
        if plan.climatology:
            # back from anomalies; observed points from the source, bit for bit
            filled = add_climatology(filled, plan.climatology[v])
            filled = filled.where(plan.states[v] != masks.OBSERVED, plan.source[v])
        filled.attrs = dict(ds[v].attrs)
        filled.attrs["ancillary_variables"] = f"{v}_fill_flag"
        filled.encoding = {
            k: val for k, val in ds[v].encoding.items() if k in ("_FillValue", "dtype", "units")
        }
        result[v] = filled
        flag = plan.states[v].transpose(*plan.dims).astype(np.uint8)
        flag.attrs = dict(FLAG_ATTRS)
        flag.attrs["long_name"] = f"sparsediff fill flag of {v}"
        result[f"{v}_fill_flag"] = flag
    if members > 1:
        result = result.assign_coords(member=("member", np.arange(members), dict(MEMBER_ATTRS)))
    return result


def _finish(result: xr.Dataset, plan: _FillPlan, check_values: bool) -> None:
    """Add the variables not filled, ``Conventions`` and the provenance to ``result``."""
    ds, model = plan.ds, plan.model
    for v in ds.data_vars:
        if v not in result and v not in plan.variables:
            result[v] = ds[v]
    # uint8 flags and an int64 member coordinate need CF >= 1.9
    result.attrs["Conventions"] = cf_conventions(ds.attrs.get("Conventions"))
    result.attrs["sparsediff_fill"] = json.dumps(
        {
            **plan.opts.record(),
            "model_trained_at": model.provenance.get("trained_at"),
            "model_mode": model.spec.mode,
            "model_calibration": model.spec.calibration,
            **{k: v for k, v in model.provenance.items() if k in FITTED_TO_INPUT},
            "invalid": plan.rule.source,
            "value_check": "sample and extremes" if check_values else "off",
            "filled_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        sort_keys=True,
    )


def _persist(result: xr.Dataset, variables: Sequence[str], persist: bool | None) -> bool:
    """Persist the filled variables and flags of a lazy ``result`` in place when asked to.

    ``persist=None``: when they take at most [`PERSIST_MAX_BYTES`][PERSIST_MAX_BYTES].
    Returns whether they were persisted.
    """
    names = [n for v in variables for n in (v, f"{v}_fill_flag")]
    size = sum(int(result[n].nbytes) for n in names)
    if persist is False or (persist is None and size > PERSIST_MAX_BYTES):
        return False
    result.update(result[names].persist())
    return True


def ensemble_mean(ds: xr.Dataset) -> xr.Dataset:
    """Mean over the ``member`` dim (observed points stay exact: all members agree)."""
    if "member" not in ds.dims:
        return ds
    out = ds.mean("member", keep_attrs=True)
    for v in ds.data_vars:
        if "member" in ds[v].dims and np.issubdtype(ds[v].dtype, np.floating):
            # members agree at observed points; keep them bit-identical
            first = ds[v].isel(member=0, drop=True)
            agree = ds[v].max("member") == ds[v].min("member")
            out[v] = out[v].where(~agree, first)  # keeps coordinate attributes
    return out


def ensemble_std(ds: xr.Dataset) -> xr.Dataset:
    """Standard deviation over ``member`` of the filled variables (the spread).

    Exactly 0 where every member agrees (observed points)."""
    names = [v for v in ds.data_vars if "member" in ds[v].dims]
    out = ds[names].std("member", ddof=1 if ds.sizes["member"] > 1 else 0, keep_attrs=True)
    for v in names:  # exactly 0 where all members agree (observed points)
        agree = ds[v].max("member") == ds[v].min("member")
        out[v] = out[v].where(~agree, 0.0)
    return out
