"""Training data: from a config (or a Dataset) to batches of windows.

Everything that can be wrong with the data is checked here, before any
training step: variables and dims present, window not larger than the domain,
at least one eligible window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from sparsediff.data import io, masks, seasonal
from sparsediff.data.climatology import anomalies, fit_climatology
from sparsediff.data.grid import grid_spacing, is_global_longitude
from sparsediff.data.invalid_policy import invalid_states
from sparsediff.data.sources import resolve_source
from sparsediff.data.stats import Stats, compute_stats
from sparsediff.errors import ConfigError
from sparsediff.laplace.relaxation import harmonic_fill_array
from sparsediff.method.base import TrainBatch
from sparsediff.method.eof_guess import GuessEofs
from sparsediff.rng import Stream, numpy_rng_for
from sparsediff.training.config import TrainConfig
from sparsediff.training.crops import CropDataset
from sparsediff.training.eof_fit import fit_eofs
from sparsediff.training.region import record_region

__all__ = [
    "BatchStream",
    "PreparedData",
    "collate",
    "prepare_data",
    "splits",
    "whole_field_batches",
]

#: Points of whole fields read at once by [`whole_field_batches`][whole_field_batches], at most.
FIELD_POINTS = 1 << 23


@dataclass
class PreparedData:
    """Training, validation and holdout crops, with the stats and facts they were built from.

    Attributes
    ----------
    train
        Crops the networks are trained on.
    validation
        Crops never trained on, for the in-training evaluation and the
        spread calibration (``None`` when there is no dim to split along).
    holdout
        The held-out part (``data.holdout_dim``), never used in training.
    stats, variables, dims, climatology
        Normalization stats and climatology (from the training part only).
    periodic
        Per spatial dim, whether it wraps around (a global longitude).
    facts
        Data facts recorded in the model spec.
    invalid
        Per variable, the points invalid at every training step (the grid's
        land), carried by the model
        ([`sparsediff.data.masks.grid_invalid`][sparsediff.data.masks.grid_invalid]).
    region
        The training and validation part of the data (the model records it:
        ``sparsediff.training.region``), ``None`` without a split dim.
    climatology_note
        Which climatology (``data.climatology``) was fitted and why, for the
        model's provenance.
    seasonal_candidate
        ``data.climatology: auto`` fitted the mean, but the training dates
        could fit a seasonal cycle and there is a validation part to choose on
        ([`choose_climatology`][sparsediff.training.climatology_choice.choose_climatology]).
    eofs
        The first guess's EOFs (``data.eofs``) for the model, ``("eof", *dims)`` per
        variable ([`sparsediff.training.eof_fit`][sparsediff.training.eof_fit]).
    """

    train: CropDataset
    validation: CropDataset | None
    holdout: CropDataset | None
    stats: Stats
    variables: list[str]
    dims: list[str]
    periodic: tuple[bool, ...]
    facts: dict[str, Any]
    climatology: dict[str, xr.DataArray] | None = None
    invalid: dict[str, xr.DataArray] | None = None
    region: dict[str, Any] | None = None
    climatology_note: str | None = None
    seasonal_candidate: bool = False
    eofs: dict[str, xr.DataArray] | None = None


def splits(cfg: TrainConfig, sizes: dict[str, int]) -> tuple[str | None, slice, slice, slice]:
    """The split dim and the train / validation / holdout index ranges along it.

    The holdout is the last ``holdout_fraction`` of ``data.holdout_dim``; the
    validation part the last ``validation_fraction`` of what remains (at
    least one window thick when the dim is spatial), along the holdout dim
    or else the first batch dim. Without any such dim there is no
    validation part.

    Raises
    ------
    ConfigError
        A split that leaves no room for a training window.
    """
    d = cfg.data
    dim = d.holdout_dim
    if dim is None:
        batch = [k for k in sizes if k not in d.dims]
        dim = batch[0] if batch else None
    if dim is None:
        return None, slice(None), slice(0, 0), slice(0, 0)
    if dim not in sizes:
        raise ConfigError(f"data.holdout_dim {dim!r} is not a dim of the data")
    n = sizes[dim]
    n_hold = round(n * d.holdout_fraction) if d.holdout_dim is not None else 0
    rest = n - n_hold
    n_val = round(rest * d.validation_fraction)
    window = dict(zip(d.dims, cfg.window.size, strict=True))
    if n_val and dim in window:
        n_val = max(n_val, window[dim])
    need = window.get(dim, 1)
    if rest - n_val < need:
        raise ConfigError(
            f"the training part along {dim!r} is too small: {n} steps minus "
            f"{n_hold} held out (holdout_fraction) and {n_val} for validation "
            f"(validation_fraction) leaves {rest - n_val}, fewer than {need}; "
            "lower the fractions"
        )
    return (
        dim,
        slice(0, rest - n_val),
        slice(rest - n_val, rest),
        slice(rest, n),
    )


def _punch_mcar(states: xr.Dataset, variables: list[str], share: float, seed: int) -> xr.Dataset:
    """Turn a random ``share`` of the observed points into gaps (experiments; in memory)."""
    rng = numpy_rng_for(seed, Stream.EXTRA_MISSING)
    out = states.copy()
    for v in variables:
        st = np.asarray(states[v].values)
        punch = (rng.random(st.shape) < share) & (st == masks.OBSERVED)
        out[v] = states[v].copy(data=np.where(punch, np.uint8(masks.GAP), st).astype(st.dtype))
    return out


def _open_and_check(cfg: TrainConfig, ds: xr.Dataset | None) -> xr.Dataset:
    """The configured variables and ``isel`` range of the data, checked against the config."""
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
    if d.context_dim is not None and (d.context_dim not in ds.dims or d.context_dim in d.dims):
        raise ConfigError(
            f"data.context_dim {d.context_dim!r} must be a non-spatial dim of the data "
            f"(dims: {list(ds.dims)})"
        )
    return ds


def _states(cfg: TrainConfig, ds: xr.Dataset) -> xr.Dataset:
    """The states of the data under the config's invalid rules (and extra MCAR gaps)."""
    d = cfg.data
    _, states = invalid_states(
        ds,
        d.variables,
        invalid=d.invalid,
        invalid_below=d.invalid_below,
        invalid_along=d.invalid_along,
    )
    if d.extra_missing > 0:
        states = _punch_mcar(states.compute(), d.variables, d.extra_missing, cfg.run.seed)
    return states


_Parts = dict[str, tuple[xr.Dataset, xr.Dataset] | None]


def _split(
    cfg: TrainConfig, ds: xr.Dataset, states: xr.Dataset
) -> tuple[str | None, slice, slice, _Parts]:
    """The split dim, the train and validation ranges, and the (data, states) of each part."""
    dim, tr, va, ho = splits(cfg, {str(k): int(v) for k, v in ds.sizes.items()})
    parts: _Parts = {"train": (ds, states)}
    if dim is not None:
        parts = {
            name: (ds.isel({dim: sl}), states.isel({dim: sl})) if sl.stop != sl.start else None
            for name, sl in (("train", tr), ("validation", va), ("holdout", ho))
        }
    return dim, tr, va, parts


def _remove_climatology(
    cfg: TrainConfig, ds: xr.Dataset, parts: _Parts, periodic: tuple[bool, ...]
) -> tuple[dict[str, xr.DataArray] | None, str | None, bool, _Parts]:
    """Fit the climatology on the training part and turn every part into anomalies.

    Returns the climatology, one line on it, whether a seasonal cycle is a
    candidate ([`_chosen_climatology`][_chosen_climatology]) and the parts.
    """
    d = cfg.data
    if d.climatology_dim is None:
        return None, None, False, parts
    train_ds = parts["train"][0]  # type: ignore[index]
    if d.climatology_dim not in ds.dims or d.climatology_dim in d.dims:
        raise ConfigError(
            f"data.climatology_dim {d.climatology_dim!r} must be a non-spatial dim of the data"
        )
    if train_ds.sizes[d.climatology_dim] < 2:
        raise ConfigError(
            f"the training part has {train_ds.sizes[d.climatology_dim]} step along "
            f"{d.climatology_dim!r}: its climatology (the per-point mean over "
            f"{d.climatology_dim!r}) is the data itself, and the anomalies left to learn "
            "are all 0; train on more steps, or drop data.climatology_dim"
        )
    climatology, note, candidate = _chosen_climatology(cfg, parts, periodic)
    parts = {
        k: None if p is None else (anomalies(p[0], climatology), p[1]) for k, p in parts.items()
    }
    return climatology, note, candidate, parts


def _chosen_climatology(
    cfg: TrainConfig, parts: _Parts, periodic: tuple[bool, ...]
) -> tuple[dict[str, xr.DataArray], str, bool]:
    """The climatology of ``data.climatology`` on the training part, one line on it, and
    whether a seasonal cycle is a candidate.

    ``"auto"`` fits the mean here; when the training dates allow a seasonal
    cycle it is a candidate, and the trainer chooses between the two on the
    validation part
    ([`choose_climatology`][sparsediff.training.climatology_choice.choose_climatology]).
    """
    d = cfg.data
    assert d.climatology_dim is not None
    train_ds, train_states = parts["train"]  # type: ignore[misc]
    why = seasonal.seasonal_reason(train_ds, d.climatology_dim)
    if d.climatology == "seasonal" and why is not None:
        raise ConfigError(f"data.climatology 'seasonal': {why}")
    cycle = d.climatology == "seasonal"
    climatology = fit_climatology(
        train_ds,
        train_states,
        d.variables,
        d.climatology_dim,
        d.dims,
        periodic,
        fill=harmonic_fill_array,
        seasonal_cycle=cycle,
    )
    if cycle:
        return climatology, "seasonal cycle (data.climatology: seasonal)", False
    if d.climatology == "mean":
        return climatology, "per-point mean (data.climatology: mean)", False
    if why is not None:
        return climatology, f"per-point mean ({why})", False
    return climatology, "per-point mean (a seasonal cycle is a candidate)", True


def _crops(
    cfg: TrainConfig,
    part: tuple[xr.Dataset, xr.Dataset] | None,
    stats: Stats,
    periodic: tuple[bool, ...],
    *,
    shuffle: bool,
    rank: int = 0,
    world_size: int = 1,
    eofs: GuessEofs | None = None,
) -> CropDataset | None:
    """The windows of one part (``None`` for a part that is not there)."""
    if part is None:
        return None
    d, win = cfg.data, cfg.window
    return CropDataset(
        part[0],
        d.variables,
        tuple(d.dims),
        tuple(win.size),
        stride=tuple(win.stride) if win.stride else None,
        min_observed=win.min_observed,
        stats=stats,
        states=part[1],
        seed=cfg.run.seed,
        shuffle=shuffle,
        rank=rank,
        world_size=world_size,
        halo=tuple(win.halo) if win.halo is not None else tuple(win.size),
        periodic=periodic,
        context_dim=d.context_dim,
        context_offsets=tuple(d.context_offsets),
        donor="real" in cfg.autoencoder.hide.patterns or "real" in cfg.prior.cond_hide.patterns,
        eofs=eofs,
    )


def _eofs(
    cfg: TrainConfig,
    parts: _Parts,
    stats: Stats,
    invalid: dict[str, xr.DataArray],
    periodic: tuple[bool, ...],
) -> tuple[GuessEofs | None, dict[str, xr.DataArray] | None, dict[str, list[float]]]:
    """The first guess's EOFs of ``data.eofs`` (none when 0), their noise from validation."""
    d = cfg.data
    if d.eofs == "auto" or not d.eofs:  # "auto": chosen afterwards (choose_eofs)
        return None, None, {}
    if d.climatology_dim is None:
        raise ConfigError("data.eofs needs data.climatology_dim (the record the EOFs span)")
    train, states = parts["train"]  # type: ignore[misc]
    return fit_eofs(
        train, states, d.variables, d.dims, stats, invalid, d.eofs, periodic,
        held=parts.get("validation"),
    )  # fmt: skip


def _facts(
    cfg: TrainConfig,
    ds: xr.Dataset,
    train: CropDataset,
    validation: CropDataset | None,
    holdout: CropDataset | None,
) -> dict[str, Any]:
    """The data facts the model spec records."""
    d, win = cfg.data, cfg.window
    return {
        "variables": list(d.variables),
        "dims": list(d.dims),
        "window": list(win.size),
        "units": {v: str(ds[v].attrs.get("units", "")) for v in d.variables},
        "grid_spacing": {
            dim: grid_spacing(ds[dim]) if dim in ds.coords else None for dim in d.dims
        },
        "sizes": {str(k): int(v) for k, v in ds.sizes.items()},
        "n_train_windows": len(train.windows),
        "n_validation_windows": len(validation.windows) if validation is not None else 0,
        "n_holdout_windows": len(holdout.windows) if holdout is not None else 0,
        "invalid_along": d.invalid_along,
        "invalid_below": d.invalid_below,
        "log": list(d.log),
        "climatology_dim": d.climatology_dim,
        "context_dim": d.context_dim,
        "context_offsets": list(d.context_offsets) if d.context_dim else [],
    }


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
    d, win = cfg.data, cfg.window
    ds = _open_and_check(cfg, ds)
    dim, tr, va, parts = _split(cfg, ds, _states(cfg, ds))
    train_states = parts["train"][1]  # type: ignore[index]
    invalid_grid = masks.grid_invalid(train_states, d.dims, d.invalid_along)
    periodic = tuple(d_ in ds.coords and is_global_longitude(ds[d_]) for d_ in d.dims)
    climatology, climatology_note, candidate, parts = _remove_climatology(cfg, ds, parts, periodic)
    train_ds, train_states = parts["train"]  # type: ignore[misc]
    stats = compute_stats(train_ds, d.variables, log=d.log, states=train_states)
    eofs, fields, prior = _eofs(cfg, parts, stats, invalid_grid, periodic)
    train = _crops(
        cfg, parts["train"], stats, periodic, shuffle=True, rank=rank, world_size=world_size,
        eofs=eofs,
    )  # fmt: skip
    assert train is not None
    if len(train.windows) == 0:
        raise ConfigError(
            f"no training window of size {win.size} has an observed share >= "
            f"{win.min_observed} (lower window.min_observed or the window size)"
        )
    validation = _crops(cfg, parts.get("validation"), stats, periodic, shuffle=False, eofs=eofs)
    if validation is not None and len(validation.windows) == 0:
        validation = None
    holdout = _crops(cfg, parts.get("holdout"), stats, periodic, shuffle=False, eofs=eofs)
    if candidate and validation is None:
        candidate, climatology_note = False, "per-point mean (no validation window to choose on)"
    return PreparedData(
        train,
        validation,
        holdout,
        stats,
        list(d.variables),
        list(d.dims),
        periodic,
        {**_facts(cfg, ds, train, validation, holdout), "eof_prior": prior},
        climatology,
        invalid_grid,
        record_region(ds, dim, slice(tr.start, va.stop)) if dim is not None else None,
        climatology_note,
        candidate,
        fields,
    )


def collate(items: list[dict[str, Any]], halo: tuple[int, ...], positions: list[int]) -> TrainBatch:
    """Stack crops read by [`CropDataset`][CropDataset] into a [`TrainBatch`][TrainBatch]."""

    def stack(key: str) -> torch.Tensor | None:
        if key not in items[0]:
            return None
        return torch.stack([it[key] for it in items])

    values = stack("values")
    observed = stack("observed")
    active = stack("active")
    assert values is not None
    assert observed is not None
    assert active is not None
    return TrainBatch(
        values=values,
        observed=observed,
        active=active,
        halo=halo,
        positions=positions,
        context=stack("context"),
        context_observed=stack("context_observed"),
        donor=stack("donor"),
        basis=stack("basis"),
        eof_prior=items[0].get("eof_prior"),
        outside=None
        if "outside_gram" not in items[0]
        else (stack("outside_gram"), stack("outside_proj")),  # type: ignore[arg-type]
    )


class BatchStream:
    """Endless batches over epochs from a rank's [`CropDataset`][CropDataset] shard.

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
    """

    def __init__(
        self,
        dataset: CropDataset,
        batch_size: int,
        *,
        world_size: int = 1,
        rank: int = 0,
        start: int = 0,
        num_workers: int = 0,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.consumed = start
        self.num_workers = num_workers
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

    def __iter__(self) -> Iterator[TrainBatch]:
        items = self._items()
        while True:
            chunk, pos = [], []
            for _ in range(self.batch_size):
                chunk.append(next(items))
                pos.append(self.consumed * self.world_size + self.rank)
                self.consumed += 1
            yield collate(chunk, self.dataset.halo, pos)


def fixed_batches(dataset: CropDataset, *, max_windows: int, batch_size: int) -> list[TrainBatch]:
    """The first ``max_windows`` windows of a (non-shuffled) dataset, in batches.

    Their positions are the window ids, so every draw keyed by them (hidden
    points, noise) is the same at every evaluation.
    """
    dataset.set_epoch(0)
    items = []
    for i, item in enumerate(dataset):
        if i >= max_windows:
            break
        items.append(item)
    return [
        collate(
            items[s : s + batch_size],
            dataset.halo,
            [int(it["index"]) for it in items[s : s + batch_size]],
        )
        for s in range(0, len(items), batch_size)
    ]


def whole_field_batches(
    dataset: CropDataset, *, max_fields: int = 64, max_points: int = FIELD_POINTS
) -> list[TrainBatch]:
    """Steps of a part as whole fields, one per batch (see `CropDataset.whole_fields`).

    At most ``max_fields`` steps, and fewer (at least 4) where their fields
    together would hold more than ``max_points`` points; spread evenly over the
    part (its first and last steps included), so that a long part is not
    represented by one season.
    """
    fields = dataset.whole_fields()
    per_field = max(1, math.prod(fields.domain))
    count = min(max_fields, max(4, max_points // per_field), len(fields.windows))
    picks = np.unique(np.linspace(0, len(fields.windows) - 1, count).round().astype(int))
    fields.set_epoch(0)
    items = [fields.read(fields.windows[int(i)]) for i in picks]
    return [collate([item], fields.halo, [int(item["index"])]) for item in items]
