"""Steps in coordinate order: a context dim sorted for the fill, its input order restored after.

A model with context frames (``context_dim`` ``"time"``, offsets ``-1, 1``)
takes its neighbours by position. Steps stored out of order (``time`` =
March, January, May, ...) would give each step the wrong neighbours, and the
fill would be worse with nothing to show for it. [`sort_along`][sort_along] sorts the
data by the dim's coordinate and returns the positions that put the result
back in the input's order, so a shuffled input gives the same values as the
sorted one, in its own order. A coordinate that cannot be put in order
(repeated values, or values that do not compare) is refused.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
import xarray as xr

from sparsediff.errors import InputError

__all__ = ["sort_along"]


def sort_along(ds: xr.Dataset, dim: Hashable | None) -> tuple[xr.Dataset, np.ndarray | None]:
    """``ds`` sorted by the coordinate of ``dim``, and the positions that restore its order.

    Parameters
    ----------
    ds
        The data.
    dim
        The dim whose steps must be in increasing coordinate order (the
        model's context dim); ``None``, a dim ``ds`` lacks or one without an
        index coordinate: nothing to sort.

    Returns
    -------
    sorted : xarray.Dataset
        ``ds`` itself when already increasing, else ``ds`` sorted (lazily
        for dask-backed data).
    restore : numpy.ndarray or None
        ``sorted.isel({dim: restore})`` is in the input's order; ``None``
        when nothing was sorted.

    Raises
    ------
    InputError
        Repeated coordinate values (two steps at one time), or values that
        cannot be compared.
    """
    if dim is None or dim not in ds.dims or dim not in ds.indexes:
        return ds, None
    index: pd.Index = ds.indexes[dim]
    if index.is_monotonic_increasing and index.is_unique:
        return ds, None
    if not index.is_unique:
        repeated = index[index.duplicated()].unique()
        raise InputError(
            f"the {dim!r} coordinate repeats {len(repeated)} value(s) ({repeated[0]} first): "
            f"the model takes neighbouring {dim!r} steps as context and cannot order them; "
            f"drop the repeated steps (e.g. ds.drop_duplicates({str(dim)!r}))"
        )
    try:
        order = np.argsort(np.asarray(index), kind="stable")
    except TypeError as err:
        raise InputError(
            f"the {dim!r} coordinate cannot be put in order ({err}); the model takes "
            f"neighbouring {dim!r} steps as context"
        ) from None
    restore = np.empty_like(order)
    restore[order] = np.arange(order.size)
    return ds.isel({dim: order}), restore
