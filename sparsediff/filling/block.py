"""The tiled fill of one block of data: whole spatial domain, a run of batch positions.

A block is a numpy array ``(C, B, *spatial)`` (variables first, then the
flattened batch positions — times, levels, members of the input — then the 2 or
3 spatial dims), with, for a model that uses context, the neighbouring frames
of every position. For each position the network inputs (shown values, masks,
the first guess over the **whole** field, context) are built once; the spatial
domain is then tiled with one global plan, so a block's result does not
depend on how the batch dims were chunked. Observed points are copied from the
input unchanged (bit for bit) and invalid points are NaN.

Cost: windows without a gap point are not computed (no gap point gets a
contribution from them, so the fill is the same up to the float rounding of
other batches; with an explicit ``batch_size`` only calls without one are
skipped, and the bytes are those of a fill that skips nothing). The windows of
one position go to the model in calls of [`rows_per_call`][rows_per_call] rows by
default (all of them when memory allows), under `torch.inference_mode`
unless guidance needs gradients.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from sparsediff.data.composite import composite
from sparsediff.data.masks import GAP, INVALID, OBSERVED
from sparsediff.data.stats import denormalize_array, normalize_array
from sparsediff.data.tiling import Accumulator, Tile, TilePlan, plan_tiles
from sparsediff.filling.windows import FillOptions
from sparsediff.method.base import Method
from sparsediff.method.eof_guess import GuessEofs
from sparsediff.method.inputs import Frames
from sparsediff.model import Model
from sparsediff.progress import disabled

__all__ = ["available_memory", "fill_block", "row_bytes", "rows_per_call", "tile_plan_for"]

#: Share of the available memory the activations of one model call may take.
MEMORY_SHARE = 0.25
#: Most rows per model call (beyond this a CPU gains nothing and a GPU little).
MAX_ROWS = 1024


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


def available_memory(device: str | torch.device) -> int:
    """Bytes free for a model call: free GPU memory, or ``MemAvailable`` of the host.

    Falls back to 2 GiB where the host does not say (no ``/proc/meminfo``).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2 * 1024**3


def row_bytes(model: Model, window: Sequence[int], device: str | torch.device = "cpu") -> int:
    """Bytes of activations one row (window x member) needs in the largest network call.

    Measured on a one-row probe (a 1-step completion of a zero window): the sum
    of the outputs of every module during the network call with the most, an
    upper bound on what is alive at once under `torch.inference_mode`.
    """
    from sparsediff.method.options import FillOptions

    method = model.method
    totals: list[int] = []
    current = [0]

    def count(_module: torch.nn.Module, _args: object, out: object) -> None:
        if isinstance(out, torch.Tensor):
            current[0] += out.numel() * out.element_size()

    def start(_module: torch.nn.Module, _args: object) -> None:
        current[0] = 0

    def stop(_module: torch.nn.Module, _args: object, _out: object) -> None:
        totals.append(current[0])

    handles = []
    for net in method.nets.values():
        handles.append(net.register_forward_pre_hook(start))
        handles += [m.register_forward_hook(count) for m in net.modules()]
        handles.append(net.register_forward_hook(stop))
    if hasattr(method, "autoencoder"):  # decode() is not the module's forward
        ae = method.autoencoder
        handles.append(ae.decoder.register_forward_pre_hook(start))
        handles.append(ae.decoder.register_forward_hook(stop))
    probe = torch.zeros((1, method.n_inputs, *window), device=device)
    try:
        with torch.inference_mode():
            method.complete_parts(probe, [(0,)], FillOptions(steps=1, batch_size=1))
    finally:
        for h in handles:
            h.remove()
    inputs = probe.numel() * probe.element_size()
    return max([*totals, 0]) + 4 * inputs


def rows_per_call(
    model: Model,
    window: Sequence[int],
    device: str | torch.device = "cpu",
) -> int:
    """Rows (windows x members) per model call chosen from the available memory.

    ``MEMORY_SHARE`` of [`available_memory`][available_memory] over [`row_bytes`][row_bytes],
    rounded down to a power of two (so that small changes of free memory do
    not change the batches), at most ``MAX_ROWS``.
    Results change with the rows per call by float rounding only (and not at
    all where every call has 16 rows or more on the CPUs measured).
    """
    budget = MEMORY_SHARE * available_memory(device)
    rows = max(1, int(budget // max(1, row_bytes(model, window, device))))
    return min(MAX_ROWS, 2 ** int(math.log2(rows)))


def _normalized(model: Model, data: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``(C, ...)`` values normalized with the model's stats, 0 where not observed."""
    out = np.empty(data.shape, dtype=np.float32)
    for c, var in enumerate(model.variables):
        with np.errstate(invalid="ignore", divide="ignore"):
            out[c] = np.where(observed[c], normalize_array(data[c], model.stats[var]), 0.0)
    return out


def _calls(plan: TilePlan, gap: np.ndarray, per_call: int, regroup: bool) -> list[list[Tile]]:
    """The tiles of one position to compute, in calls of at most ``per_call`` windows.

    ``gap``: ``(C, *spatial)`` bool. A tile without a gap point is never
    needed (no gap point gets a contribution from it). ``regroup``: drop such
    tiles, then group the rest; otherwise group every tile in plan order and
    drop the calls without a gap point only, so that the calls (and their
    float rounding) are those of a fill that skips nothing.
    """
    any_gap = gap.any(axis=0)
    needed = [plan.extract(any_gap, t).any() for t in plan.tiles]
    if regroup:
        tiles = [t for t, n in zip(plan.tiles, needed, strict=True) if n]
        return [tiles[s : s + per_call] for s in range(0, len(tiles), per_call)]
    return [
        plan.tiles[s : s + per_call]
        for s in range(0, len(plan.tiles), per_call)
        if any(needed[s : s + per_call])
    ]


def _position_inputs(
    method: Method,
    norm: np.ndarray,
    observed: np.ndarray,
    active: np.ndarray,
    ctx: Sequence[tuple[np.ndarray, np.ndarray]],
    b: int,
    wrap: tuple[bool, ...],
    dev: torch.device,
    eofs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> np.ndarray:
    """Network inputs of the whole field at batch position ``b`` (first guess once).

    ``eofs``: the EOF basis ``(1, C, M, *S)`` and prior ratios on ``dev``, for a
    model with an EOF background (the whole field: nothing outside the frame).
    """

    def frame(arrays: list[np.ndarray]) -> torch.Tensor | None:
        return torch.from_numpy(np.stack(arrays)[None]).to(dev) if arrays else None

    frames = Frames(
        values=torch.from_numpy(norm[:, b][None]).to(dev),
        shown=torch.from_numpy(observed[:, b][None]).to(dev),
        active=torch.from_numpy(active[:, b][None]).to(dev),
        context=frame([v[:, b] for v, _ in ctx]),
        context_shown=frame([o[:, b] for _, o in ctx]),
        basis=None if eofs is None else eofs[0],
        eof_prior=None if eofs is None else eofs[1],
    )
    return method.inputs(frames, periodic=wrap)[0].cpu().numpy()


def _eof_tensors(
    eofs: GuessEofs | None, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The EOF basis ``(1, C, M, *S)`` and prior ratios on ``dev`` (``None`` without EOFs)."""
    if eofs is None:
        return None
    return torch.from_numpy(eofs.basis[None]).to(dev), torch.from_numpy(eofs.prior).to(dev)


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
    eofs: GuessEofs | None = None,
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
    eofs
        The model's EOFs on this grid, for its first guess's EOF background
        ([`sparsediff.method.eof_guess`][sparsediff.method.eof_guess]).

    Returns
    -------
    numpy.ndarray
        ``(K, C, B, *spatial)`` with K = ``opts.members``, dtype of ``data``.
    """
    n_batch, spatial = data.shape[1], data.shape[2:]
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
    rows = opts.batch_size or rows_per_call(model, plan.window, dev)
    per_call = max(1, rows // opts.members)  # the members of a window go together
    regroup = opts.batch_size is None  # an explicit batch size keeps its old calls
    todo = [_calls(plan, state[:, b] == GAP, per_call, regroup) for b in range(n_batch)]
    n_windows = sum(len(tiles) for calls in todo for tiles in calls)
    bar = tqdm(
        total=n_windows * opts.members, desc="tiles", disable=disabled(progress), leave=False
    )
    wrap = tuple(plan.periodic)
    # Batches never mix batch positions: the windows of one position (time step,
    # level, ...) are always grouped the same way, so a block's numbers do not
    # depend on how the batch dims were chunked. Guidance needs gradients.
    eof_tensors = _eof_tensors(eofs, dev)  # moved to the device once for every position
    with torch.inference_mode(not opts.guidance):
        for b in range(n_batch):
            if not todo[b]:
                continue  # nothing to fill at this position
            inputs = _position_inputs(
                method, norm, observed, active, ctx, b, wrap, dev, eof_tensors
            )
            acc = [(centre[(k, b)], spread[(k, b)]) for k in range(opts.members)]
            for tiles in todo[b]:
                _complete_call(method, plan, inputs, tiles, int(batch_ids[b]), opts, dev, acc)
                bar.update(len(tiles) * opts.members)
    bar.close()
    result = np.full((opts.members, *data.shape), np.nan, dtype=data.dtype)
    for (k, b), a in centre.items():
        if todo[b]:  # else observed and invalid points only: the composite sets them all
            result[k, :, b] = _physical(model, a.result() + spread[(k, b)].result(), data.dtype)
    return composite(result, data, state)


def _complete_call(
    method: Method,
    plan: TilePlan,
    inputs: np.ndarray,
    tiles: list[Tile],
    batch_id: int,
    opts: FillOptions,
    dev: torch.device,
    acc: list[tuple[Accumulator, Accumulator]],
) -> None:
    """One model call: complete ``tiles`` of one position for every member.

    The windows are cut out of the position's network ``inputs``; ``acc``
    holds, per member, the (centre, spread) accumulators the results are
    added to.
    """
    windows = np.stack([plan.extract(inputs, t) for t in tiles])
    chunk = [(k, t) for t in tiles for k in range(opts.members)]
    keys = [(batch_id, *t.origin, k) for k, t in chunk]
    mid, pert = method.complete_parts(
        torch.from_numpy(np.ascontiguousarray(windows)).to(dev),
        keys,
        opts,
        repeats=opts.members,
    )
    for (k, t), c, p in zip(chunk, mid.cpu().numpy(), pert.cpu().numpy(), strict=True):
        acc[k][0].add(t, c)
        acc[k][1].add(t, p)


def _physical(model: Model, blended: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``(C, *spatial)`` normalized values back in physical units, as ``dtype``."""
    out = np.empty(blended.shape, dtype=dtype)
    for c, var in enumerate(model.variables):
        out[c] = denormalize_array(blended[c].astype(np.float64), model.stats[var]).astype(dtype)
    return out
