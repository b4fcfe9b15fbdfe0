"""Training data: from a config (or a Dataset) to batches of windows.

Everything that can be wrong with the data is checked here, before any
training step: variables and dims present, window not larger than the domain,
at least one eligible window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from sparsediff.data import io, masks
from sparsediff.data.climatology import anomalies, climatology_of
from sparsediff.data.gaps import gap_mask
from sparsediff.data.grid import grid_spacing
from sparsediff.data.sources import resolve_source
from sparsediff.data.stats import Stats, compute_stats
from sparsediff.errors import ConfigError
from sparsediff.rng import seed_for
from sparsediff.training.config import TrainConfig
from sparsediff.training.patches import PatchDataset

__all__ = ["Batch", "BatchStream", "PreparedData", "prepare_data", "resolve_source"]

#: Missing share of the fixed holdout pattern used for the in-training masked RMSE.
EVAL_HIDE = 0.3


@dataclass
class PreparedData:
    """Training and holdout windows, with the stats and states they were built from."""

    train: PatchDataset
    holdout: PatchDataset | None
    stats: Stats
    variables: list[str]
    dims: list[str]
    facts: dict[str, Any]
    climatology: dict[str, xr.DataArray] | None = None


def prepare_data(
    cfg: TrainConfig, ds: xr.Dataset | None = None, *, rank: int = 0, world_size: int = 1
) -> PreparedData:
    """Open, check, split and window the training data.

    Parameters
    ----------
    cfg
        The validated training config.
    ds
        A Dataset that replaces ``cfg.data.source``.
    rank, world_size
        This process's DDP rank and the number of ranks (windows are sharded).

    Raises
    ------
    ConfigError, InputError
        Missing variables or dims, a window larger than the domain, no eligible window.
    """
    d = cfg.data
    if ds is None:
        ds = resolve_source(d.source)
    missing = [v for v in d.variables if v not in ds.data_vars]
    if missing:
        raise ConfigError(
            f"variables {missing} are not in the data (it has {sorted(map(str, ds.data_vars))})"
        )
    io.validate_dims(ds[d.variables], list(d.dims))
    for dim, rng in d.isel.items():
        if dim not in ds.dims:
            raise ConfigError(f"data.isel names dim {dim!r}, which the data does not have")
        ds = ds.isel({dim: slice(*rng)})
    ds = ds[d.variables]
    for dim, size in zip(d.dims, cfg.window.size, strict=True):
        if size > ds.sizes[dim]:
            raise ConfigError(
                f"window.size {size} along {dim!r} is larger than the domain ({ds.sizes[dim]})"
            )
    invalid: Any = d.invalid
    if d.invalid_below is not None:
        invalid = masks.at_or_below(ds, d.variables, d.invalid_below, invalid=d.invalid)
    states = masks.states(ds, d.variables, invalid=invalid, invalid_along=d.invalid_along)
    holdout_ds = holdout_states = None
    train_ds, train_states = ds, states
    if d.holdout_dim is not None:
        if d.holdout_dim not in ds.dims:
            raise ConfigError(f"data.holdout_dim {d.holdout_dim!r} is not a dim of the data")
        n = ds.sizes[d.holdout_dim]
        n_hold = round(n * d.holdout_fraction)
        if n_hold > 0:
            cut = {d.holdout_dim: slice(0, n - n_hold)}
            rest = {d.holdout_dim: slice(n - n_hold, n)}
            train_ds, train_states = ds.isel(cut), states.isel(cut)
            holdout_ds, holdout_states = ds.isel(rest), states.isel(rest)
    climatology = None
    if d.climatology_dim is not None:
        if d.climatology_dim not in ds.dims or d.climatology_dim in d.dims:
            raise ConfigError(
                f"data.climatology_dim {d.climatology_dim!r} must be a non-spatial dim of the data"
            )
        climatology = climatology_of(train_ds, train_states, d.variables, d.climatology_dim)
        train_ds = anomalies(train_ds, climatology)
        if holdout_ds is not None:
            holdout_ds = anomalies(holdout_ds, climatology)
    stats = compute_stats(train_ds, d.variables, log=d.log, states=train_states)
    win = cfg.window
    train = PatchDataset(
        train_ds,
        d.variables,
        tuple(d.dims),
        tuple(win.size),
        stride=tuple(win.stride) if win.stride else None,
        min_observed=win.min_observed,
        stats=stats,
        states=train_states,
        seed=cfg.run.seed,
        shuffle=True,
        rank=rank,
        world_size=world_size,
    )
    if len(train.windows) == 0:
        raise ConfigError(
            f"no training window of size {win.size} has an observed share >= "
            f"{win.min_observed} (lower window.min_observed or the window size)"
        )
    holdout = None
    if holdout_ds is not None:
        holdout = PatchDataset(
            holdout_ds,
            d.variables,
            tuple(d.dims),
            tuple(win.size),
            stride=tuple(win.stride) if win.stride else None,
            min_observed=win.min_observed,
            stats=stats,
            states=holdout_states,
            seed=cfg.run.seed,
            shuffle=False,
            rank=0,
            world_size=1,
        )
    facts = {
        "variables": list(d.variables),
        "dims": list(d.dims),
        "window": list(win.size),
        "units": {v: str(ds[v].attrs.get("units", "")) for v in d.variables},
        "grid_spacing": {
            dim: grid_spacing(ds[dim]) if dim in ds.coords else None for dim in d.dims
        },
        "sizes": {k: int(v) for k, v in ds.sizes.items()},
        "n_train_windows": len(train.windows),
        "n_holdout_windows": len(holdout.windows) if holdout is not None else 0,
    }
    return PreparedData(train, holdout, stats, list(d.variables), list(d.dims), facts, climatology)


@dataclass
class Batch:
    """A batch of windows on a device, plus each sample's global position.

    ``positions`` identify each sample in the global (all-rank) order of the run;
    keyed random draws use them, so one sample gets the same noise whatever the
    number of ranks.
    """

    values: torch.Tensor
    observed: torch.Tensor
    invalid: torch.Tensor
    index: torch.Tensor
    positions: list[int]


class BatchStream:
    """Endless batches over epochs from a rank's :class:`PatchDataset` shard.

    Parameters
    ----------
    dataset
        This rank's dataset (already sharded by rank).
    batch_size
        Per-rank micro-batch size.
    world_size, rank
        Used to derive global sample positions.
    start
        Number of samples this rank has already consumed (resume).
    num_workers
        DataLoader workers (reading windows in parallel).
    extra_missing
        Extra MCAR share hidden from every training window (keyed by the window id,
        the same in every epoch): the missing-rate experiments.
    seed
        Run seed.
    """

    def __init__(
        self,
        dataset: PatchDataset,
        batch_size: int,
        *,
        world_size: int = 1,
        rank: int = 0,
        start: int = 0,
        num_workers: int = 0,
        extra_missing: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.consumed = start
        self.num_workers = num_workers
        self.extra_missing = extra_missing
        self.seed = seed
        self.per_epoch = len(range(rank, len(dataset.windows), world_size))

    def _items(self) -> Iterator[dict[str, Any]]:
        while True:
            epoch, skip = divmod(self.consumed, self.per_epoch)
            self.dataset.set_epoch(epoch, skip=skip)
            loader = torch.utils.data.DataLoader(
                self.dataset,
                batch_size=None,
                num_workers=self.num_workers,
                persistent_workers=False,
            )
            yield from loader

    def _extra_keep(self, index: int, shape: tuple[int, ...]) -> torch.Tensor:
        rng = np.random.default_rng(seed_for(self.seed, 7, index))
        return torch.from_numpy(gap_mask(shape, "mcar", self.extra_missing, rng=rng))

    def __iter__(self) -> Iterator[Batch]:
        items = self._items()
        while True:
            vals, obs, inv, idx, pos = [], [], [], [], []
            for _ in range(self.batch_size):
                item = next(items)
                o = item["observed"]
                v = item["values"]
                if self.extra_missing > 0:
                    keep = self._extra_keep(int(item["index"]), tuple(o.shape[1:]))
                    o = o & keep
                    v = torch.where(o, v, torch.zeros_like(v))
                vals.append(v)
                obs.append(o)
                inv.append(item["invalid"])
                idx.append(int(item["index"]))
                pos.append(self.consumed * self.world_size + self.rank)
                self.consumed += 1
            yield Batch(
                torch.stack(vals),
                torch.stack(obs),
                torch.stack(inv),
                torch.tensor(idx),
                pos,
            )


def holdout_batches(
    holdout: PatchDataset, *, max_windows: int, batch_size: int, seed: int
) -> list[tuple[Batch, torch.Tensor]]:
    """A fixed list of holdout batches with a fixed MCAR hide mask (True = shown).

    The hide mask is keyed by the window id, so the in-training masked RMSE is
    measured on the same points at every evaluation.
    """
    holdout.set_epoch(0)
    out: list[tuple[Batch, torch.Tensor]] = []
    items = []
    for i, item in enumerate(holdout):
        if i >= max_windows:
            break
        items.append(item)
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        shows = []
        for item in chunk:
            rng = np.random.default_rng(seed_for(seed, 11, int(item["index"])))
            shows.append(
                torch.from_numpy(
                    gap_mask(tuple(item["observed"].shape), "mcar", EVAL_HIDE, rng=rng)
                )
            )
        b = Batch(
            torch.stack([c["values"] for c in chunk]),
            torch.stack([c["observed"] for c in chunk]),
            torch.stack([c["invalid"] for c in chunk]),
            torch.tensor([int(c["index"]) for c in chunk]),
            [int(c["index"]) for c in chunk],
        )
        out.append((b, torch.stack(shows)))
    return out
