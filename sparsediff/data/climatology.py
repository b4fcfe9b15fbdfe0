"""Per-point climatology: learn and fill anomalies from the record's mean.

Strong classical fills (Laplace relaxation around the time mean, DINEOF) lean
on the per-point mean of the record. A model that fills anomalies from that
mean starts where the time-mean fill stops, and only has to learn the
spatial structure of the departures (DESIGN §3, "context the classical
methods use, we use too").
"""

from __future__ import annotations

import xarray as xr

from sparsediff.data import masks
from sparsediff.data.alignment import align_to

__all__ = ["add_climatology", "aligned_climatology", "anomalies", "climatology_of"]


def climatology_of(
    ds: xr.Dataset, states: xr.Dataset, variables: list[str], dim: str
) -> dict[str, xr.DataArray]:
    """Per-point mean over ``dim`` of the observed values (float64, computed now).

    Points never observed get the variable's overall observed mean, so the
    climatology is finite wherever a fill may need it.
    """
    out = {}
    for v in variables:
        obs = ds[v].where(states[v] == masks.OBSERVED)
        clim = obs.astype("float64").mean(dim).compute()
        overall = float(obs.astype("float64").mean().compute())
        out[v] = clim.fillna(overall).rename(v)
    return out


def aligned_climatology(
    ds: xr.Dataset, climatology: dict[str, xr.DataArray]
) -> dict[str, xr.DataArray]:
    """The climatology of each variable, matched to the points of ``ds`` by coordinates.

    Parameters
    ----------
    ds
        The data.
    climatology
        Per variable, the per-point mean on the training grid.

    Returns
    -------
    dict
        Per variable, the climatology at the data's points, in the data's
        order (a rolled longitude, a flipped latitude, a subset of the grid).

    Raises
    ------
    CompatibilityError
        Data on another grid (see
        [`sparsediff.data.alignment.align_to`][sparsediff.data.alignment.align_to]).
    """
    return {
        v: align_to(clim, ds[v], what=f"the climatology of {v!r}")
        for v, clim in climatology.items()
    }


def anomalies(ds: xr.Dataset, climatology: dict[str, xr.DataArray]) -> xr.Dataset:
    """``ds`` minus the climatology, per variable (lazy; dtype kept).

    The climatology is matched to the data by coordinates
    ([`aligned_climatology`][aligned_climatology]), never by array position alone; data on
    another grid raise [`CompatibilityError`][sparsediff.errors.CompatibilityError].
    """
    ds = ds.copy()
    for v, clim in aligned_climatology(ds, climatology).items():
        ds[v] = (ds[v] - clim.variable.astype(ds[v].dtype)).assign_attrs(ds[v].attrs)
    return ds


def add_climatology(da: xr.DataArray, clim: xr.DataArray) -> xr.DataArray:
    """Anomalies back to values: ``da + clim`` in ``da``'s dtype, attrs kept.

    ``clim`` is matched to ``da`` by coordinates as in [`anomalies`][anomalies].
    """
    clim = align_to(clim, da, what=f"the climatology of {da.name or clim.name!r}")
    return (da + clim.variable.astype(da.dtype)).astype(da.dtype).assign_attrs(da.attrs)
