"""The observation operator H: a sparse matrix from a grid field to point observations.

``H @ field.ravel()`` (C order over the grid's dims) gives the field at each
observation; ``H.T @ r`` spreads values at the observations back onto the grid
(the adjoint). Each row holds the multilinear weights of the ``2**d``
surrounding cell centres (bilinear in 2D, trilinear in 3D), so H has at most
``n_obs * 2**d`` non-zeros and its memory is O(n_obs), never O(n_obs * n_cells).

Along each dim:

- between two centres, linear weights; at a centre, weight exactly 1 on that
  cell (so a gridded mask's observations select exactly their cells);
- between the outermost centre and the grid's edge (half a cell), the
  outermost cell's value (constant);
- a global longitude wraps: a point past the last centre interpolates between
  the last and the first cell;
- along a time dim, ``time="nearest"`` puts weight 1 on the nearest time step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
import xarray as xr

from sparsediff.data.target_grid import TargetGrid, role_of_name, wrap_longitude
from sparsediff.errors import InputError

if TYPE_CHECKING:
    from sparsediff.data.observations import Observations

__all__ = ["at_observations", "cell_index", "inside_grid", "observation_operator", "positions_on"]


def positions_on(obs: Observations, grid: TargetGrid, dim: str) -> np.ndarray:
    """The observations' float64 positions along ``dim`` in ``grid``'s units."""
    values = obs.coords[dim]
    if grid.roles[dim] == "time":
        return grid.time_positions(values)
    if grid.roles[dim] == "longitude":  # into the grid's unwrapped frame
        return wrap_longitude(values, float(np.min(grid.edges[dim])))
    return np.asarray(values, dtype=np.float64)


def _ascending(grid: TargetGrid, dim: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(centres, edges) in ascending order, and whether the dim descends."""
    pos, edges = grid.positions[dim], grid.edges[dim]
    if pos.size > 1 and pos[0] > pos[-1]:
        return pos[::-1], edges[::-1], True
    return pos, np.sort(edges), False


def inside_grid(obs: Observations, grid: TargetGrid) -> tuple[np.ndarray, np.ndarray]:
    """Which observations lie in the grid's cells.

    Parameters
    ----------
    obs
        Observations whose coordinates are named as ``grid``'s dims (a dim of
        size 1 may be absent).
    grid
        The grid.

    Returns
    -------
    inside, outside_time
        Boolean arrays: inside every dim's cells (a wrapping longitude is always
        inside); outside the range of a time dim.
    """
    inside = np.ones(len(obs), dtype=bool)
    late = np.zeros(len(obs), dtype=bool)
    for dim in grid.dims:
        if dim not in obs.coords or grid.periodic[dim]:
            continue
        _, edges, _ = _ascending(grid, dim)
        x = positions_on(obs, grid, dim)
        ok = (x >= edges[0]) & (x <= edges[-1])
        inside &= ok
        if grid.roles[dim] == "time":
            late |= ~ok
    return inside, late


def _linear(
    x: np.ndarray, centres: np.ndarray, periodic: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and the upper weight of each ``x`` along ascending centres."""
    n = centres.size
    if n == 1:
        zero = np.zeros(x.shape, dtype=np.int64)
        return zero, zero, np.zeros(x.shape)
    if periodic:
        x = wrap_longitude(x, centres[0])
        i = np.clip(np.searchsorted(centres, x, side="right") - 1, 0, n - 1)
        j = (i + 1) % n
        upper = np.where(j == 0, centres[0] + 360.0, centres[j])
        frac = np.clip((x - centres[i]) / (upper - centres[i]), 0.0, 1.0)
        return i, j, frac
    i = np.clip(np.searchsorted(centres, x, side="right") - 1, 0, n - 2)
    frac = np.clip((x - centres[i]) / (centres[i + 1] - centres[i]), 0.0, 1.0)
    return i, i + 1, frac


def _nearest(x: np.ndarray, edges: np.ndarray, n: int, periodic: bool) -> np.ndarray:
    """Index of the cell (between ascending ``edges``) that holds each ``x``."""
    if periodic:
        x = wrap_longitude(x, edges[0])
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n - 1)


def cell_index(obs: Observations, grid: TargetGrid) -> np.ndarray:
    """Flat (C order) index of the grid cell that holds each observation (int64)."""
    flat = np.zeros(len(obs), dtype=np.int64)
    for dim, n in zip(grid.dims, grid.shape):
        flat *= n
        if dim not in obs.coords:
            continue
        _, edges, desc = _ascending(grid, dim)
        k = _nearest(positions_on(obs, grid, dim), edges, n, grid.periodic[dim])
        flat += (n - 1 - k) if desc else k
    return flat


def observation_operator(
    obs: Observations, grid: TargetGrid, time: Literal["linear", "nearest"] = "linear"
) -> sp.csr_array:
    """The sparse operator H from a field on ``grid`` to the observations.

    Parameters
    ----------
    obs
        Observations aligned to ``grid``
        ([`aligned_to`][sparsediff.data.observations.Observations.aligned_to]).
    grid
        The grid; the field is flattened in C order of ``grid.dims``.
    time
        ``"linear"`` or ``"nearest"`` along a time dim.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(len(obs), grid.size)``, float64, at most ``2**d`` non-zeros a row,
        each row summing to 1.

    Raises
    ------
    InputError
        An unknown ``time``, a coordinate that is not a grid dim, or a point
        outside the grid.
    """
    if time not in ("linear", "nearest"):
        raise InputError(f"time interpolation {time!r}: expected 'linear' or 'nearest'")
    extra = set(obs.coords) - set(grid.dims)
    inside, _ = inside_grid(obs, grid)
    if extra or not inside.all():
        raise InputError(
            f"{int((~inside).sum())} observations outside the grid or coordinates {sorted(extra)} "
            "not on it: align them first (Observations.aligned_to)"
        )
    n_obs = len(obs)
    corners: list[tuple[np.ndarray, np.ndarray]] = [
        (np.zeros(n_obs, dtype=np.int64), np.ones(n_obs))
    ]
    for dim, n in zip(grid.dims, grid.shape):
        lo, hi, w = _dim_weights(obs, grid, dim, n, time)
        if np.array_equal(lo, hi):  # one cell per point along this dim: weight 1
            corners = [(flat * n + lo, weight) for flat, weight in corners]
            continue
        corners = [
            (flat * n + idx, weight * part)
            for flat, weight in corners
            for idx, part in ((lo, 1.0 - w), (hi, w))
        ]
    # every row has one entry per corner (distinct cells): CSR directly, then drop zero weights
    k = len(corners)
    cols = np.stack([c for c, _ in corners], axis=1).ravel()
    data = np.stack([w for _, w in corners], axis=1).ravel()
    del corners
    indptr = np.arange(0, n_obs * k + 1, k, dtype=np.int64)
    H = sp.csr_array((data, cols, indptr), shape=(n_obs, grid.size))
    H.eliminate_zeros()
    H.sort_indices()
    return H


def _dim_weights(
    obs: Observations, grid: TargetGrid, dim: str, n: int, time: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and upper weight along one dim (in the grid's order)."""
    if dim not in obs.coords:
        zero = np.zeros(len(obs), dtype=np.int64)
        return zero, zero, np.zeros(len(obs))
    centres, edges, desc = _ascending(grid, dim)
    x = positions_on(obs, grid, dim)
    if grid.roles[dim] == "time" and time == "nearest":
        k = _nearest(x, edges, n, False)
        lo, hi, w = k, k, np.zeros(x.shape)
    else:
        lo, hi, w = _linear(x, centres, grid.periodic[dim])
    if desc:
        lo, hi = n - 1 - lo, n - 1 - hi
    return lo, hi, w


def at_observations(
    obs: Observations,
    field: xr.DataArray,
    time: Literal["linear", "nearest"] = "linear",
    dim: str = "obs",
) -> xr.DataArray:
    """A gridded field at the observations, through H, for every other index.

    The field's dims that an observation coordinate names (by name, then by
    role) are the grid; the others (``member``, a variable dim) are kept, so
    an ensemble ``(member, time, lat, lon)`` gives ``(member, obs)``: what
    scoring at the observations' exact locations needs.

    Parameters
    ----------
    obs
        The observations (their longitudes in any convention).
    field
        The gridded field; NaN (land) reaches every observation that gives it weight.
    time
        ``"linear"`` or ``"nearest"`` along a time dim.
    dim
        The name of the observation dim of the result.

    Returns
    -------
    xarray.DataArray
        Dims ``(*other dims, dim)``, float64.

    Raises
    ------
    InputError
        An observation outside the field's grid (none may be dropped here), or
        coordinates that match none of the field's dims.
    """
    full = TargetGrid.from_dataset(field)
    names = {str(k) for k in obs.coords}
    roles = {role_of_name(k) for k in obs.coords} - {None}
    spatial = [d for d in full.dims if d in names or full.roles[d] in roles]
    batch = [str(d) for d in field.dims if d not in spatial]
    grid = TargetGrid.from_dataset(field, spatial)
    H = observation_operator(obs.aligned_to(grid, strict=True), grid, time=time)
    values = np.asarray(field.transpose(*batch, *spatial).values, dtype=np.float64)
    flat = values.reshape(-1, grid.size)
    out = (H @ flat.T).T.reshape((*values.shape[: len(batch)], len(obs)))
    coords = {k: v for k, v in field.coords.items() if set(v.dims) <= set(batch)}
    return xr.DataArray(out, dims=(*batch, dim), coords=coords, name=field.name, attrs=field.attrs)
