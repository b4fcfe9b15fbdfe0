"""Stage 3 on tensors: complete a batch of windows with a trained model.

Each window carries a *key* (integers: batch position, tile origin, member);
all of its randomness comes from a generator seeded by that key alone, so a
window gets the same numbers whatever batch it is computed in, whatever the
chunking, worker or resumption. The method object
([`sparsediff.model.Model.method`][sparsediff.model.Model.method]) does the
work; this module keeps the window-level entry point and re-exports
[`FillOptions`][FillOptions].
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from sparsediff.method.options import FillOptions
from sparsediff.model import Model

__all__ = ["FillOptions", "fill_windows"]


def fill_windows(
    model: Model,
    inputs: Tensor,
    keys: Sequence[tuple[int, ...]],
    opts: FillOptions,
) -> Tensor:
    """Sample one completion of each window.

    Parameters
    ----------
    model
        A trained model.
    inputs
        ``(N, n_inputs, *window)`` network inputs cut from
        [`sparsediff.method.Method.inputs`][sparsediff.method.Method.inputs] of whole fields.
    keys
        One integer key per window (all its randomness comes from ``(seed, *keys[i])``).
    opts
        Sampling options.

    Returns
    -------
    Tensor
        ``(N, C, *window)`` normalized completions (every point predicted; the
        caller copies observed points back).
    """
    return model.method.complete(inputs, keys, opts)
