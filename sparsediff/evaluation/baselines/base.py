"""The interface of the classical baselines: [`Baseline`][Baseline] and what all share."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import xarray as xr

from sparsediff.data import masks
from sparsediff.data.composite import composite
from sparsediff.data.grid import is_global_longitude
from sparsediff.data.masks import INVALID, OBSERVED, invalid_mask
from sparsediff.data.selection import as_dataset, as_tuple
from sparsediff.errors import InputError

if TYPE_CHECKING:
    from sparsediff.evaluation.baselines.setting import Setting

__all__ = ["Baseline"]


def _states(da: xr.DataArray, invalid: xr.DataArray | None) -> xr.DataArray:
    """Point states of one variable (`sparsediff.data.masks.states`), dims of ``da``."""
    name = da.name if da.name is not None and da.name not in da.coords else "data"
    return masks.states(da.to_dataset(name=name), invalid=invalid)[name]


class Baseline:
    """Interface of the gap-filling baselines.

    Subclasses set `name` and implement `_fill_block`; `fill`
    does the bookkeeping (dims, masks, copy-back of observed points, NaN at
    invalid points) the same way for all of them.
    """

    name: ClassVar[str] = ""
    """Registry name of the baseline."""

    needs: ClassVar[frozenset[str]] = frozenset()
    """What an evaluation must offer for it to run (words of
    [`NEEDS`][sparsediff.evaluation.baselines.setting.NEEDS], e.g. ``"time"``)."""

    time_dim: Hashable | None = None

    @property
    def needs_time(self) -> bool:
        """This instance pools a time dim (by default: when the class needs one)."""
        return "time" in self.needs

    @classmethod
    def for_evaluation(cls, setting: Setting, notes: list[str]) -> Baseline | None:
        """The instance `sparsediff.evaluate` runs in ``setting`` (``None``: skip it).

        The default is the class with its default options, given the
        evaluation's ``time_dim`` when it needs one. A subclass with other
        choices (a seed, a fallback without a time dim) overrides this and
        says what it chose in ``notes``.

        Parameters
        ----------
        setting
            What the evaluation offers (its needs are met).
        notes
            The evaluation's notes (``table.attrs["notes"]``), to append to.

        Returns
        -------
        Baseline or None
        """
        if "time" in cls.needs:
            return cls(time_dim=setting.time_dim)  # type: ignore[call-arg]
        return cls()

    def fill(
        self,
        data: xr.DataArray | xr.Dataset,
        *,
        dims: Sequence[Hashable],
        invalid: xr.DataArray | str | None = None,
    ) -> xr.DataArray | xr.Dataset:
        """Fill the gaps of ``data``.

        Parameters
        ----------
        data
            A DataArray, or a Dataset whose numeric variables that hold all
            of ``dims`` are filled (the others are returned unchanged).
        dims
            The 2 or 3 spatial dims.
        invalid
            Points never to fill: a boolean DataArray (``True`` = invalid; a
            numeric one counts non-zero as invalid) that broadcasts against
            the data, or (for a Dataset) the name of such a variable.

        Returns
        -------
        xarray.DataArray or xarray.Dataset
            Same dims, coords and attrs as ``data``: observed points
            bit-identical, gaps filled, invalid points NaN. Integer data come
            back as ``float64``.

        Raises
        ------
        InputError
            Unknown or repeated dims, a time dim among the spatial dims, a
            missing time dim for a time-based baseline, a non-numeric
            variable, or an invalid mask that does not fit the data.
        """
        self._start()
        if isinstance(data, xr.Dataset):
            inv = invalid_mask(data, invalid)
            spatial = as_tuple(dims)
            names = [
                name
                for name, var in data.data_vars.items()
                if not (isinstance(invalid, str) and name == invalid)
                and all(d in var.dims for d in spatial)
                and np.issubdtype(var.dtype, np.number)
                and var.dtype != np.bool_
            ]
            if not names:
                raise InputError(
                    f"no numeric variable of the dataset has all of the dims {spatial}; "
                    f"dims: {', '.join(f'{d}={n}' for d, n in data.sizes.items())}"
                )
            out = data.copy()
            for name in names:
                out[name] = self._fill_da(data[name], spatial, inv)
            return out
        if not isinstance(data, xr.DataArray):
            raise InputError(f"expected an xarray DataArray or Dataset, got {type(data).__name__}")
        if isinstance(invalid, str):
            raise InputError("invalid given by name needs a Dataset; pass the mask as a DataArray")
        inv = None if invalid is None else invalid_mask(as_dataset(data), invalid)
        return self._fill_da(data, as_tuple(dims), inv)

    # ---------------------------------------------------------------- internals

    def _start(self) -> None:
        """Called at the start of each `fill`: reset what a fill records (``*_`` attributes)."""

    def _check_dims(self, da: xr.DataArray, dims: tuple[Hashable, ...]) -> None:
        what = f"variable {da.name!r}" if da.name is not None else "the data"
        if len(dims) not in (2, 3) or len(set(dims)) != len(dims):
            raise InputError(f"dims must be 2 or 3 distinct spatial dims, got {dims}")
        for d in dims:
            if d not in da.dims:
                raise InputError(
                    f"dim {d!r} is not in {what} (dims: {', '.join(map(str, da.dims))})"
                )
        if self.time_dim is not None and self.time_dim in dims:
            raise InputError(
                f"time dim {self.time_dim!r} cannot also be a spatial dim of baseline {self.name!r}"
            )
        if self.needs_time and self.time_dim not in da.dims:
            raise InputError(
                f"baseline {self.name!r} needs the time dim {self.time_dim!r}, which is not in "
                f"{what} (dims: {', '.join(map(str, da.dims))})"
            )

    def _fill_da(
        self, da: xr.DataArray, dims: tuple[Hashable, ...], inv: xr.DataArray | None
    ) -> xr.DataArray:
        self._check_dims(da, dims)
        if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.complexfloating):
            raise InputError(f"variable {da.name!r} has dtype {da.dtype}; it must be real numeric")
        if inv is not None:
            bad = [d for d in inv.dims if d not in da.dims or inv.sizes[d] != da.sizes[d]]
            if bad:
                raise InputError(
                    f"invalid mask dims {dict(inv.sizes)} do not fit the data {dict(da.sizes)} "
                    f"(dim {bad[0]!r})"
                )
            inv = inv.drop_vars(list(inv.coords))
        has_time = self.time_dim is not None and self.time_dim in da.dims
        time = (self.time_dim,) if has_time else ()
        batch = tuple(d for d in da.dims if d not in dims and d not in time)
        order = (*batch, *time, *dims)
        src = da.transpose(*order)
        original = np.asarray(src.values)
        state = np.asarray(_states(src, inv).values)
        observed = state == OBSERVED
        values = np.where(observed, original, np.nan).astype(np.float64)
        spatial_shape = original.shape[len(batch) + len(time) :]
        nt = original.shape[len(batch)] if has_time else 1
        nb = int(np.prod(original.shape[: len(batch)], dtype=np.int64))
        periodic = tuple(d in da.coords and is_global_longitude(da.coords[d]) for d in dims)
        blocks_v = values.reshape(nb, nt, *spatial_shape)
        blocks_o = observed.reshape(nb, nt, *spatial_shape)
        blocks_a = (state != INVALID).reshape(nb, nt, *spatial_shape)
        filled = np.empty_like(blocks_v)
        for b in range(nb):
            filled[b] = self._fill_block(blocks_v[b], blocks_o[b], blocks_a[b], periodic)
        out_dtype = original.dtype if np.issubdtype(original.dtype, np.floating) else np.float64
        result = composite(filled.reshape(original.shape), original, state, dtype=out_dtype)
        return src.copy(data=result).transpose(*da.dims)

    def _fill_block(
        self,
        values: np.ndarray,
        observed: np.ndarray,
        active: np.ndarray,
        periodic: tuple[bool, ...],
    ) -> np.ndarray:
        """Fill one block ``(time, *spatial)`` (NaN at non-observed points on input)."""
        raise NotImplementedError
