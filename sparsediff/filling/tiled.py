"""The tiled fill of one block of data: whole spatial domain, a run of batch positions.

A block is a numpy array ``(C, B, *spatial)`` (variables first, then the
flattened batch positions — times, levels, members of the input — then the 2 or
3 spatial dims), with, for a model that uses context, the neighbouring frames
of every position. For each position the network inputs (shown values, masks,
the first guess over the **whole** field, context) are built once; the spatial
domain is then tiled with one global plan, so a block's result does not
depend on how the batch dims were chunked. Observed points are copied from the
input unchanged (bit for bit) and invalid points are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from sparsediff.data.composite import composite
from sparsediff.data.masks import INVALID, OBSERVED
from sparsediff.data.stats import denormalize_array, normalize_array
from sparsediff.data.tiling import TilePlan, plan_tiles
from sparsediff.filling.sampling import FillOptions
from sparsediff.method.inputs import Frames
from sparsediff.model import Model
from sparsediff.progress import disabled

__all__ = ["fill_block", "tile_plan_for"]


def tile_plan_for(
    model: Model,
    spatial_shape: Sequence[int],
    *,
    periodic: Sequence[bool] | None = None,
    overlap: Sequence[int] | int | None = None,
) -> TilePlan:
    """The tile plan a model uses over a spatial domain (window = training window)."""
    window = tuple(int(w) for w in model.spec.window)
    return plan_tiles(tuple(spatial_shape), window, overlap=overlap, periodic=periodic)


def _normalized(model: Model, data: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``(C, ...)`` values normalized with the model's stats, 0 where not observed."""
    out = np.empty(data.shape, dtype=np.float32)
    for c, var in enumerate(model.variables):
        with np.errstate(invalid="ignore", divide="ignore"):
            out[c] = np.where(observed[c], normalize_array(data[c], model.stats[var]), 0.0)
    return out


def fill_block(
    model: Model,
    data: np.ndarray,
    state: np.ndarray,
    batch_ids: Sequence[int],
    opts: FillOptions,
    *,
    context: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    periodic: Sequence[bool] | None = None,
    overlap: Sequence[int] | int | None = None,
    device: str | torch.device = "cpu",
    progress: bool | None = False,
) -> np.ndarray:
    """Fill the gaps of a block.

    Parameters
    ----------
    model
        The trained model.
    data
        ``(C, B, *spatial)`` raw values (physical units, anomalies for a
        climatology model; NaN at gaps).
    state
        Same shape, uint8 point states (0 observed, 1 gap, 2 invalid).
    batch_ids
        Global ids of the B batch positions (keys of the per-window noise).
    opts
        Sampling options.
    context
        One ``(values, observed)`` pair per context offset of the model, each
        ``(C, B, *spatial)``: the neighbouring frame of every position (all
        unobserved where there is none).
    periodic, overlap
        Tiling options per spatial dim.
    device
        Torch device for the model calls.
    progress
        Show a progress bar over model calls (``None``: when interactive,
        see [`sparsediff.progress`][sparsediff.progress]).

    Returns
    -------
    numpy.ndarray
        ``(K, C, B, *spatial)`` with K = ``opts.members``, dtype of ``data``.
    """
    _n_vars, n_batch = data.shape[:2]
    spatial = data.shape[2:]
    method = model.method
    method.check_ready()
    n_ctx = model.spec.n_context
    if len(context) != n_ctx:
        raise ValueError(f"the model takes {n_ctx} context frames, got {len(context)}")
    plan = tile_plan_for(model, spatial, periodic=periodic, overlap=overlap)
    observed = state == OBSERVED
    active = state != INVALID
    norm = _normalized(model, data, observed)
    ctx = [(_normalized(model, v, o & active), o & active) for v, o in context]
    # the deterministic centre of the members blends as a weighted mean; their random
    # perturbation (independent between tiles) blends keeping its variance, so the
    # ensemble spread has no low bands where tiles overlap
    centre = {(k, b): plan.accumulator() for k in range(opts.members) for b in range(n_batch)}
    spread = {
        (k, b): plan.accumulator(variance_preserving=True)
        for k in range(opts.members)
        for b in range(n_batch)
    }
    dev = torch.device(device)
    per_position = len(plan.tiles) * opts.members
    bar = tqdm(total=n_batch * per_position, desc="tiles", disable=disabled(progress), leave=False)
    wrap = tuple(plan.periodic)
    # Batches never mix batch positions: the windows of one position (time step,
    # level, ...) are always grouped the same way, so a block's numbers do not
    # depend on how the batch dims were chunked.
    for b in range(n_batch):
        frames = Frames(
            values=torch.from_numpy(norm[:, b][None]).to(dev),
            shown=torch.from_numpy(observed[:, b][None]).to(dev),
            active=torch.from_numpy(active[:, b][None]).to(dev),
            context=(
                torch.from_numpy(np.stack([v[:, b] for v, _ in ctx])[None]).to(dev)
                if n_ctx
                else None
            ),
            context_shown=(
                torch.from_numpy(np.stack([o[:, b] for _, o in ctx])[None]).to(dev)
                if n_ctx
                else None
            ),
        )
        inputs = method.inputs(frames, periodic=wrap)[0].cpu().numpy()
        # the members of a tile go together (they share the tile's inputs and regression)
        per_call = max(1, opts.batch_size // opts.members)
        for s in range(0, len(plan.tiles), per_call):
            tiles = plan.tiles[s : s + per_call]
            windows = np.stack([plan.extract(inputs, t) for t in tiles])
            chunk = [(k, t) for t in tiles for k in range(opts.members)]
            keys = [(int(batch_ids[b]), *t.origin, k) for k, t in chunk]
            mid, pert = method.complete_parts(
                torch.from_numpy(np.ascontiguousarray(windows)).to(dev),
                keys,
                opts,
                repeats=opts.members,
            )
            for (k, t), c, p in zip(chunk, mid.cpu().numpy(), pert.cpu().numpy(), strict=True):
                centre[(k, b)].add(t, c)
                spread[(k, b)].add(t, p)
            bar.update(len(chunk))
    bar.close()
    result = np.empty((opts.members, *data.shape), dtype=data.dtype)
    for (k, b), a in centre.items():
        blended = a.result() + spread[(k, b)].result()  # (C, *spatial), normalized
        for c, var in enumerate(model.variables):
            phys = denormalize_array(blended[c].astype(np.float64), model.stats[var])
            result[k, c, b] = phys.astype(data.dtype)
    return composite(result, data, state)
