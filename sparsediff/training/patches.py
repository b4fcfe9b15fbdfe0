"""The torch side of training patches: `PatchDataset`, an ``IterableDataset``.

Window planning, eligibility, epoch order, sharding and reading are
[`sparsediff.data.patch_windows.PatchWindows`][sparsediff.data.patch_windows.PatchWindows]
(NumPy); this class adds what belongs to torch: the default rank from `torch.distributed`, the split
among DataLoader workers, and tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import xarray as xr
from torch.utils.data import IterableDataset, get_worker_info

from sparsediff.data.patch_windows import PatchWindows, Window
from sparsediff.data.stats import Stats

__all__ = ["PatchDataset", "Window"]


def _default_distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class PatchDataset(PatchWindows, IterableDataset):
    """Windows of a Dataset as normalized, masked torch tensors.

    Parameters
    ----------
    ds, variables, dims, size, stride, min_observed, stats, states, seed, shuffle, batch_size
        As for [`PatchWindows`][sparsediff.data.patch_windows.PatchWindows].
    rank, world_size
        This process's DDP rank and the number of ranks; default from
        `torch.distributed` when initialized, else 0 and 1.
    dtype
        Dtype of the ``values`` tensors.

    Yields
    ------
    dict
        ``values`` (C, *size) float tensor, normalized, 0 at non-observed points;
        ``observed`` (C, *size) bool; ``invalid`` (C, *size) bool; ``index`` int
        (the window's global id). Each DataLoader worker yields its blocks of
        ``batch_size`` items of this rank's order.

    Raises
    ------
    InputError
        As [`PatchWindows`][sparsediff.data.patch_windows.PatchWindows].
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
        rank: int | None = None,
        world_size: int | None = None,
        dtype: torch.dtype = torch.float32,
        batch_size: int = 1,
    ) -> None:
        if rank is None or world_size is None:
            auto_rank, auto_world = _default_distributed()
            rank = auto_rank if rank is None else rank
            world_size = auto_world if world_size is None else world_size
        PatchWindows.__init__(
            self,
            ds,
            variables,
            dims,
            size,
            stride=stride,
            min_observed=min_observed,
            stats=stats,
            states=states,
            seed=seed,
            shuffle=shuffle,
            rank=rank,
            world_size=world_size,
            batch_size=batch_size,
        )
        self.dtype = dtype

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        order = self.worker_order(info.id, info.num_workers) if info else self.worker_order()
        for pos in order:
            yield self.read(self.windows[int(pos)])

    def read(self, window: Window) -> dict[str, Any]:
        """Read one window (lazily: only this window is loaded) as tensors.

        Parameters
        ----------
        window
            A window of this dataset (an item of `windows`).

        Returns
        -------
        dict
            As yielded by iteration.
        """
        item = PatchWindows.read(self, window)
        return {
            "values": torch.from_numpy(item["values"]).to(self.dtype),
            "observed": torch.from_numpy(item["observed"]),
            "invalid": torch.from_numpy(item["invalid"]),
            "index": item["index"],
        }
