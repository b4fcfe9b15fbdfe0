"""The EOF background of the first guess: the training record's EOFs, interpolated per frame.

A model trained with ``data.eofs: K`` carries the leading ``K`` EOFs of its
training anomalies (normalized units, unit patterns over the training grid)
and, per mode, the prior ratio ``σ²/λ_k`` (the variance the ``K`` modes leave
out, spread evenly over the points, over the mode's variance). For each frame
the coefficients are interpolated optimally from its shown points
([`sparsediff.data.eofs`][sparsediff.data.eofs] is the numpy owner of the same
arithmetic)::

    a = (Σ_shown e eᵀ + diag(σ²/λ))⁻¹ Σ_shown e x,      background = E a

and the first guess is this background plus the method's guess of the
departures from it ([`build_inputs`][sparsediff.method.inputs.build_inputs]).

**Crops see what a fill sees.** A fill's frame is the whole field; a training
crop is a window and its halo. The sums over the field's observed points that
the crop does not cover are handed in (``outside``),
so that the sums a crop adds over its own shown points make exactly the sums
over the whole field's shown points: the coefficients of a crop never see
its hidden points, and are those a fill of the same field would find.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from sparsediff.data.alignment import align_to

__all__ = ["GuessEofs", "aligned_eofs", "eof_background", "eof_sums"]


@dataclass(frozen=True)
class GuessEofs:
    """The EOFs of a first-guess background on a data grid, as numpy arrays.

    Attributes
    ----------
    basis
        ``(C, M, *grid)`` float32, normalized units: the leading ``M`` EOFs of each
        variable (unit patterns over the training grid), 0 at invalid points.
    prior
        ``(C, M)`` float32: ``σ²/λ`` per variable and mode.
    """

    basis: np.ndarray
    prior: np.ndarray


def aligned_eofs(
    ds: xr.Dataset,
    eofs: Mapping[str, xr.DataArray],
    prior: Mapping[str, Sequence[float]],
    variables: Sequence[str],
    dims: Sequence[str],
) -> GuessEofs:
    """A model's EOFs (``Model.eofs``, ``spec.eof_prior``) matched to the grid of ``ds``.

    Raises
    ------
    CompatibilityError
        Data on another grid (as for the climatology:
        [`sparsediff.data.alignment.align_to`][sparsediff.data.alignment.align_to]).
    """
    basis = [
        np.asarray(
            align_to(eofs[v], ds[v], what=f"the EOFs of {v!r}", carry=("eof",))
            .transpose("eof", *dims)
            .values,
            dtype=np.float32,
        )
        for v in variables
    ]
    return GuessEofs(np.stack(basis), np.asarray([prior[v] for v in variables], np.float32))


def eof_sums(values: Tensor, shown: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
    """``Σ e eᵀ`` and ``Σ e x`` over the shown points of each frame, in float64.

    Parameters
    ----------
    values
        ``(N, C, *S)`` (read at shown points only).
    shown
        ``(N, C, *S)`` bool.
    basis
        ``(N, C, M, *S)``: the EOFs over each frame's points.

    Returns
    -------
    gram, proj
        ``(N, C, M, M)`` and ``(N, C, M)``.
    """
    n, c, m = basis.shape[:3]
    e = basis.reshape(n, c, m, -1).double()
    w = shown.reshape(n, c, 1, -1).double()
    x = torch.where(shown, values, torch.zeros_like(values)).reshape(n, c, -1, 1).double()
    we = e * w
    return we @ e.transpose(-1, -2), (we @ x).squeeze(-1)


def eof_background(
    values: Tensor,
    shown: Tensor,
    basis: Tensor,
    prior: Tensor,
    outside: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """The EOF background of each frame, from its shown points (and the sums outside it).

    Parameters
    ----------
    values, shown, basis
        As for [`eof_sums`][eof_sums].
    prior
        ``(C, M)``: ``σ²/λ_k`` per variable and mode.
    outside
        ``(N, C, M, M)`` and ``(N, C, M)`` sums over the field's shown points
        outside the frame (``None``: the frame is the whole field).

    Returns
    -------
    torch.Tensor
        ``(N, C, *S)`` in the dtype of ``values``: ``E a`` (0 where the basis is 0).
    """
    gram, proj = eof_sums(values, shown, basis)
    if outside is not None:
        gram = gram + outside[0].to(gram)
        proj = proj + outside[1].to(proj)
    gram = gram + torch.diag_embed(prior.to(gram)).expand_as(gram)
    coef = torch.linalg.solve(gram, proj.unsqueeze(-1))  # (N, C, M, 1)
    n, c, m = basis.shape[:3]
    out = (coef.transpose(-1, -2) @ basis.reshape(n, c, m, -1).double()).squeeze(-2)
    return out.reshape(values.shape).to(values.dtype)
