"""The ``.sparsediff`` accessor on xarray Datasets and DataArrays.

Registered by ``import sparsediff``::

    ds.sparsediff.masks()            # uint8 states per variable: 0 observed, 1 gap, 2 invalid
    ds.sparsediff.gap_summary()      # missing share per variable (land counted as invalid)
    ds.sparsediff.fill(model, members=8)
    filled.sparsediff.plot_fill("sst", time=0)

Each method takes the arguments of the function it calls, with the same names,
types and defaults. ``masks`` and ``gap_summary`` apply the rule of training
and fill by default: a point missing at every step of the time dim (when there
is one) is invalid, not a gap; with ``model=`` the model's own rule (its
training mask of the grid).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Unpack

import xarray as xr

from sparsediff.data.axes import time_dim

if TYPE_CHECKING:
    import pandas as pd

    from sparsediff.data.masks import InvalidSpec
    from sparsediff.method.options import FillKeywords, FillOptions
    from sparsediff.model import Model

__all__ = ["SparsediffAccessor", "time_dim"]

Along = Hashable | Iterable[Hashable] | None


@xr.register_dataset_accessor("sparsediff")
@xr.register_dataarray_accessor("sparsediff")
class SparsediffAccessor:
    """sparsediff methods on an xarray object (``obj.sparsediff``)."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def _ds(self) -> xr.Dataset:
        from sparsediff.data.selection import as_dataset

        return as_dataset(self._obj)

    def _rule(
        self,
        variables: str | Iterable[str] | None,
        model: Model | str | os.PathLike[str] | None,
        invalid: InvalidSpec,
        invalid_along: Along | Literal["auto"],
    ) -> tuple[xr.Dataset, Any, Any, Any]:
        """Data, variables, invalid spec and ``invalid_along`` of the fill's rule."""
        ds = self._ds()
        if model is not None:
            from sparsediff.filling.invalid import resolve_invalid
            from sparsediff.model import as_model

            model = as_model(model)
            auto = isinstance(invalid_along, str) and invalid_along == "auto"
            rule = resolve_invalid(
                ds,
                model,
                invalid=invalid,
                invalid_below="model",
                invalid_along="model" if auto else invalid_along,
            )
            return ds, variables or list(model.variables), rule.invalid, rule.along
        if isinstance(invalid_along, str) and invalid_along == "auto":
            along = time_dim(ds)  # as in training and fill: only with more than one step
            invalid_along = along if along is not None and ds.sizes[along] > 1 else None
        return ds, variables, invalid, invalid_along

    def masks(
        self,
        variables: str | Iterable[str] | None = None,
        *,
        invalid: InvalidSpec = None,
        invalid_along: Along | Literal["auto"] = "auto",
        model: Model | str | os.PathLike[str] | None = None,
    ) -> xr.Dataset:
        """Point states (0 observed, 1 gap, 2 invalid).

        Parameters as for [`states`][sparsediff.data.masks.states], except
        ``invalid_along="auto"`` (default): the time dim when there is one
        with more than one step ([`time_dim`][sparsediff.accessor.time_dim]);
        and ``model``: use that model's invalid rule, as ``sparsediff.fill``
        does.
        """
        from sparsediff.data.masks import states

        ds, names, inv, along = self._rule(variables, model, invalid, invalid_along)
        return states(ds, names, invalid=inv, invalid_along=along)

    def gap_summary(
        self,
        variables: str | Iterable[str] | None = None,
        *,
        invalid: InvalidSpec = None,
        invalid_along: Along | Literal["auto"] = "auto",
        by: Hashable | None = None,
        model: Model | str | os.PathLike[str] | None = None,
    ) -> pd.DataFrame:
        """Points observed, gap and invalid per variable, and the gap share.

        Parameters as for [`gap_summary`][sparsediff.data.masks.gap_summary],
        with the defaults of [`masks`][sparsediff.accessor.SparsediffAccessor.masks]:
        land (missing at every time step) counts as invalid, not as gap.
        """
        from sparsediff.data.masks import gap_summary

        ds, names, inv, along = self._rule(variables, model, invalid, invalid_along)
        return gap_summary(ds, names, invalid=inv, invalid_along=along, by=by)

    def fill(
        self,
        model: Model | str | os.PathLike[str] | None = None,
        *,
        options: FillOptions | None = None,
        device: str = "auto",
        invalid: Any = None,
        invalid_below: float | str | None = "model",
        invalid_along: str | Sequence[str] | None = "model",
        check_values: bool = True,
        min_observed_share: float | None = None,
        overlap: Sequence[int] | int | None = None,
        periodic: Sequence[bool] | None = None,
        progress: bool | None = None,
        persist: bool | None = None,
        adapt: Any = None,
        calibrate: str = "auto",
        points: Any = None,
        like: Any = None,
        bounds: Any = None,
        resolution: Any = None,
        **keywords: Unpack[FillKeywords],
    ) -> xr.Dataset:
        """Fill the gaps with a trained model; see [`fill`][sparsediff.filling.fill.fill].

        On a Dataset of point observations, ``obs.sparsediff.fill(model, like=grid)``
        (or ``bounds=`` and ``resolution=``) fills that grid from them
        ([`fill_points`][sparsediff.filling.points.fill_points]).
        """
        from sparsediff.filling.fill import fill

        from_points = points is None and (like is not None or bounds is not None)
        return fill(  # fill names an unnamed DataArray after the model
            model if from_points else self._obj,
            None if from_points else model,
            points=self._obj if from_points else points,
            options=options,
            device=device,
            invalid=invalid,
            invalid_below=invalid_below,
            invalid_along=invalid_along,
            check_values=check_values,
            min_observed_share=min_observed_share,
            overlap=overlap,
            periodic=periodic,
            progress=progress,
            persist=persist,
            adapt=adapt,
            calibrate=calibrate,
            like=like,
            bounds=bounds,
            resolution=resolution,
            **keywords,
        )

    def ensemble_mean(self) -> xr.Dataset:
        """Mean over ``member``; see [`ensemble_mean`][sparsediff.filling.fill.ensemble_mean]."""
        from sparsediff.filling.fill import ensemble_mean

        return ensemble_mean(self._ds())

    def ensemble_std(self) -> xr.Dataset:
        """Spread over ``member``; see [`ensemble_std`][sparsediff.filling.fill.ensemble_std]."""
        from sparsediff.filling.fill import ensemble_std

        return ensemble_std(self._ds())

    def plot_fill(
        self,
        variable: str | None = None,
        *,
        original: xr.Dataset | None = None,
        truth: xr.Dataset | None = None,
        hidden: xr.DataArray | xr.Dataset | None = None,
        compare: Mapping[str, xr.Dataset | xr.DataArray] | None = None,
        path: str | os.PathLike[str] | None = None,
        **isel: int,
    ) -> Any:
        """Input / fill / error / spread panels.

        See [`plot_fill`][sparsediff.plotting.plot_fill].
        """
        from sparsediff.plotting import plot_fill

        return plot_fill(
            self._ds(),
            variable,
            original=original,
            truth=truth,
            hidden=hidden,
            compare=compare,
            path=path,
            **isel,
        )
