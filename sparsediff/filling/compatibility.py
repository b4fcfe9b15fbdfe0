"""Whether a model can fill a dataset: refused before any compute, with one clear error."""

from __future__ import annotations

import warnings

import xarray as xr

from sparsediff.data.climatology import aligned_climatology
from sparsediff.data.grid import grid_spacing
from sparsediff.data.units import same_units
from sparsediff.errors import CompatibilityError, SparsediffWarning
from sparsediff.model import Model

__all__ = ["check_compatible"]


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
        aligned_climatology(ds, model.climatology, at_steps=False)  # another grid, no dates
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
