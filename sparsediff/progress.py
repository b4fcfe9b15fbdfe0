"""Progress bars: on by default where a person is watching, off in batch jobs.

Every long-running public function (fill, evaluate, training, calibration)
takes ``progress: bool | None``. ``None`` (the default) means *auto*: a bar
in a notebook (tqdm's widget) or when standard error is a terminal, nothing
in a batch job or when the output goes to a file. ``True`` always shows it,
``False`` never.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

__all__ = ["bar", "disabled"]


def disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` argument for ``progress`` (``None``: auto, off when not interactive)."""
    return None if progress is None else not progress


def bar(iterable: Iterable[Any] | None = None, *, progress: bool | None, **kw: Any) -> Any:
    """A tqdm bar (``tqdm.auto``: a widget in notebooks) shown as ``progress`` says."""
    return tqdm(iterable, disable=disabled(progress), **kw)
