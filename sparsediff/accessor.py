"""The ``.sparsediff`` accessor on xarray Datasets and DataArrays.

Registered by ``import sparsediff``::

    ds.sparsediff.masks()            # uint8 states per variable: 0 observed, 1 gap, 2 invalid
    ds.sparsediff.gap_summary()      # missing share per variable and dim
    ds.sparsediff.fill(model, members=8)
    filled.sparsediff.plot_fill("sst", time=0)
"""

from __future__ import annotations

from typing import Any

import xarray as xr

__all__ = ["SparsediffAccessor"]


@xr.register_dataset_accessor("sparsediff")
@xr.register_dataarray_accessor("sparsediff")
class SparsediffAccessor:
    """sparsediff methods on an xarray object (``obj.sparsediff``)."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def _ds(self) -> xr.Dataset:
        from sparsediff.data.selection import as_dataset

        return as_dataset(self._obj)

    def masks(self, variables: list[str] | None = None, **kw: Any) -> xr.Dataset:
        """Point states (0 observed, 1 gap, 2 invalid); see :func:`sparsediff.data.masks.states`."""
        from sparsediff.data.masks import states

        return states(self._ds(), variables, **kw)

    def gap_summary(self, variables: list[str] | None = None, **kw: Any) -> Any:
        """Missing share per variable and dim; see :func:`sparsediff.data.masks.gap_summary`."""
        from sparsediff.data.masks import gap_summary

        return gap_summary(self._ds(), variables, **kw)

    def fill(self, model: Any, **kw: Any) -> xr.Dataset:
        """Fill the gaps with a trained model; see :func:`sparsediff.fill`.

        On a Dataset of point observations, ``obs.sparsediff.fill(model, like=grid)``
        (or ``bounds=``/``resolution=``) fills that grid from them
        (:func:`sparsediff.filling.points.fill_points`)."""
        from sparsediff.filling.fill import fill

        if kw.get("like") is not None or kw.get("bounds") is not None:
            return fill(model, points=self._obj, **kw)
        return fill(self._obj, model, **kw)  # fill names an unnamed DataArray after the model

    def ensemble_mean(self) -> xr.Dataset:
        """Mean over ``member``; see :func:`sparsediff.filling.fill.ensemble_mean`."""
        from sparsediff.filling.fill import ensemble_mean

        return ensemble_mean(self._ds())

    def ensemble_std(self) -> xr.Dataset:
        """Spread over ``member``; see :func:`sparsediff.filling.fill.ensemble_std`."""
        from sparsediff.filling.fill import ensemble_std

        return ensemble_std(self._ds())

    def plot_fill(
        self,
        variable: str | None = None,
        *,
        original: xr.Dataset | None = None,
        path: str | None = None,
        **isel: int,
    ) -> Any:
        """Input / filled / spread panels; see :func:`sparsediff.plotting.plot_fill`."""
        from sparsediff.plotting import plot_fill

        return plot_fill(self._ds(), variable, original=original, path=path, **isel)
