"""Training crops: each eligible window with a halo around it, its context frames and a donor mask.

[`CropDataset`][CropDataset] is a
[`PatchDataset`][sparsediff.training.patches.PatchDataset] (the torch side) and
keeps the window bookkeeping that class takes from
[`PatchWindows`][sparsediff.data.patch_windows.PatchWindows] (eligibility, epoch
order, exact sharding over ranks and workers, resumable skip); it reads, for
each window,

* the **crop**: the window plus ``halo`` points on every side, so that the
  first guess of the window is computed from data beyond it (as at fill time,
  where it sees the whole field). Points beyond a domain edge are padding:
  not observed and not active; along a periodic dim (a global longitude) the
  crop wraps around instead;
* the **context frames**: the same crop at the steps ``context_offsets``
  away along ``context_dim`` (an all-unobserved frame past either end);
* optionally a **donor**: the observed mask of the same crop at another step
  (drawn from the window id and the epoch), for "real" hide masks copied
  from the data's own gaps (the DINCAE recipe).

Values are normalized with the stats and 0 wherever not observed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
import numpy as np
import torch
import xarray as xr

from sparsediff.data.gaps import random_training_mask
from sparsediff.data.patch_windows import Window, normalized_frame, read_frame
from sparsediff.errors import InputError
from sparsediff.method.eof_guess import GuessEofs, eof_sums
from sparsediff.rng import Stream, numpy_rng_for
from sparsediff.training.patches import PatchDataset

__all__ = ["CropDataset"]

#: Data up to this size (float64 bytes) are held as numpy arrays for fast crops.
_IN_MEMORY_BYTES = 1 << 30


FIELD_HIDE = (0.1, 0.6)
"""Share of the field around a training crop hidden for its EOF background (uniform in it)."""
FIELD_PATTERNS = ("mcar", "boxes", "cloud")
"""Gap patterns of the field around a training crop (one drawn per crop)."""
FIELD_CACHE = 64
"""Whole fields a crop dataset keeps in memory for the EOF sums around its crops."""


def _sums(values: np.ndarray, shown: np.ndarray, basis: np.ndarray) -> tuple[Any, Any]:
    """[`eof_sums`][sparsediff.method.eof_guess.eof_sums] of one frame, as numpy."""
    g, p = eof_sums(
        torch.from_numpy(values)[None], torch.from_numpy(shown)[None], torch.from_numpy(basis)[None]
    )
    return g[0].numpy(), p[0].numpy()


class CropDataset(PatchDataset):
    """Windows read as crops with a halo, context frames and a donor mask.

    Parameters
    ----------
    *args, **kwargs
        As for [`PatchDataset`][sparsediff.training.patches.PatchDataset].
    halo
        Points added on each side of the window, per spatial dim.
    periodic
        Per spatial dim, whether it wraps around (then the crop wraps too).
    context_dim
        Batch dim of the context frames (e.g. ``"time"``), or ``None``.
    context_offsets
        Steps along ``context_dim`` of the context frames (e.g. ``(-1, 1)``).
    donor
        Also read a donor mask (for the ``"real"`` hide pattern): the observed
        mask of the same crop at another step.
    keep
        Instead of another step's mask, the ``"real"`` pattern's mask of every
        crop: this boolean array (the data's dims; ``False`` = hide where
        observed) at the crop's own step and place, e.g. the cells left when
        whole platforms of point observations are hidden.
    eofs
        The EOFs of an EOF background
        ([`GuessEofs`][sparsediff.method.eof_guess.GuessEofs]): each crop then also
        carries ``basis`` ``(C, M, *crop)``, ``eof_prior`` ``(C, M)`` and the sums
        over its field's observed points outside the crop, ``outside_gram``
        ``(1 + K, C, M, M)`` and ``outside_proj`` ``(1 + K, C, M)`` (the step, then
        its context frames; [`sparsediff.method.eof_guess`][sparsediff.method.eof_guess]).

    Yields
    ------
    dict
        ``values``, ``observed``, ``active`` ``(C, *crop)``; ``context``,
        ``context_observed`` ``(K, C, *crop)`` when there is context;
        ``donor`` ``(C, *crop)`` when asked; ``index`` (the window id).
    """

    def __init__(
        self,
        *args: Any,
        halo: Sequence[int],
        periodic: Sequence[bool] | None = None,
        context_dim: str | None = None,
        context_offsets: Sequence[int] = (),
        donor: bool = False,
        keep: xr.DataArray | None = None,
        eofs: GuessEofs | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.eofs = eofs
        self._field_sums: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}  # values, seen
        self.halo = tuple(int(h) for h in halo)
        if len(self.halo) != len(self.dims) or min(self.halo) < 0:
            raise InputError(f"halo needs one size >= 0 per spatial dim, got {tuple(halo)}")
        self.periodic = (
            (False,) * len(self.dims) if periodic is None else tuple(bool(p) for p in periodic)
        )
        if context_dim is not None and context_dim not in self.batch_dims:
            raise InputError(
                f"context_dim {context_dim!r} must be a non-spatial dim of the data "
                f"(batch dims: {self.batch_dims})"
            )
        self.context_dim = context_dim
        self.context_offsets = tuple(int(o) for o in context_offsets) if context_dim else ()
        self.donor = bool(donor) and bool(self.batch_dims)
        self.keep = keep
        if keep is not None:
            self._keep = self._aligned_keep(keep)
        self._arrays = self._in_memory()

    def _aligned_keep(self, keep: xr.DataArray) -> np.ndarray:
        """``keep`` as a bool array in the data's dim order, lined up by label where
        both carry coordinates (the data may have been sorted since it was made)."""
        sizes = {d: self._ds.sizes[d] for d in (*self.batch_dims, *self.dims)}
        if dict(keep.sizes) != sizes:
            raise InputError(f"keep has sizes {dict(keep.sizes)}, the data {sizes}")
        for d in sizes:
            if d in keep.coords and d in self._ds.coords:
                try:
                    keep = keep.sel({d: self._ds[d].values})
                except KeyError as exc:
                    raise InputError(f"keep's {d!r} labels are not the data's") from exc
        return np.asarray(keep.transpose(*sizes).values, dtype=bool)

    def _in_memory(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]] | None:
        """The variables (and states) as numpy arrays when they are small enough.

        Crops are then cut with numpy indexing instead of an xarray ``isel``
        per frame (about 100x faster); larger data stay lazy and are read
        window by window.
        """
        order = (*self.batch_dims, *self.dims)
        total = sum(self._ds[v].size * 8 for v in self.variables)
        if total > _IN_MEMORY_BYTES:
            return None
        out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        with dask.config.set(scheduler="synchronous"):
            for name in self.variables:
                values = np.asarray(self._ds[name].transpose(*order).values, dtype=np.float64)
                states = (
                    None
                    if self._states is None
                    else np.asarray(self._states[name].transpose(*order).values)
                )
                out[name] = (values, states)
        return out

    def _spatial_index(self, window: Window) -> tuple[list[np.ndarray], np.ndarray]:
        """Index array per spatial dim and the 'inside the domain' mask of the crop."""
        idx, inside = [], []
        for start, size, h, n, wrap in zip(
            window.start, self.size, self.halo, self.domain, self.periodic, strict=True
        ):
            g = np.arange(start - h, start + size + h)
            if wrap:
                idx.append(np.mod(g, n))
                inside.append(np.ones(g.size, dtype=bool))
            else:
                idx.append(np.clip(g, 0, n - 1))
                inside.append((g >= 0) & (g < n))
        mask = np.ones(tuple(a.size for a in idx), dtype=bool)
        for ax, ok in enumerate(inside):
            shape = [1] * len(idx)
            shape[ax] = ok.size
            mask &= ok.reshape(shape)
        return idx, mask

    def _frame(
        self, batch: tuple[int, ...], idx: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalized values (0 where not observed), observed and invalid of one crop."""
        if self._arrays is not None:
            return self._frame_in_memory(batch, idx)
        indexers: dict[Any, Any] = dict(zip(self.batch_dims, batch, strict=True))
        indexers.update({d: a for d, a in zip(self.dims, idx, strict=True)})
        return read_frame(self._ds, self._states, self.variables, self.dims, self.stats, indexers)

    def _frame_in_memory(
        self, batch: tuple[int, ...], idx: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self._arrays is not None
        where: Any = (*batch, *np.ix_(*idx))
        raws = [self._arrays[n][0][where] for n in self.variables]
        point_states = [
            None if (st := self._arrays[n][1]) is None else st[where] for n in self.variables
        ]
        return normalized_frame(raws, point_states, self.variables, self.stats)

    def read(self, window: Window) -> dict[str, Any]:
        """Read the crop, context frames and donor of one window."""
        idx, inside = self._spatial_index(window)
        values, observed, invalid = self._frame(window.batch, idx)
        observed &= inside
        active = ~invalid & inside
        out: dict[str, Any] = {
            "values": torch.from_numpy(values).to(self.dtype),
            "observed": torch.from_numpy(observed),
            "active": torch.from_numpy(active),
            "index": window.index,
        }
        if self.context_offsets:
            axis = self.batch_dims.index(str(self.context_dim))
            size = self.batch_shape[axis]
            cv, co = [], []
            for off in self.context_offsets:
                pos = window.batch[axis] + off
                if 0 <= pos < size:
                    b = list(window.batch)
                    b[axis] = pos
                    v, o, _ = self._frame(tuple(b), idx)
                    o &= inside & active
                    v = np.where(o, v, 0.0)
                else:
                    v, o = np.zeros_like(values), np.zeros_like(observed)
                cv.append(v)
                co.append(o)
            out["context"] = torch.from_numpy(np.stack(cv)).to(self.dtype)
            out["context_observed"] = torch.from_numpy(np.stack(co))
        if self.keep is not None:
            own = self._keep[(*window.batch, *np.ix_(*idx))]
            out["donor"] = torch.from_numpy(np.broadcast_to(own, observed.shape) | ~active)
        elif self.donor:
            axis = (
                self.batch_dims.index(str(self.context_dim)) if self.context_dim is not None else 0
            )
            size = self.batch_shape[axis]
            b = list(window.batch)
            if size > 1:
                rng = numpy_rng_for(self.seed, Stream.DONOR, window.index, self.epoch)
                other = int(rng.integers(size - 1))
                b[axis] = other + (other >= window.batch[axis])
            _, o, _ = self._frame(tuple(b), idx)
            out["donor"] = torch.from_numpy(o | ~active)
        if self.eofs is not None:
            out.update(self._eof_parts(window, idx, inside))
        return out

    def _eof_parts(
        self, window: Window, idx: list[np.ndarray], inside: np.ndarray
    ) -> dict[str, torch.Tensor]:
        """The crop's EOFs and the sums over its fields' observed points outside it."""
        assert self.eofs is not None
        where: Any = (slice(None), slice(None), *np.ix_(*idx))
        basis = self.eofs.basis[where] * inside
        steps: list[tuple[int, ...] | None] = [window.batch]
        if self.context_offsets:
            axis = self.batch_dims.index(str(self.context_dim))
            for off in self.context_offsets:
                pos = window.batch[axis] + off
                inside_record = 0 <= pos < self.batch_shape[axis]
                b = list(window.batch)
                b[axis] = pos
                steps.append(tuple(b) if inside_record else None)
        # the field's points the crop does not cover: their sums travel with the crop
        covered = np.zeros(self.domain, dtype=bool)
        grids = np.meshgrid(*idx, indexing="ij")
        covered[tuple(g[inside] for g in grids)] = True
        c, m = basis.shape[:2]
        zero = (np.zeros((c, m, m)), np.zeros((c, m)))
        grams, projs = [zero[0]] * len(steps), [zero[1]] * len(steps)
        if not covered.all():  # the field around the crop as gappy as a fill's: field-scale
            rng = numpy_rng_for(self.seed, Stream.EOF_FIELD_HIDE, window.index, self.epoch)
            keep = random_training_mask(self.domain, rng, rate=FIELD_HIDE, patterns=FIELD_PATTERNS)
            for k, step in enumerate(steps):  # gaps hidden there; none outside the record
                if step is not None:
                    grams[k], projs[k] = self._field(step, keep & ~covered)
        return {
            "basis": torch.from_numpy(basis.astype(np.float32)),
            "eof_prior": torch.from_numpy(self.eofs.prior),
            "outside_gram": torch.from_numpy(np.stack(grams)),
            "outside_proj": torch.from_numpy(np.stack(projs)),
        }

    def _field(self, step: tuple[int, ...], keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The EOF sums over the observed points of the whole field at ``step`` kept by ``keep``.

        The last [`FIELD_CACHE`][FIELD_CACHE] fields read are kept (a crop's
        neighbours share them).
        """
        assert self.eofs is not None
        cached = self._field_sums.pop(step, None)
        if cached is None:
            idx = [np.arange(n) for n in self.domain]
            values, observed, invalid = self._frame(step, idx)
            v = torch.from_numpy(values).to(self.dtype).numpy()  # as a crop carries them
            cached = (v, observed & ~invalid)
            while len(self._field_sums) >= FIELD_CACHE:
                self._field_sums.pop(next(iter(self._field_sums)))
        self._field_sums[step] = cached  # the most recent last
        v, seen = cached
        return _sums(v, seen & keep, self.eofs.basis)

    def whole_fields(self) -> CropDataset:
        """The same data read as whole fields: one crop per step, the whole domain, no halo.

        Unshuffled and on every rank (each reads every step), with the same
        stats, states, context frames and donor; steps with an observed share
        below ``min_observed`` are skipped as here. This is the geometry a
        fill sees (its first guess is computed over the whole field), where a
        training crop sees its window and halo only.
        """
        return CropDataset(
            self._ds,
            list(self.variables),
            list(self.dims),
            self.domain,
            min_observed=self.min_observed,
            stats=self.stats,
            states=self._states,
            seed=self.seed,
            shuffle=False,
            rank=0,
            world_size=1,
            dtype=self.dtype,
            halo=(0,) * len(self.dims),
            periodic=self.periodic,
            context_dim=self.context_dim,
            context_offsets=self.context_offsets,
            donor=self.donor,
            keep=self.keep,
            eofs=self.eofs,
        )
