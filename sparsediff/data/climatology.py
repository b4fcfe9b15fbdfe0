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

__all__ = ["add_climatology", "anomalies", "climatology_of"]


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


def anomalies(ds: xr.Dataset, climatology: dict[str, xr.DataArray]) -> xr.Dataset:
    """``ds`` minus the climatology, per variable (lazy; dtype kept).

    The climatology is matched by dim name and size, not by coordinate labels
    (no alignment, so float round-off in coordinates cannot drop points).
    """
    ds = ds.copy()
    for v, clim in climatology.items():
        ds[v] = (ds[v] - clim.variable.astype(ds[v].dtype)).assign_attrs(ds[v].attrs)
    return ds


def add_climatology(da: xr.DataArray, clim: xr.DataArray) -> xr.DataArray:
    """Anomalies back to values: ``da + clim`` in ``da``'s dtype, attrs kept."""
    return (da + clim.variable.astype(da.dtype)).astype(da.dtype).assign_attrs(da.attrs)
