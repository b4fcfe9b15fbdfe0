"""Classical gap-filling baselines (xarray in, xarray out).

Every baseline is a small class with a ``name`` and one method,
``fill(data, *, dims, invalid=None)``:

* ``dims`` are the spatial dims (2 or 3 of them); the other dims are "the
  record" — the time steps (``time_dim``) that the time-based methods pool,
  and any further dims (member, level...) that are filled independently;
* a point is **observed** when its value is finite (and not a ``_FillValue``)
  and it is not invalid, a **gap** when it is missing and not invalid, and
  **invalid** where ``invalid`` (a boolean mask, ``True`` = invalid, that
  broadcasts against the data; or a variable name for a Dataset) says so;
* the result has the same dims, coords and attrs; observed points are copied
  back bit for bit, invalid points are NaN, gaps hold the fill (NaN only
  where the method cannot say anything — documented per method).

Baselines
---------
[`TimeMean`][TimeMean]
    per-point mean over the observed times (climatology).
[`LinearInterp`][LinearInterp]
    separable linear interpolation over the spatial dims (per slice).
[`Laplace`][Laplace]
    time-mean first guess plus a harmonic (Laplace) interpolation of the
    anomaly, the classical "Laplace relaxation around climatology".
[`DINEOF`][DINEOF]
    iterated truncated SVD of the time × space anomaly matrix, rank chosen by
    cross-validation (Beckers & Rixen 2003; Alvera-Azcárate et al. 2005).

The baselines load the data into memory (numpy); they are meant for
evaluation-sized arrays.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla
import xarray as xr

from sparsediff.data import masks
from sparsediff.data.composite import composite
from sparsediff.data.grid import is_global_longitude
from sparsediff.data.masks import INVALID, OBSERVED, invalid_mask
from sparsediff.data.selection import as_dataset, as_tuple
from sparsediff.errors import ConfigError, InputError

__all__ = [
    "BASELINES",
    "DINEOF",
    "Baseline",
    "Laplace",
    "LinearInterp",
    "TimeMean",
    "get_baseline",
]


# --------------------------------------------------------------------------- shared machinery


def _laplace_matrix(
    known: np.ndarray, active: np.ndarray, values: np.ndarray, periodic: Sequence[bool]
) -> tuple[sp.csr_array, np.ndarray, np.ndarray, np.ndarray]:
    """Discrete Laplace system for the unknown points of one slice.

    Unknowns are ``active & ~known``. Each unknown row reads
    ``n_i u_i - sum_{unknown j ~ i} u_j = sum_{known j ~ i} v_j`` over its
    active neighbours ``j`` (2 per axis; periodic axes wrap), i.e. known
    points are Dirichlet values and inactive points / domain edges are
    zero-flux (Neumann) boundaries.

    Returns
    -------
    A, rhs, unknown flat indices, and ``touches`` (the unknown has a known neighbour).
    """
    shape = known.shape
    unknown = active & ~known
    flat = np.flatnonzero(unknown)
    n = flat.size
    idx = np.full(known.size, -1, dtype=np.int64)
    idx[flat] = np.arange(n)
    coords = np.unravel_index(flat, shape)
    diag = np.zeros(n)
    rhs = np.zeros(n)
    touches = np.zeros(n, dtype=bool)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    known_f, active_f, values_f = known.reshape(-1), active.reshape(-1), values.reshape(-1)
    me = np.arange(n)
    for ax, size in enumerate(shape):
        for step in (-1, 1):
            c = coords[ax] + step
            if periodic[ax]:
                c = c % size
                inside = np.ones(n, dtype=bool)
            else:
                inside = (c >= 0) & (c < size)
                c = np.clip(c, 0, size - 1)
            nb = np.ravel_multi_index((*coords[:ax], c, *coords[ax + 1 :]), shape)
            ok = inside & active_f[nb]
            diag += ok
            is_known = ok & known_f[nb]
            rhs += np.where(is_known, np.nan_to_num(values_f[nb]), 0.0)
            touches |= is_known
            is_unknown = ok & ~known_f[nb]
            rows.append(me[is_unknown])
            cols.append(idx[nb[is_unknown]])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    a = sp.csr_array((-np.ones(r.size), (r, c)), shape=(n, n)) + sp.diags_array(diag)
    return sp.csr_array(a), rhs, flat, touches


def _harmonic_fill(
    values: np.ndarray,
    known: np.ndarray,
    active: np.ndarray,
    periodic: Sequence[bool],
    *,
    tol: float,
    iters: int,
    direct_max: int,
) -> np.ndarray:
    """Fill ``active & ~known`` points of one slice with the harmonic interpolant of ``known``.

    Unknown regions not connected to any known point stay NaN.
    """
    out = np.where(known, values, np.nan)
    if not known.any():
        return out
    a, rhs, flat, touches = _laplace_matrix(known, active, values, periodic)
    n = flat.size
    if n == 0:
        return out
    ncomp, labels = csgraph.connected_components(a, directed=False)
    reached = np.bincount(labels, weights=touches, minlength=ncomp) > 0
    sel = reached[labels]
    if not sel.any():
        return out
    a_sel = a[sel][:, sel] if not sel.all() else a
    b = rhs[sel]
    if b.size <= direct_max:
        u = spla.spsolve(a_sel.tocsc(), b)
    else:
        # symmetric positive definite (each component touches a Dirichlet point):
        # conjugate gradients with a Jacobi preconditioner
        precond = sp.diags_array(1.0 / a_sel.diagonal())
        u, info = spla.cg(a_sel, b, rtol=tol, maxiter=iters, M=precond)
        if info < 0:  # pragma: no cover - cg reports breakdown
            raise InputError("the Laplace solver broke down (singular system)")
    res = out.reshape(-1)
    res[flat[sel]] = u
    return res.reshape(values.shape)


def _states(da: xr.DataArray, invalid: xr.DataArray | None) -> xr.DataArray:
    """Point states of one variable (`sparsediff.data.masks.states`), dims of ``da``."""
    name = da.name if da.name is not None and da.name not in da.coords else "data"
    return masks.states(da.to_dataset(name=name), invalid=invalid)[name]


class Baseline:
    """Interface of the gap-filling baselines.

    Subclasses set [`name`][name] and implement `_fill_block`; [`fill`][fill]
    does the bookkeeping (dims, masks, copy-back of observed points, NaN at
    invalid points) the same way for all of them.
    """

    name: ClassVar[str] = ""
    """Registry name of the baseline."""

    needs_time: ClassVar[bool] = False

    time_dim: Hashable | None = None

    def fill(
        self,
        data: xr.DataArray | xr.Dataset,
        *,
        dims: Sequence[Hashable],
        invalid: xr.DataArray | str | None = None,
    ) -> xr.DataArray | xr.Dataset:
        """Fill the gaps of ``data``.

        Parameters
        ----------
        data
            A DataArray, or a Dataset whose numeric variables that hold all
            of ``dims`` are filled (the others are returned unchanged).
        dims
            The 2 or 3 spatial dims.
        invalid
            Points never to fill: a boolean DataArray (``True`` = invalid; a
            numeric one counts non-zero as invalid) that broadcasts against
            the data, or (for a Dataset) the name of such a variable.

        Returns
        -------
        xarray.DataArray or xarray.Dataset
            Same dims, coords and attrs as ``data``: observed points
            bit-identical, gaps filled, invalid points NaN. Integer data come
            back as ``float64``.

        Raises
        ------
        InputError
            Unknown or repeated dims, a time dim among the spatial dims, a
            missing time dim for a time-based baseline, a non-numeric
            variable, or an invalid mask that does not fit the data.
        """
        if isinstance(data, xr.Dataset):
            inv = invalid_mask(data, invalid)
            spatial = as_tuple(dims)
            names = [
                name
                for name, var in data.data_vars.items()
                if not (isinstance(invalid, str) and name == invalid)
                and all(d in var.dims for d in spatial)
                and np.issubdtype(var.dtype, np.number)
                and var.dtype != np.bool_
            ]
            if not names:
                raise InputError(
                    f"no numeric variable of the dataset has all of the dims {spatial}; "
                    f"dims: {', '.join(f'{d}={n}' for d, n in data.sizes.items())}"
                )
            out = data.copy()
            for name in names:
                out[name] = self._fill_da(data[name], spatial, inv)
            return out
        if not isinstance(data, xr.DataArray):
            raise InputError(f"expected an xarray DataArray or Dataset, got {type(data).__name__}")
        if isinstance(invalid, str):
            raise InputError("invalid given by name needs a Dataset; pass the mask as a DataArray")
        inv = None if invalid is None else invalid_mask(as_dataset(data), invalid)
        return self._fill_da(data, as_tuple(dims), inv)

    # ---------------------------------------------------------------- internals

    def _check_dims(self, da: xr.DataArray, dims: tuple[Hashable, ...]) -> None:
        what = f"variable {da.name!r}" if da.name is not None else "the data"
        if len(dims) not in (2, 3) or len(set(dims)) != len(dims):
            raise InputError(f"dims must be 2 or 3 distinct spatial dims, got {dims}")
        for d in dims:
            if d not in da.dims:
                raise InputError(
                    f"dim {d!r} is not in {what} (dims: {', '.join(map(str, da.dims))})"
                )
        if self.time_dim is not None and self.time_dim in dims:
            raise InputError(
                f"time dim {self.time_dim!r} cannot also be a spatial dim of baseline {self.name!r}"
            )
        if self.needs_time and self.time_dim not in da.dims:
            raise InputError(
                f"baseline {self.name!r} needs the time dim {self.time_dim!r}, which is not in "
                f"{what} (dims: {', '.join(map(str, da.dims))})"
            )

    def _fill_da(
        self, da: xr.DataArray, dims: tuple[Hashable, ...], inv: xr.DataArray | None
    ) -> xr.DataArray:
        self._check_dims(da, dims)
        if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.complexfloating):
            raise InputError(f"variable {da.name!r} has dtype {da.dtype}; it must be real numeric")
        if inv is not None:
            bad = [d for d in inv.dims if d not in da.dims or inv.sizes[d] != da.sizes[d]]
            if bad:
                raise InputError(
                    f"invalid mask dims {dict(inv.sizes)} do not fit the data {dict(da.sizes)} "
                    f"(dim {bad[0]!r})"
                )
            inv = inv.drop_vars(list(inv.coords))
        has_time = self.time_dim is not None and self.time_dim in da.dims
        time = (self.time_dim,) if has_time else ()
        batch = tuple(d for d in da.dims if d not in dims and d not in time)
        order = (*batch, *time, *dims)
        src = da.transpose(*order)
        original = np.asarray(src.values)
        state = np.asarray(_states(src, inv).values)
        observed = state == OBSERVED
        values = np.where(observed, original, np.nan).astype(np.float64)
        spatial_shape = original.shape[len(batch) + len(time) :]
        nt = original.shape[len(batch)] if has_time else 1
        nb = int(np.prod(original.shape[: len(batch)], dtype=np.int64))
        periodic = tuple(d in da.coords and is_global_longitude(da.coords[d]) for d in dims)
        blocks_v = values.reshape(nb, nt, *spatial_shape)
        blocks_o = observed.reshape(nb, nt, *spatial_shape)
        blocks_a = (state != INVALID).reshape(nb, nt, *spatial_shape)
        filled = np.empty_like(blocks_v)
        for b in range(nb):
            filled[b] = self._fill_block(blocks_v[b], blocks_o[b], blocks_a[b], periodic)
        out_dtype = original.dtype if np.issubdtype(original.dtype, np.floating) else np.float64
        result = composite(filled.reshape(original.shape), original, state, dtype=out_dtype)
        return src.copy(data=result).transpose(*da.dims)

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        """Fill one block ``(time, *spatial)`` (NaN at non-observed points on input)."""
        raise NotImplementedError


def _time_mean(values: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-point mean over the observed times of a ``(time, *spatial)`` block, and its support."""
    count = observed.sum(axis=0)
    total = np.where(observed, values, 0.0).sum(axis=0)
    seen = count > 0
    mean = np.where(seen, total / np.maximum(count, 1), np.nan)
    return mean, seen


# --------------------------------------------------------------------------- baselines


class TimeMean(Baseline):
    """Fill each gap with the mean of that point over its observed times (climatology).

    Parameters
    ----------
    time_dim
        The dim to average over.
    never_observed
        What a point never observed at any time gets: ``"field_mean"``
        (default) the mean of the time-mean field over the points that were
        observed (per block of the other non-spatial dims), or ``"nan"``.
    """

    name: ClassVar[str] = "time_mean"
    needs_time: ClassVar[bool] = True

    def __init__(
        self,
        time_dim: Hashable = "time",
        never_observed: Literal["field_mean", "nan"] = "field_mean",
    ) -> None:
        if never_observed not in ("field_mean", "nan"):
            raise ConfigError(
                f"never_observed must be 'field_mean' or 'nan', got {never_observed!r}"
            )
        self.time_dim = time_dim
        self.never_observed = never_observed

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        mean, seen = _time_mean(values, observed)
        if self.never_observed == "field_mean" and seen.any():
            mean = np.where(seen, mean, mean[seen].mean())
        return np.broadcast_to(mean, values.shape)


def _take(a: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, j, axis=-1)


def _axis_estimates(
    v: np.ndarray, obs: np.ndarray, inv: np.ndarray, axis: int, periodic: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """1-D linear estimates along ``axis`` for every point, as weighted sums.

    Returns ``(num2, den2, num1, den1)``: the two-sided (interpolation)
    estimate times its weight ``1/span`` and that weight, and the same for
    one-sided (nearest observed point on the line, weight ``1/distance``).
    A bracket is not used across an invalid point.
    """
    vv, oo, ii = (np.moveaxis(a, axis, -1) for a in (v, obs, inv))
    length = vv.shape[-1]
    if periodic:
        vv, oo, ii = (np.concatenate([a, a, a], axis=-1) for a in (vv, oo, ii))
    n = vv.shape[-1]
    pos = np.arange(n)
    prev = np.maximum.accumulate(np.where(oo, pos, -1), axis=-1)
    nxt = np.minimum.accumulate(np.where(oo, pos, n)[..., ::-1], axis=-1)[..., ::-1]
    pc, nc = prev.clip(0, n - 1), nxt.clip(0, n - 1)
    cinv = np.cumsum(ii, axis=-1)
    has_p = (prev >= 0) & (_take(cinv, pc) == cinv)
    has_n = (nxt < n) & (_take(cinv, nc) == cinv)
    vp = np.where(has_p, _take(vv, pc), 0.0)
    vn = np.where(has_n, _take(vv, nc), 0.0)
    both = has_p & has_n & (nxt > prev)
    span = np.where(both, nxt - prev, 1).astype(np.float64)
    w2 = np.where(both, 1.0 / span, 0.0)
    num2 = w2 * (vp + (vn - vp) * (pos - prev) / span)
    d_p = np.where(has_p & ~both, pos - prev, 0)
    d_n = np.where(has_n & ~both, nxt - pos, 0)
    dist = np.maximum(d_p + d_n, 1).astype(np.float64)
    w1 = np.where((has_p | has_n) & ~both, 1.0 / dist, 0.0)
    num1 = w1 * np.where(has_p, vp, vn)
    out = [num2, w2, num1, w1]
    if periodic:
        out = [a[..., length : 2 * length] for a in out]
    return tuple(np.moveaxis(a, -1, axis) for a in out)  # type: ignore[return-value]


class LinearInterp(Baseline):
    """Separable linear interpolation over the spatial dims.

    Along each spatial axis a gap point is interpolated linearly between the
    nearest observed points on either side of it on that grid line (in
    grid-index space); the estimates of the axes are then averaged with
    weights ``1/span`` (span = distance between the two bracketing points),
    so the tightest bracket counts most and a field linear in the grid
    indices is reproduced exactly. A bracket never reaches across an invalid
    point. Where no axis brackets the point (a gap touching the domain edge),
    the nearest observed point along each line is used (extrapolation by
    nearest value, weights ``1/distance``); where no line reaches an observed
    point, the nearest observed point of the slice (Euclidean, in grid
    indices). Works the same for 2-D and 3-D slices; a global longitude axis
    wraps around.

    Parameters
    ----------
    wrap_longitude
        Wrap a spatial dim that is a global longitude (named ``lon``/
        ``longitude``, or in ``degrees_east``, with a regular spacing that
        spans 360°). ``False``: never wrap.
    """

    name: ClassVar[str] = "linear"

    def __init__(self, wrap_longitude: bool = True) -> None:
        self.wrap_longitude = bool(wrap_longitude)

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        wrap = periodic if self.wrap_longitude else (False,) * len(periodic)
        inv = ~active
        sums = [np.zeros(values.shape) for _ in range(4)]
        for k, w in enumerate(wrap):
            for total, part in zip(
                sums, _axis_estimates(values, observed, inv, k + 1, w), strict=True
            ):
                total += part
        num2, den2, num1, den1 = sums
        with np.errstate(invalid="ignore", divide="ignore"):
            est = np.where(den2 > 0, num2 / den2, np.where(den1 > 0, num1 / den1, np.nan))
        gap = active & ~observed
        out = np.where(observed, values, np.nan)
        out[gap] = est[gap]
        for t in range(values.shape[0]):
            lost = gap[t] & np.isnan(out[t])
            if lost.any() and observed[t].any():
                _, nearest = ndi.distance_transform_edt(~observed[t], return_indices=True)
                out[t][lost] = values[t][tuple(ix[lost] for ix in nearest)]
        return out


class Laplace(Baseline):
    """Climatology plus a harmonic interpolation of the anomaly.

    ``fill = first_guess + L(obs - first_guess)`` where ``L`` solves the
    Laplace equation on the gap points of each slice with the observed
    anomalies as Dirichlet values and zero-flux (Neumann) conditions at the
    domain edges and at invalid points; a global longitude axis is periodic.
    The first guess is the per-point mean over the observed times
    (``"time_mean"``; points never observed get a harmonic fill of the
    time-mean field itself), the mean of the observed points of the slice
    (``"mean"``), or 0 (``"none"``: pure harmonic interpolation of the data).

    Each slice is one sparse linear solve: a direct solve (SuperLU) up to
    ``direct_max`` unknowns, beyond that conjugate gradients with a Jacobi
    preconditioner to relative residual ``tol`` in at most ``iters``
    iterations. Gap regions with no path to an observed point (walled in by
    invalid points) keep the first guess (NaN if it is NaN).

    Parameters
    ----------
    time_dim
        The dim of the time mean.
    first_guess
        ``"time_mean"``, ``"mean"`` or ``"none"``.
    iters, tol
        Conjugate-gradient limits for large slices.
    direct_max
        Largest number of unknowns solved directly.
    wrap_longitude
        Make a global longitude dim periodic (see [`LinearInterp`][LinearInterp]).
    """

    name: ClassVar[str] = "laplace"

    def __init__(
        self,
        time_dim: Hashable = "time",
        first_guess: Literal["time_mean", "mean", "none"] = "time_mean",
        iters: int = 5000,
        tol: float = 1e-8,
        direct_max: int = 60_000,
        wrap_longitude: bool = True,
    ) -> None:
        if first_guess not in ("time_mean", "mean", "none"):
            raise ConfigError(
                f"first_guess must be 'time_mean', 'mean' or 'none', got {first_guess!r}"
            )
        if int(iters) < 1 or not tol > 0:
            raise ConfigError(f"iters must be >= 1 and tol > 0, got iters={iters}, tol={tol}")
        self.time_dim = time_dim
        self.first_guess = first_guess
        self.iters = int(iters)
        self.tol = float(tol)
        self.direct_max = int(direct_max)
        self.wrap_longitude = bool(wrap_longitude)

    @property
    def needs_time(self) -> bool:  # type: ignore[override]
        """Only the time-mean first guess needs the time dim."""
        return self.first_guess == "time_mean"

    def _solve(self, values: np.ndarray, known: np.ndarray, active: np.ndarray, wrap: Any) -> Any:
        return _harmonic_fill(
            values,
            known,
            active,
            wrap,
            tol=self.tol,
            iters=self.iters,
            direct_max=self.direct_max,
        )

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        wrap = periodic if self.wrap_longitude else (False,) * len(periodic)
        if self.first_guess == "time_mean":
            mean, seen = _time_mean(values, observed)
            fg = self._solve(mean, seen, active.any(axis=0), wrap)
            guess = np.broadcast_to(fg, values.shape)
        elif self.first_guess == "mean":
            guess = np.empty_like(values)
            for t in range(values.shape[0]):
                guess[t] = values[t][observed[t]].mean() if observed[t].any() else np.nan
        else:
            guess = np.zeros_like(values)
        out = np.empty_like(values)
        for t in range(values.shape[0]):
            anomaly = np.where(observed[t], values[t] - guess[t], np.nan)
            a = self._solve(anomaly, observed[t], active[t], wrap)
            a = np.where(active[t] & ~observed[t] & np.isnan(a), 0.0, a)
            out[t] = guess[t] + a
        return out


def _truncated(x: np.ndarray, rank: int) -> np.ndarray:
    """Best rank-``rank`` approximation of ``x`` (truncated SVD).

    Computed from the eigenvectors of the small Gram matrix (``x x^T`` or
    ``x^T x``): the same projection as the SVD, much cheaper for a wide matrix.
    """
    if x.shape[0] <= x.shape[1]:
        _, vec = np.linalg.eigh(x @ x.T)
        u = vec[:, ::-1][:, :rank]
        return u @ (u.T @ x)
    _, vec = np.linalg.eigh(x.T @ x)
    v = vec[:, ::-1][:, :rank]
    return (x @ v) @ v.T


class DINEOF(Baseline):
    """Data Interpolating Empirical Orthogonal Functions.

    The block is a matrix ``X`` (time × space points, over the points observed
    at least once). Missing entries start at the per-point mean of the
    observed times. For ``k = 1 .. max_rank``, sweeps replace the missing
    entries by ``mean + rank-k truncated SVD of (X - mean)`` — the per-point
    time mean is re-estimated from the completed matrix at every sweep, so
    it is not biased by where the gaps are and does not cost a mode — until
    they change by less than ``tol`` (relative to the spread of the observed
    data) or ``max_iter`` sweeps; each rank starts from the previous one.

    A random ``cv_fraction`` of the observed entries (seeded) is hidden during
    this search; the rank kept is the smallest whose RMS error on them is
    within ``rank_tol`` (relative; and ``10 * tol`` of the data spread) of
    the lowest one — further modes that gain less than that are noise
    (Beckers & Rixen 2003; Alvera-Azcárate et al. 2005). The hidden entries
    are then put back and the sweeps run again at that rank with all
    observed entries.

    Points never observed at any time carry no information for an EOF
    method: they stay NaN (mark them invalid, or use [`Laplace`][Laplace]).
    After [`fill`][fill], `ranks_` holds the rank chosen for each block
    of the other non-spatial dims and `cv_errors_` the CV curves.

    Parameters
    ----------
    time_dim
        The time dim (rows of the matrix).
    max_rank
        Largest rank tried (capped at ``min(n_time, n_points) - 1``).
    tol
        Convergence threshold of the sweeps.
    max_iter
        Most sweeps per rank.
    cv_fraction
        Share of the observed entries held out to choose the rank.
    seed
        Seed of the held-out draw.
    patience
        Stop the rank search after this many ranks without a new CV minimum.
    rank_tol
        Relative CV improvement a further mode must bring to count.
    """

    name: ClassVar[str] = "dineof"
    needs_time: ClassVar[bool] = True

    def __init__(
        self,
        time_dim: Hashable = "time",
        max_rank: int = 20,
        tol: float = 1e-3,
        max_iter: int = 200,
        cv_fraction: float = 0.05,
        seed: int = 0,
        patience: int = 3,
        rank_tol: float = 0.01,
    ) -> None:
        if int(max_rank) < 1 or int(max_iter) < 1 or int(patience) < 1:
            raise ConfigError("max_rank, max_iter and patience must be at least 1")
        if not 0.0 < cv_fraction < 1.0:
            raise ConfigError(f"cv_fraction must be in (0, 1), got {cv_fraction}")
        if not tol > 0 or not rank_tol >= 0:
            raise ConfigError(f"tol must be positive and rank_tol >= 0, got {tol}, {rank_tol}")
        self.time_dim = time_dim
        self.max_rank = int(max_rank)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.cv_fraction = float(cv_fraction)
        self.seed = int(seed)
        self.patience = int(patience)
        self.rank_tol = float(rank_tol)
        self.ranks_: list[int] = []
        self.cv_errors_: list[np.ndarray] = []

    def fill(
        self,
        data: xr.DataArray | xr.Dataset,
        *,
        dims: Sequence[Hashable],
        invalid: xr.DataArray | str | None = None,
    ) -> xr.DataArray | xr.Dataset:
        """Fill the gaps of ``data`` (see [`Baseline.fill`][Baseline.fill]); sets `ranks_`.

        Parameters
        ----------
        data, dims, invalid
            As for [`Baseline.fill`][Baseline.fill].

        Returns
        -------
        xarray.DataArray or xarray.Dataset
            As for [`Baseline.fill`][Baseline.fill].
        """
        self.ranks_ = []
        self.cv_errors_ = []
        return super().fill(data, dims=dims, invalid=invalid)

    def _iterate(self, x: np.ndarray, missing: np.ndarray, rank: int, scale: float) -> np.ndarray:
        """Sweeps of ``missing <- mean + rank-k SVD`` on ``x`` (in place)."""
        if not missing.any():
            return x
        for _ in range(self.max_iter):
            mu = x.mean(axis=0)
            recon = _truncated(x - mu, rank) + mu
            change = recon[missing] - x[missing]
            x[missing] = recon[missing]
            if np.sqrt(np.mean(change**2)) <= self.tol * scale:
                break
        return x

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        nt = values.shape[0]
        mean, seen = _time_mean(values, observed)
        cols = np.flatnonzero(seen.reshape(-1))
        out = np.broadcast_to(np.where(seen, mean, np.nan), values.shape).copy()
        obs = observed.reshape(nt, -1)[:, cols]
        x = values.reshape(nt, -1)[:, cols].astype(np.float64)
        col_mean = np.broadcast_to(mean.reshape(-1)[cols], x.shape)
        x[~obs] = col_mean[~obs]
        top = min(self.max_rank, min(x.shape) - 1)
        if top < 1 or obs.all():
            self.ranks_.append(0)
            self.cv_errors_.append(np.empty(0))
            return np.where(observed, values, out)
        scale = float(np.std(x[obs])) or 1.0
        rng = np.random.default_rng(self.seed)
        obs_idx = np.flatnonzero(obs)
        n_cv = max(1, round(self.cv_fraction * obs_idx.size))
        cv = np.zeros(obs.size, dtype=bool)
        cv[rng.choice(obs_idx, size=n_cv, replace=False)] = True
        cv = cv.reshape(obs.shape)
        truth_cv = x[cv].copy()
        work = x.copy()
        work[cv] = col_mean[cv]
        missing = ~obs | cv
        errors: list[float] = []
        best, best_err, final = 0, np.inf, work.copy()
        for k in range(1, top + 1):
            work = self._iterate(work, missing, k, scale)
            err = float(np.sqrt(np.mean((work[cv] - truth_cv) ** 2)))
            errors.append(err)
            gain = best_err - err
            if best == 0 or gain > max(self.rank_tol * best_err, 10.0 * self.tol * scale):
                best, best_err, final = k, err, work.copy()
            elif k - best >= self.patience:
                break
        final[cv] = truth_cv
        final = self._iterate(final, ~obs, best, scale)
        self.ranks_.append(best)
        self.cv_errors_.append(np.asarray(errors))
        flat = out.reshape(nt, -1)
        flat[:, cols] = final
        return flat.reshape(values.shape)


# --------------------------------------------------------------------------- registry

BASELINES: dict[str, type[Baseline]] = {
    TimeMean.name: TimeMean,
    LinearInterp.name: LinearInterp,
    Laplace.name: Laplace,
    DINEOF.name: DINEOF,
}
"""Registry: baseline name -> class."""


def get_baseline(name: str, **kwargs: Any) -> Baseline:
    """Build a baseline by its registry name.

    Parameters
    ----------
    name
        One of [`BASELINES`][BASELINES] (``time_mean``, ``linear``, ``laplace``, ``dineof``).
    **kwargs
        Passed to the class.

    Returns
    -------
    Baseline
        The configured baseline.

    Raises
    ------
    ConfigError
        An unknown name or an option the baseline does not take.
    """
    try:
        cls = BASELINES[name]
    except KeyError:
        raise ConfigError(
            f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}"
        ) from None
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"bad options for baseline {name!r}: {err}") from None
