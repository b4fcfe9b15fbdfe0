"""The last step of every fill: observed points kept exactly, invalid points NaN.

Whatever estimated the gaps (the model's tiles, a classical baseline), the
result it returns obeys DESIGN §1: an ``observed`` point holds the input value
bit for bit, an ``invalid`` point is NaN, and only ``gap`` points hold the
estimate. [`composite`][composite] is the one place that does this on numpy arrays of
point states ([`sparsediff.data.masks`][sparsediff.data.masks]).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sparsediff.data.masks import INVALID, OBSERVED

__all__ = ["composite"]


def composite(
    filled: np.ndarray,
    original: np.ndarray,
    state: np.ndarray,
    *,
    dtype: npt.DTypeLike | None = None,
) -> np.ndarray:
    """Put the observed values back into a fill and NaN at invalid points.

    Parameters
    ----------
    filled
        The estimate at every point; may have leading dims (e.g. members)
        that ``original`` and ``state`` broadcast over.
    original
        The input values, the shape of ``state``.
    state
        ``uint8`` point states (``OBSERVED``, ``GAP``, ``INVALID``).
    dtype
        dtype of the result (default: ``filled``'s, which is then modified in
        place and returned).

    Returns
    -------
    numpy.ndarray
        ``filled`` (cast to ``dtype``) with ``original`` at observed points and
        NaN at invalid points.
    """
    out = filled if dtype is None else filled.astype(dtype)
    np.copyto(
        out,
        np.broadcast_to(original, out.shape),
        where=np.broadcast_to(state == OBSERVED, out.shape),
        casting="unsafe",
    )
    out[np.broadcast_to(state == INVALID, out.shape)] = np.nan
    return out
