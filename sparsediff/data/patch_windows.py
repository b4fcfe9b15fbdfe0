"""Training patches: windows over 2 or 3 named dims of an xarray Dataset (NumPy side).

[`PatchWindows`][PatchWindows] cuts the variables of a (possibly dask-backed,
larger-than-memory) Dataset into windows of ``size`` points over the spatial
``dims``; every other dim of the variables (time, member, level when not
spatial) is a batch dim, and each index of their product is a separate sample
position.

Windows start every ``stride`` points along each spatial dim; when the last
window would pass the end of the dim it is aligned to the end instead, so the
whole domain is covered (the last window then overlaps its neighbour more).

Windows whose observed fraction (over all variables and points) is below
``min_observed`` are skipped. The observed counts of all windows are computed
once, when the dataset is built, as a chunk-wise dask reduction — the store is
never loaded into memory; each sample is then read lazily (one ``isel`` of one
window) when it is yielded.

Order and sharding. The order of an epoch is a permutation of the eligible
windows drawn from ``(seed, epoch)``. It is dealt round-robin to the DDP ranks
(item ``i`` to rank ``i % world_size``) and then, within a rank, in blocks of
``batch_size`` items to the DataLoader workers (block ``j`` to worker
``j % num_workers``). This is an exact partition: every eligible window is
yielded exactly once per epoch across all ranks and workers, with no padding,
so the per-rank counts may differ by one (see [`PatchWindows.local_len`][PatchWindows.local_len]).
With ``batch_size`` equal to the DataLoader's, the DataLoader (which takes
batches from its workers in turn) yields the rank's order in order, so
``set_epoch(epoch, skip=n)`` resumes exactly after the first ``n`` items.

This module is pure NumPy/xarray; the torch ``IterableDataset`` over it is
[`sparsediff.training.patches.PatchDataset`][sparsediff.training.patches.PatchDataset].
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from sparsediff.data.masks import INVALID, OBSERVED
from sparsediff.data.stats import Stats, VariableStats, normalize_array
from sparsediff.data.tiling import window_starts
from sparsediff.errors import InputError

__all__ = [
    "PatchWindows",
    "Window",
    "normalized_frame",
    "read_frame",
]


@dataclass(frozen=True)
class Window:
    """One training window.

    Attributes
    ----------
    index
        Global id: position of the window among all candidate windows (eligible or
        not), in C order over the batch positions and then the spatial window grid.
        Stable for a given dataset, dims, size and stride.
    batch
        Index along each batch dim (empty when there is none).
    start
        Start index along each spatial dim; the window is ``start:start + size``.
    observed
        Fraction of observed points in the window (over all variables).
    """

    index: int
    batch: tuple[int, ...]
    start: tuple[int, ...]
    observed: float


def _per_dim(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int | np.integer):
        out: tuple[int, ...] = (int(value),) * ndim
    else:
        out = tuple(int(v) for v in value)
    if len(out) != ndim:
        raise InputError(f"{name} has {len(out)} values for {ndim} spatial dims: {out}")
    if any(v < 1 for v in out):
        raise InputError(f"{name} must be positive in every dim, got {out}")
    return out


def _variable_stats(stats: Stats, name: str) -> VariableStats:
    try:
        return stats[name]
    except KeyError as err:
        raise InputError(f"the normalization stats have no entry for variable {name!r}") from err


def normalized_frame(
    raws: Sequence[np.ndarray],
    point_states: Sequence[np.ndarray | None],
    variables: Sequence[str],
    stats: Stats | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame of every variable: normalized values, observed and invalid masks.

    Parameters
    ----------
    raws
        Per variable, the raw values (any shape, the same for all).
    point_states
        Per variable, the point states ([`sparsediff.data.masks`][sparsediff.data.masks]), or
        ``None``: observed = finite, nothing invalid.
    variables
        Variable names (keys of ``stats``).
    stats
        Normalization statistics, or ``None`` to keep the values.

    Returns
    -------
    values, observed, invalid
        ``(C, *shape)``: float64 values normalized at observed points and 0
        elsewhere, and the two bool masks.
    """
    shape = (len(variables), *np.shape(raws[0]))
    values = np.zeros(shape, dtype=np.float64)
    observed = np.zeros(shape, dtype=bool)
    invalid = np.zeros(shape, dtype=bool)
    for c, (name, raw, state) in enumerate(zip(variables, raws, point_states, strict=True)):
        raw = np.asarray(raw, dtype=np.float64)
        ok = np.isfinite(raw)
        if state is not None:
            ok &= state == OBSERVED
            invalid[c] = state == INVALID
        if stats is not None:
            raw = np.where(ok, raw, np.nan)  # normalize observed values only
            raw = np.asarray(normalize_array(raw, _variable_stats(stats, name)), dtype=np.float64)
        values[c] = np.where(ok, raw, 0.0)
        observed[c] = ok
    return values, observed, invalid


def read_frame(
    ds: xr.Dataset,
    point_states: xr.Dataset | None,
    variables: Sequence[str],
    dims: Sequence[str],
    stats: Stats | None,
    indexers: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one frame (``ds.isel(indexers)``, lazily) as `normalized_frame` gives it."""
    with dask.config.set(scheduler="synchronous"):
        data = ds.isel(indexers).compute()
        here = None if point_states is None else point_states.isel(indexers).compute()
    raws = [data[n].transpose(*dims).values for n in variables]
    per_var = [None if here is None else here[n].transpose(*dims).values for n in variables]
    return normalized_frame(raws, per_var, variables, stats)


class PatchWindows:
    """Windows of a Dataset as normalized, masked NumPy arrays.

    Parameters
    ----------
    ds
        The data; may be lazily opened (dask-backed).
    variables
        Names of the variables, one channel each (all with the same dims).
    dims
        2 or 3 spatial dims, e.g. ``("latitude", "longitude")``, ``("z", "y", "x")``
        or ``("time", "lat", "lon")``; the other dims are batch dims.
    size
        Window size per spatial dim (an int applies to every dim).
    stride
        Distance between window starts per dim; default ``size`` (non-overlapping).
    min_observed
        Windows with a smaller observed fraction are skipped.
    stats
        Normalization statistics ([`Stats`][sparsediff.data.stats.Stats]); ``None``
        leaves values as they are.
    states
        Point states from [`sparsediff.data.masks.states`][sparsediff.data.masks.states] (uint8 per
        variable). ``None``: observed = finite, nothing invalid.
    seed
        Seed of the epoch permutations (>= 0).
    shuffle
        Whether to permute the windows each epoch (else the global-id order).
    rank, world_size
        This process's DDP rank and the number of ranks.
    batch_size
        Block size of the split among DataLoader workers; set it to the
        DataLoader's batch size for an exact resume with ``skip``.

    Yields
    ------
    dict
        This rank's windows of the epoch, as [`read`][read] returns them.

    Raises
    ------
    InputError
        For a missing variable or dim, variables with different dims, a window
        larger than the domain, or bad sizes.
    """

    def __init__(
        self,
        ds: xr.Dataset,
        variables: Sequence[str] | str,
        dims: Sequence[str],
        size: int | Sequence[int],
        *,
        stride: int | Sequence[int] | None = None,
        min_observed: float = 0.05,
        stats: Stats | None = None,
        states: xr.Dataset | None = None,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        batch_size: int = 1,
    ) -> None:
        if not isinstance(ds, xr.Dataset):
            raise InputError(
                f"{type(self).__name__} needs an xarray.Dataset, got {type(ds).__name__}"
            )
        names = [variables] if isinstance(variables, str) else list(variables)
        if not names:
            raise InputError(f"{type(self).__name__} needs at least one variable")
        self.dims = tuple(str(d) for d in dims)
        if len(self.dims) not in (2, 3) or len(set(self.dims)) != len(self.dims):
            raise InputError(f"dims must be 2 or 3 distinct dim names, got {self.dims}")
        for name in names:
            if name not in ds.data_vars:
                raise InputError(f"variable {name!r} is not in the dataset")
        first = ds[names[0]]
        for d in self.dims:
            if d not in first.dims:
                raise InputError(f"dim {d!r} is not a dim of variable {names[0]!r} {first.dims}")
        for name in names[1:]:
            if set(ds[name].dims) != set(first.dims):
                raise InputError(
                    f"variable {name!r} has dims {ds[name].dims}, but {names[0]!r} has "
                    f"{first.dims}; all variables of a {type(self).__name__} need the same dims"
                )
        self.variables = tuple(names)
        self.batch_dims = tuple(d for d in first.dims if d not in self.dims)
        self.batch_shape = tuple(int(ds.sizes[d]) for d in self.batch_dims)
        self.domain = tuple(int(ds.sizes[d]) for d in self.dims)
        self.size = _per_dim(size, len(self.dims), "size")
        self.stride = self.size if stride is None else _per_dim(stride, len(self.dims), "stride")
        for d, n, s in zip(self.dims, self.domain, self.size):
            if s > n:
                raise InputError(f"window size {s} is larger than dim {d!r} of size {n}")
        if not 0.0 <= float(min_observed) <= 1.0:
            raise InputError(f"min_observed must be in [0, 1], got {min_observed!r}")
        if states is not None:
            for name in names:
                if name not in states.data_vars:
                    raise InputError(f"the states dataset has no variable {name!r}")
                if dict(states[name].sizes) != dict(ds[name].sizes):
                    raise InputError(
                        f"states of {name!r} have sizes {dict(states[name].sizes)}, "
                        f"the data {dict(ds[name].sizes)}"
                    )
        if int(seed) < 0:
            raise InputError(f"seed must be >= 0, got {seed}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if stats is not None:
            for name in names:
                _variable_stats(stats, name)
        if not 0 <= rank < world_size:
            raise InputError(f"rank {rank} is not in [0, world_size={world_size})")

        self._ds = ds[list(names)]
        self._states = None if states is None else states[list(names)]
        self.stats = stats
        self.min_observed = float(min_observed)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.batch_size = int(batch_size)
        self.epoch = 0
        self.skip = 0
        self._starts = [
            window_starts(n, s, st) for n, s, st in zip(self.domain, self.size, self.stride)
        ]
        self.windows: list[Window] = self._eligible_windows()

    # -- eligibility ------------------------------------------------------------------------

    def _observed_counts(self) -> np.ndarray:
        """Observed points per candidate window, shape (*batch_shape, *grid)."""
        order = (*self.batch_dims, *self.dims)
        total: Any = None
        for name in self.variables:
            var = self._ds[name]
            if var.chunks is None:  # in memory or lazily indexed: read it chunk by chunk too
                var = var.chunk("auto")
            ok = np.isfinite(var)
            if self._states is not None:
                ok = ok & (self._states[name] == OBSERVED)
            part = dsa.asarray(ok.transpose(*order).data).astype(np.float64)  # type: ignore[call-overload]
            total = part if total is None else total + part
        # sum over each window = contraction of each spatial axis with a 0/1 membership
        # matrix (windows x points); chunk-wise, so memory stays bounded by a few chunks
        nb = len(self.batch_dims)
        for starts, n, s in zip(self._starts, self.domain, self.size):
            member = np.zeros((len(starts), n), dtype=np.float64)
            for i, st in enumerate(starts):
                member[i, st : st + s] = 1.0
            total = dsa.tensordot(total, dsa.from_array(member), axes=([nb], [1]))
        return np.rint(np.asarray(total.compute())).astype(np.int64)

    def _eligible_windows(self) -> list[Window]:
        counts = self._observed_counts()
        per_window = len(self.variables) * math.prod(self.size)
        fraction = counts / per_window
        grid = tuple(len(s) for s in self._starts)
        full_shape = self.batch_shape + grid
        nb = len(self.batch_dims)
        windows = []
        for flat in np.flatnonzero(fraction.reshape(-1) >= self.min_observed):
            multi = np.unravel_index(int(flat), full_shape)
            windows.append(
                Window(
                    index=int(flat),
                    batch=tuple(int(i) for i in multi[:nb]),
                    start=tuple(self._starts[d][int(i)] for d, i in enumerate(multi[nb:])),
                    observed=float(fraction.reshape(-1)[flat]),
                )
            )
        return windows

    # -- order and sharding -------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of eligible windows (one epoch over all ranks and workers)."""
        return len(self.windows)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch (its permutation) and skip the first ``skip`` items of this rank.

        Call before creating the DataLoader iterator of the epoch (workers copy the
        dataset when the iterator starts; with ``persistent_workers=True`` the
        change does not reach them).
        """
        if epoch < 0 or skip < 0:
            raise InputError(f"epoch and skip must be >= 0, got {epoch} and {skip}")
        self.epoch = int(epoch)
        self.skip = int(skip)

    def epoch_order(self) -> np.ndarray:
        """Positions (into `windows`) of the whole epoch, before sharding."""
        n = len(self.windows)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def rank_order(self) -> np.ndarray:
        """Positions of this rank's items in this epoch, after ``skip``."""
        return self.epoch_order()[self.rank :: self.world_size][self.skip :]

    def local_len(self) -> int:
        """Number of items this rank yields in the current epoch (after ``skip``)."""
        return len(self.rank_order())

    def worker_order(self, worker: int = 0, num_workers: int = 1) -> np.ndarray:
        """Positions of one DataLoader worker's items: blocks of ``batch_size`` dealt in turn."""
        order = self.rank_order()
        if num_workers > 1:
            block = (np.arange(len(order)) // self.batch_size) % num_workers
            order = order[block == worker]
        return order

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for pos in self.worker_order():
            yield self.read(self.windows[int(pos)])

    # -- reading ----------------------------------------------------------------------------

    def read(self, window: Window) -> dict[str, Any]:
        """Read one window (lazily: only this window is loaded).

        Parameters
        ----------
        window
            A window of this dataset (an item of `windows`).

        Returns
        -------
        dict
            ``values`` (C, *size) float64, normalized, 0 at non-observed points;
            ``observed`` (C, *size) bool; ``invalid`` (C, *size) bool; ``index``
            int (the window's global id).
        """
        indexers: dict[Any, Any] = dict(zip(self.batch_dims, window.batch))
        indexers.update({d: slice(s, s + n) for d, s, n in zip(self.dims, window.start, self.size)})
        values, observed, invalid = read_frame(
            self._ds, self._states, self.variables, self.dims, self.stats, indexers
        )
        return {"values": values, "observed": observed, "invalid": invalid, "index": window.index}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(variables={self.variables}, dims={self.dims}, "
            f"size={self.size}, stride={self.stride}, windows={len(self)}, "
            f"rank={self.rank}/{self.world_size})"
        )
