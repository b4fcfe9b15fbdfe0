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

import json
import os
import sys
import warnings
from collections.abc import Hashable, Sequence
from datetime import UTC, datetime
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from sparsediff.data import coverage, masks, plausibility
from sparsediff.data.cf import cf_conventions
from sparsediff.data.climatology import add_climatology, aligned_climatology, anomalies
from sparsediff.data.grid import grid_spacing, is_global_longitude
from sparsediff.data.order import sort_along
from sparsediff.data.selection import as_dataset
from sparsediff.data.units import same_units
from sparsediff.devices import resolve_device
from sparsediff.errors import CompatibilityError, ConfigError, SparsediffWarning
from sparsediff.filling.invalid import resolve_invalid
from sparsediff.filling.sampling import FillOptions
from sparsediff.filling.summary import flag_counts, summary_line
from sparsediff.filling.tiled import fill_block
from sparsediff.model import Model, as_model
from sparsediff.rng import check_seed

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


def check_compatible(ds: xr.Dataset, model: Model) -> None:
    """Refuse, before any compute, data the model cannot fill.

    Raises
    ------
    CompatibilityError
        Missing variables, missing spatial dims, a different number of spatial
        dims, a ``member`` dim (a fill adds its own), units that differ from
        training (compared as units: ``"kelvin"`` is ``"K"``), or (for a model with a
        climatology) data on another grid than the climatology's: a grid whose
        coordinates are a permutation or a subset of the training grid's is
        fine (the climatology is reordered to it), any other is refused.

    Warns
    -----
    SparsediffWarning
        A grid spacing more than 2x away from the training one.
    """
    missing = [v for v in model.variables if v not in ds.data_vars]
    if missing:
        raise CompatibilityError(
            f"the model fills {model.variables} but the data lacks {missing} "
            f"(it has {sorted(map(str, ds.data_vars))})"
        )
    if "member" in ds.dims:
        raise CompatibilityError(
            f"the data already have a 'member' dim (size {ds.sizes['member']}); a fill adds "
            "its own for the ensemble: fill one member at a time (ds.isel(member=0)) or "
            "rename the dim (ds.rename(member='realization'))"
        )
    dims = model.dims
    for v in model.variables:
        absent = [d for d in dims if d not in ds[v].dims]
        if absent:
            raise CompatibilityError(
                f"the model works over {len(dims)} spatial dims {list(dims)}; variable {v!r} "
                f"has dims {list(ds[v].dims)} (missing {absent}); rename dims to match"
            )
    first = ds[model.variables[0]].dims
    for v in model.variables[1:]:
        if set(ds[v].dims) != set(first):
            raise CompatibilityError(f"variables {model.variables} must share dims; {v!r} differs")
    units = model.spec.units
    for v in model.variables:
        trained = units.get(v, "")
        now = str(ds[v].attrs.get("units", ""))
        if trained and now and not same_units(trained, now):
            raise CompatibilityError(
                f"variable {v!r} is in {now!r} but the model was trained on {trained!r}; "
                "convert the data first"
            )
    if model.climatology:
        aligned_climatology(ds, model.climatology)  # raises for data on another grid
    spacing = model.spec.grid_spacing
    for d in dims:
        ref = spacing.get(d)
        now_sp = grid_spacing(ds[d]) if d in ds.coords else None
        if ref and now_sp is not None and (now_sp > 2 * ref or now_sp < ref / 2):
            warnings.warn(
                f"grid spacing along {d!r} is {now_sp:g}, far from the training "
                f"spacing {ref:g}; fills may be poor",
                SparsediffWarning,
                stacklevel=3,
            )


def _block_fn(
    model: Model,
    opts: FillOptions,
    batch_shape: tuple[int, ...],
    periodic: tuple[bool, ...],
    overlap: Any,
    device: str,
    progress: bool | None,
    n_batch_dims: int,
) -> Any:
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
            periodic=periodic,
            overlap=overlap,
            device=device,
            progress=progress,
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
            stacklevel=3,
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
    members: int = 1,
    steps: int = 6,
    sampler: str = "dpmpp_2m",
    seed: int = 0,
    guidance: float = 0.0,
    cfg_scale: float = 1.0,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    batch_size: int | None = None,
    precision: str = "float32",
    compile: str = "off",
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
    calibrate: str = "validation",
    points: Any = None,
    like: Any = None,
    bounds: Any = None,
    resolution: Any = None,
) -> xr.Dataset:
    """Fill the gaps of a Dataset with a trained model.

    ``fill(model, points=obs, like=grid)`` fills a grid from point observations
    instead (see [`fill_points`][sparsediff.filling.points.fill_points]; the model is
    then the first argument, and the other options apply as here).

    Parameters
    ----------
    ds
        Data with gaps (NaN / ``_FillValue``), an xarray Dataset or DataArray
        with named dims. dask-backed input gives a lazy result.
    model
        A trained [`Model`][sparsediff.model.Model], or the path of a model
        (or run) directory, which is loaded.
    members
        Ensemble size K; ``K > 1`` adds a ``member`` dim to the filled variables.
    steps, sampler
        Solver and steps (defaults: DPM-Solver++(2M), 6 steps).
    seed
        An integer >= 0 of any size. Same seed → same bytes, whatever the
        chunking or scheduler.
    guidance
        Decoder-gradient data-consistency strength (0 = off).
    cfg_scale
        Classifier-free guidance scale (1 = off).
    sigma_min, sigma_max
        Noise range of the sampling schedule (Karras).
    batch_size
        Rows (windows x members) per model call; ``None``: from the free
        memory (changes results by float rounding only).
    precision, compile
        ``"bfloat16"``: the networks run under autocast; ``compile``: a
        `torch.compile` backend for them (``"off"``). Off by default;
        see [`FillOptions`][sparsediff.method.options.FillOptions].
    device
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``;
        a device this machine lacks is a [`ConfigError`][sparsediff.errors.ConfigError].
    invalid
        Invalid mask (variable name, DataArray or file; True = invalid).
        Without it the model's training mask is used on the grid it was
        trained on (see [`sparsediff.filling.invalid`][sparsediff.filling.invalid]).
    invalid_below
        Points at or below this value are invalid (e.g. air around a head);
        ``"model"``: the training rule, when no ``invalid`` is given; ``None``: none.
    invalid_along
        Dims along which all-missing points are invalid; ``"model"`` uses the
        training setting when that dim exists in ``ds`` and the model has no
        mask for this grid.
    check_values
        Check the observed values against the training statistics (see
        [`sparsediff.data.plausibility`][sparsediff.data.plausibility]): refuse data clearly in
        another
        unit or scale, warn about values far outside the training range.
        ``False`` skips both checks.
    min_observed_share
        Refuse the data when a step (a position of the non-spatial dims) has
        fewer observed points than this share of its points that are not
        invalid (see [`sparsediff.data.coverage`][sparsediff.data.coverage]); ``None`` (default):
        only warn about steps without any observed point.
    overlap, periodic
        Tiling options per spatial dim; ``periodic`` defaults to True for a
        global longitude.
    progress
        Show a progress bar over model calls and end with one line on standard
        error: how many points were filled, kept as observed and left invalid.
        ``None`` (default): the bar only when interactive (a terminal or a
        notebook), the line always; ``False``: neither. A lazy result that is
        not persisted gets no line (nothing has been computed yet).
    persist
        For dask-backed input: ``True`` computes the fill now and keeps it in
        memory (on a ``dask.distributed`` cluster, in the workers' memory), so
        plotting and writing the result do not run the model again;
        ``False`` returns it lazy; ``None`` (default) persists a result of at
        most [`PERSIST_MAX_BYTES`][PERSIST_MAX_BYTES]. Ignored for in-memory input (always
        computed).
    adapt
        Fine-tune the model on the observed points of ``ds`` before filling
        ([`sparsediff.training.adapt`][sparsediff.training.adapt]): ``None`` (default) or 0: off; an
        int: that many steps keyed by ``seed``; or
        [`AdaptOptions`][sparsediff.training.adapt.AdaptOptions].
    calibrate
        ``"validation"`` (default): the spread calibration the model was
        trained with; ``"input"``: refit it on hidden observed points of
        ``ds`` ([`sparsediff.training.input_calibration`][sparsediff.training.input_calibration]).
    points, like, bounds, resolution
        Observations to fill from, and the target grid (a template, or bounds
        plus a resolution); see [`sparsediff.filling.points`][sparsediff.filling.points].

    Returns
    -------
    xarray.Dataset
        Filled variables, ``<var>_fill_flag`` flag variables, original attrs
        and coordinates (with their attributes), a provenance attribute
        (``sparsediff_fill``: the options, the model, and which points were
        taken as invalid), and ``Conventions`` naming CF 1.9 or later (the
        flag and ``member`` types need it).

    Raises
    ------
    InputError
        Input that is not an xarray object, a bad seed, a bad invalid mask.
        Repeated values in the coordinate of the model's context dim; an
        invalid rule that marks (nearly) every observed value invalid; a step
        below ``min_observed_share``.
    CompatibilityError
        Data the model cannot fill ([`check_compatible`][check_compatible]), or observed
        values clearly in another unit or scale.
    ConfigError
        A bad option (members, steps, sampler, device, ...).
    CheckpointError
        A model path that does not hold a readable model.

    Warns
    -----
    SparsediffWarning
        Grid spacing far from training; many observed values far outside the
        training range; the model's invalid rule cannot run on these data;
        steps without any observed point.

    Notes
    -----
    An integer variable is filled in a float copy (``float32`` for integers of
    up to 16 bits, ``float64`` otherwise, exact for observed values up to
    2**53) and returned as float, NaN at invalid points; its integer on-disk
    ``dtype`` encoding is dropped. The flag variable says which points were
    filled.

    For a model with a climatology the climatology is matched to the data by
    coordinates, so a rolled longitude or a flipped latitude gets the
    climatology of each point; the network's tiling of such a grid differs,
    so its fill equals the canonical grid's up to the permutation only where
    the model's completion does not depend on the tiling.

    Steps of the model's context dim out of coordinate order are filled in
    order and returned in the input's order ([`sparsediff.data.order`][sparsediff.data.order]).
    """
    if points is not None:  # a grid from point observations (sparsediff.filling.points)
        from sparsediff.filling.points import fill_points

        kw = dict(locals())  # the options, as given
        for name in ("ds", "model", "points", "like", "fill_points"):
            kw.pop(name, None)
        return fill_points(model if ds is None else ds, points, like, **kw)  # type: ignore[arg-type]
    if not isinstance(ds, xr.Dataset | xr.DataArray):
        as_dataset(ds)  # type: ignore[arg-type]  # one clear error for other objects
        raise AssertionError  # as_dataset raised
    if model is None:
        raise ConfigError(
            "fill needs a model: fill(ds, model) or fill(model, points=obs, like=...)"
        )
    model = as_model(model)
    ds = as_dataset(ds, name=model.variables[0] if len(model.variables) == 1 else None)
    seed = check_seed(seed)
    if not isinstance(check_values, bool):
        raise ConfigError(f"check_values must be True or False, got {check_values!r}")
    if persist is not None and not isinstance(persist, bool):
        raise ConfigError(f"persist must be True, False or None, got {persist!r}")
    opts = FillOptions(
        members=members,
        steps=steps,
        sampler=sampler,
        seed=seed,
        guidance=guidance,
        cfg_scale=cfg_scale,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        batch_size=batch_size,
        precision=precision,
        compile=compile,
    )
    device = resolve_device(device)
    model.method.check_ready()  # a model without its trained stages: refused before any compute
    check_compatible(ds, model)
    min_observed_share = coverage.check_share(min_observed_share)
    ds, restore = sort_along(ds, model.spec.context_dim if model.spec.n_context else None)
    if adapt is not None or calibrate != "validation":
        from sparsediff.filling.fit_input import fit_to_input

        model = fit_to_input(
            ds,
            model,
            adapt=adapt,
            calibrate=calibrate,
            seed=seed,
            device=device,
            invalid=invalid,
            invalid_below=invalid_below,
            invalid_along=invalid_along,
        )
    ds = _float_copy(ds, model.variables)
    model = model.to(device).eval()
    variables = model.variables
    spatial = list(model.dims)
    first = ds[variables[0]]
    batch_dims = [d for d in first.dims if d not in spatial]
    order = [*batch_dims, *spatial]
    climatology = aligned_climatology(ds, model.climatology) if model.climatology else None
    rule = resolve_invalid(
        ds, model, invalid=invalid, invalid_below=invalid_below, invalid_along=invalid_along
    )
    if rule.warning:
        warnings.warn(rule.warning, SparsediffWarning, stacklevel=2)
    if check_values:
        for message in plausibility.check_values(
            ds, variables, model.stats, spatial=spatial, climatology=climatology, below=rule.below
        ):
            warnings.warn(message, SparsediffWarning, stacklevel=2)
    states, ranges = masks.states_and_range(
        ds, variables, invalid=rule.invalid, invalid_along=rule.along
    )
    if check_values:
        for message in plausibility.range_warnings(ranges, model.stats, climatology):
            warnings.warn(message, SparsediffWarning, stacklevel=2)
    counts = coverage.coverage(ds, states, variables, spatial)
    coverage.check_rule(counts, rule.source)
    for message in coverage.sparse_steps(counts, ds, min_observed_share):
        warnings.warn(message, SparsediffWarning, stacklevel=2)
    source = ds
    if climatology:
        ds = anomalies(ds, climatology)
    if periodic is None:
        periodic = tuple(d in ds.coords and is_global_longitude(ds[d]) for d in spatial)
    periodic = tuple(periodic)
    batch_shape = tuple(ds.sizes[d] for d in batch_dims)

    data = xr.concat([ds[v].transpose(*order) for v in variables], dim="variable")
    state = xr.concat([states[v].transpose(*order) for v in variables], dim="variable")
    lazy = data.chunks is not None
    run = _block_fn(model, opts, batch_shape, periodic, overlap, device, progress, len(batch_dims))
    ctx_axis = _context_axis(model, order, ds)
    if lazy:
        darr = data.data.rechunk(
            {0: -1, **{1 + len(batch_dims) + i: -1 for i in range(len(spatial))}}
        )
        sarr = da.asarray(state.data).rechunk(darr.chunks)
        extra = _context_arrays(darr, sarr, model.spec.context_offsets, ctx_axis, da)
        out = da.map_blocks(
            run,
            darr,
            sarr,
            *[a.rechunk(darr.chunks) for a in extra],
            new_axis=0,
            chunks=((members,), *darr.chunks),
            dtype=data.dtype,
            meta=np.empty((0,) * (darr.ndim + 1), dtype=data.dtype),
        )
    else:
        arr, sarr_np = np.asarray(data.values), np.asarray(state.values)
        extra = _context_arrays(arr, sarr_np, model.spec.context_offsets, ctx_axis, np)
        out = run(arr, sarr_np, *extra)

    result = xr.Dataset(coords=ds.coords, attrs=dict(ds.attrs))
    for i, v in enumerate(variables):
        arr = out[:, i]
        dims = ["member", *order]
        filled = xr.DataArray(arr, dims=dims)
        if members == 1:
            filled = filled.isel(member=0, drop=True)
        filled = filled.transpose(*([d for d in ["member"] if members > 1] + list(first.dims)))
        if climatology:
            # back from anomalies; observed points from the source, bit for bit
            filled = add_climatology(filled, climatology[v])
            filled = filled.where(states[v] != masks.OBSERVED, source[v])
        filled.attrs = dict(ds[v].attrs)
        filled.attrs["ancillary_variables"] = f"{v}_fill_flag"
        filled.encoding = {
            k: val for k, val in ds[v].encoding.items() if k in ("_FillValue", "dtype", "units")
        }
        result[v] = filled
        flag = states[v].transpose(*first.dims).astype(np.uint8)
        flag.attrs = dict(FLAG_ATTRS)
        flag.attrs["long_name"] = f"sparsediff fill flag of {v}"
        result[f"{v}_fill_flag"] = flag
    if members > 1:
        result = result.assign_coords(member=("member", np.arange(members), dict(MEMBER_ATTRS)))
    computed = not lazy or _persist(result, variables, persist)
    for other in ds.data_vars:
        if other not in result and other not in variables:
            result[other] = ds[other]
    # uint8 flags and an int64 member coordinate need CF >= 1.9
    result.attrs["Conventions"] = cf_conventions(ds.attrs.get("Conventions"))
    result.attrs["sparsediff_fill"] = json.dumps(
        {
            **opts.record(),
            "model_trained_at": model.provenance.get("trained_at"),
            "model_kind": model.spec.kind,
            "model_calibration": model.spec.calibration,
            **{k: model.provenance[k] for k in ("adaptation",) if k in model.provenance},
            "invalid": rule.source,
            "value_check": "sample and extremes" if check_values else "off",
            "filled_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        sort_keys=True,
    )
    if computed and progress is not False:
        print(summary_line(flag_counts(result)), file=sys.stderr, flush=True)
    return result if restore is None else result.isel({model.spec.context_dim: restore})


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
