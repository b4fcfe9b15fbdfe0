"""Runtime of a training run: devices, torch.distributed, seeding, LR schedule, EMA.

Randomness in training is *keyed* (see [`sparsediff.rng`][sparsediff.rng]): every random
draw is made from a generator seeded by ``(seed, stage, purpose, sample
position)``. A resumed run therefore needs no RNG state to continue bit-for-bit,
and each training sample gets the same noise whether it is processed by one
process or by one of several DDP ranks.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sparsediff.devices import resolve_device

__all__ = [
    "EMA",
    "Runtime",
    "cosine_lr",
    "setup_runtime",
]


@dataclass
class Runtime:
    """Where and how a run executes.

    Attributes
    ----------
    device
        The torch device of this rank.
    rank, world_size, local_rank
        Position in the ``torchrun`` job (0, 1, 0 when not distributed).
    distributed
        Whether a process group was initialised by [`setup_runtime`][setup_runtime].
    """

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the rank that logs and writes checkpoints)."""
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """bf16 autocast on CUDA, a no-op (fp32) on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def barrier(self) -> None:
        """Synchronise ranks (no-op when not distributed)."""
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group this runtime created."""
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
            self.distributed = False


def setup_runtime(device: str = "auto", threads: int | None = None) -> Runtime:
    """Create the runtime from the environment ``torchrun`` sets.

    With ``WORLD_SIZE > 1`` a process group is initialised: NCCL on CUDA, Gloo on
    CPU. ``device="auto"`` picks ``cuda:LOCAL_RANK`` when CUDA is available.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(resolve_device(device, auto=f"cuda:{local_rank}"))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    distributed = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        distributed = True
    elif world > 1:
        distributed = True
    return Runtime(dev, rank, world, local_rank, distributed)


def cosine_lr(step: int, *, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps then cosine decay to ``min_ratio``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers.

    Parameters
    ----------
    module
        The module to track (its current values are the initial average).
    decay
        The decay per update; the effective decay ramps up as
        ``min(decay, (1 + n) / (10 + n))`` over the first updates.
    """

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """Fold the module's current weights into the average."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in module.state_dict().items():
            s = self.shadow[k]
            if v.dtype.is_floating_point:
                s.mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                s.copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged tensors (keys as in the module's state dict)."""
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        """Restore the average and the update count."""
        for k, v in state.items():
            self.shadow[k].copy_(v)
        self.updates = updates

    @contextlib.contextmanager
    def swapped_into(self, module: torch.nn.Module) -> Iterator[None]:
        """Temporarily load the averaged weights into ``module``."""
        backup = {k: v.detach().clone() for k, v in module.state_dict().items()}
        module.load_state_dict(self.shadow)
        try:
            yield
        finally:
            module.load_state_dict(backup)
