"""Torch devices by name: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.

One place that turns a user's device string into a device torch can use, or
one clear [`ConfigError`][sparsediff.errors.ConfigError] (an unknown name such as
``"tpu"``, or ``"cuda"`` on a machine where torch sees no GPU), before any
data are read or any output is written.
"""

from __future__ import annotations

import torch

from sparsediff.errors import ConfigError

__all__ = ["resolve_device"]

_KNOWN = ("cpu", "cuda", "mps")


def resolve_device(device: object, *, auto: str = "cuda") -> str:
    """The device to run on, checked against what this machine has.

    Parameters
    ----------
    device
        ``"auto"`` (CUDA when torch sees a GPU, else CPU), ``"cpu"``,
        ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    auto
        What ``"auto"`` means when CUDA is available (``"cuda:LOCAL_RANK"``
        under ``torchrun``).

    Returns
    -------
    str
        A device string torch accepts.

    Raises
    ------
    ConfigError
        Not a string, an unknown device type, or a device this machine lacks.
    """
    if not isinstance(device, str):
        raise ConfigError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    name = device.strip().lower()
    if name == "auto":
        return auto if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in _KNOWN:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} asked for, but torch sees no CUDA GPU here (a CPU-only "
                "torch build, or no GPU/driver); use cpu or auto"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {device!r} asked for, but there are {count} CUDA GPU(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} asked for, but MPS is not available here")
    return str(dev)
