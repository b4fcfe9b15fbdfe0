"""Fillers: what `evaluate` compares, behind one interface.

A *filler* is anything that fills held-out gaps: a trained model
([`ModelFiller`][ModelFiller], over [`sparsediff.fill`][sparsediff.filling.fill.fill]) or a
classical baseline
([`BaselineFiller`][BaselineFiller], over [`Baseline`][sparsediff.evaluation.baselines.Baseline]).
Every filler has a ``name`` (its row in the table), a ``kind`` (``"model"``
or ``"baseline"``) and one method,

``fill(gappy, *, variables, dims, invalid, region) -> xarray.Dataset``

which returns, on the ``region`` only, every one of ``variables`` with a
``member`` dim (size 1 for a deterministic fill): observed points
bit-identical to ``gappy``, invalid points NaN, gaps filled. ``evaluate`` runs
all fillers in one loop and scores them the same way, so comparing a further
baseline or a model variant (other sampler, guidance, ...) is one class.

A filler sees the whole gappy record and decides itself what it uses of it:
a baseline takes its time mean and EOFs from all of it, a model fills the
region, widened by its context reach ([`context_region`][context_region]).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Unpack

import xarray as xr

from sparsediff.errors import InputError
from sparsediff.method.options import FillKeywords, FillOptions

if TYPE_CHECKING:
    from sparsediff.evaluation.baselines import Baseline
    from sparsediff.model import Model

__all__ = [
    "MODEL_NAME",
    "BaselineFiller",
    "Filler",
    "ModelFiller",
    "check_filled",
    "context_region",
    "model_fillers_of",
    "single_member",
]

Kind = Literal["model", "baseline"]


class Filler(ABC):
    """Interface of everything an evaluation compares.

    Subclasses set [`name`][name] and [`kind`][kind] and implement [`fill`][fill];
    a filler that only works on some variables or dims (a trained model)
    also sets [`variables`][variables] and [`dims`][dims] and refuses data it cannot
    fill in [`check`][check].
    """

    name: str = ""
    """Name of the filler's rows in the table."""

    kind: ClassVar[Kind] = "baseline"
    """``"model"`` or ``"baseline"`` (the table's ``kind`` column)."""

    variables: tuple[str, ...] | None = None
    """The variables the filler fills, when it is tied to some (``None``: any)."""

    dims: tuple[Hashable, ...] | None = None
    """The spatial dims the filler works over, when it is tied to some (``None``: any)."""

    def check(self, data: xr.Dataset) -> None:  # noqa: B027 (optional hook)
        """Refuse, before any compute, data this filler cannot fill (default: accept).

        Parameters
        ----------
        data
            The evaluation's data.
        """

    @abstractmethod
    def fill(
        self,
        gappy: xr.Dataset,
        *,
        variables: Sequence[str],
        dims: tuple[Hashable, ...],
        invalid: Mapping[str, xr.DataArray],
        region: Mapping[Hashable, slice],
    ) -> xr.Dataset:
        """Fill the gaps of ``gappy`` and return the fill of ``region``.

        Parameters
        ----------
        gappy
            The whole record with the held-out points removed (in memory).
        variables
            The variables to fill.
        dims
            The 2 or 3 spatial dims (the evaluation's).
        invalid
            Per variable, the boolean invalid mask (``True`` = invalid; the
            dims of the variable).
        region
            Index ranges ``{dim: slice}`` of the part to return (``{}``: all).

        Returns
        -------
        xarray.Dataset
            On ``gappy.isel(region)``, each of ``variables`` with a ``member``
            dim (size 1 for a deterministic fill) and the variable's other
            dims; observed points as in ``gappy``, invalid points NaN.
        """


def single_member(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` without its ``member`` dim when that dim has size 1 (a deterministic fill).

    Parameters
    ----------
    ds
        A filler's output.

    Returns
    -------
    xarray.Dataset
        ``ds.isel(member=0, drop=True)`` for one member, else ``ds``.
    """
    if "member" in ds.dims and ds.sizes["member"] == 1:
        return ds.isel(member=0, drop=True)
    return ds


def _with_member(ds: xr.Dataset, variables: Sequence[str]) -> xr.Dataset:
    """``ds`` with a size-1 ``member`` dim (coordinate 0) on those ``variables`` that lack one."""
    out = ds.copy()
    for v in variables:
        if "member" not in out[v].dims:
            out[v] = out[v].expand_dims(member=[0])
    return out


class BaselineFiller(Filler):
    """A classical baseline as a filler (one member).

    Each variable is filled on its own over the whole gappy record (the
    time-based baselines pool all of it) and the ``region`` is cut from the
    result.

    Parameters
    ----------
    baseline
        The configured baseline.
    name
        Row name (default: the baseline's registry name).
    """

    kind: ClassVar[Kind] = "baseline"

    def __init__(self, baseline: Baseline, name: str | None = None) -> None:
        self.baseline = baseline
        self.name = name or baseline.name

    def fill(
        self,
        gappy: xr.Dataset,
        *,
        variables: Sequence[str],
        dims: tuple[Hashable, ...],
        invalid: Mapping[str, xr.DataArray],
        region: Mapping[Hashable, slice],
    ) -> xr.Dataset:
        """Fill with the baseline (see [`Filler.fill`][Filler.fill])."""
        done = {
            v: self.baseline.fill(gappy[v], dims=dims, invalid=invalid[v]).isel(region)
            for v in variables
        }
        return _with_member(xr.Dataset(done, attrs=gappy.attrs), variables)


def context_region(
    model: Model, sizes: Mapping[Hashable, int], region: Mapping[Hashable, slice]
) -> tuple[dict[Hashable, slice], dict[Hashable, slice]]:
    """The region widened by what a model may see, and where the region lies inside it.

    A model sees the data around the region as its inputs, as the classical
    baselines do (they see all of it): along a spatial dim of the model the
    whole extent (a region along ``z`` of a volume is filled with the rest of
    the volume around it), along the context dim the steps within the
    context reach. Nothing outside the region is hidden or scored.

    Parameters
    ----------
    model
        A [`Model`][sparsediff.model.Model].
    sizes
        Sizes of the data's dims.
    region
        Normalised region ([`region_slices`][sparsediff.evaluation.holdout.region_slices]).

    Returns
    -------
    wide, back
        ``data.isel(wide)`` is what the model fills; ``.isel(back)`` of its
        result is the region again.
    """
    wide = dict(region)
    back: dict[Hashable, slice] = {}
    for d, sl in region.items():
        if d in model.dims:
            wide[d] = slice(0, int(sizes[d]))
            back[d] = sl
    dim = model.spec.context_dim
    offsets = model.spec.context_offsets if model.spec.n_context else []
    if dim in region and offsets:
        sl = region[dim]
        start = max(0, sl.start + min(0, *offsets))
        stop = min(int(sizes[dim]), sl.stop + max(0, *offsets))
        wide[dim] = slice(start, stop)
        back[dim] = slice(sl.start - start, sl.stop - start)
    return wide, back


class ModelFiller(Filler):
    """A trained model as a filler, through [`sparsediff.fill`][sparsediff.filling.fill.fill].

    The model fills the region widened by its context reach
    ([`context_region`][context_region]: the neighbouring steps are inputs only), with one
    invalid mask for all variables (points invalid in every one of them).
    The result is the output of [`sparsediff.fill`][sparsediff.filling.fill.fill] on the region
    (with
    the fill flags and provenance), its variables given a ``member`` dim.

    Parameters
    ----------
    model
        A trained [`Model`][sparsediff.model.Model].
    name
        Row name.
    options
        How to sample ([`FillOptions`][sparsediff.method.options.FillOptions]: members,
        steps, sampler, seed, guidance, cfg_scale, ...); ``None``: from ``keywords``.
    device, progress, adapt, calibrate
        Passed to [`sparsediff.fill`][sparsediff.filling.fill.fill] (``adapt`` and
        ``calibrate`` fit the model to the gappy input, whose held-out points are gaps).
    **keywords
        The fields of ``FillOptions`` (``members=8``, ``guidance=1.0``, ...) when
        ``options`` is not given.

    Attributes
    ----------
    options
        The options every fill of this filler uses.
    """

    kind: ClassVar[Kind] = "model"

    def __init__(
        self,
        model: Model,
        name: str = "sparsediff",
        *,
        options: FillOptions | None = None,
        device: str = "auto",
        progress: bool | None = None,
        adapt: Any = None,
        calibrate: str = "auto",
        **keywords: Unpack[FillKeywords],
    ) -> None:
        self.model = model
        self.adapt = adapt
        self.calibrate = calibrate
        self.name = name
        self.options = FillOptions.fold(options, **keywords)
        self.device = device
        self.progress = progress
        self.variables = tuple(model.variables)
        self.dims = tuple(model.dims)
        #: The last call's key, the objects it names by id (held) and its result.
        self._last: tuple[tuple[Any, ...], tuple[Any, ...], xr.Dataset] | None = None

    @property
    def members(self) -> int:
        """Ensemble members of each fill (``options.members``)."""
        return self.options.members

    def check(self, data: xr.Dataset) -> None:
        """Refuse data the model cannot fill.

        Parameters
        ----------
        data
            As for [`Filler.check`][Filler.check].

        Raises
        ------
        CompatibilityError
            As [`check_compatible`][sparsediff.filling.fill.check_compatible].
        """
        from sparsediff.filling.fill import check_compatible

        check_compatible(data, self.model)

    def fill(
        self,
        gappy: xr.Dataset,
        *,
        variables: Sequence[str],
        dims: tuple[Hashable, ...],
        invalid: Mapping[str, xr.DataArray],
        region: Mapping[Hashable, slice],
    ) -> xr.Dataset:
        """Fill with the model (see [`Filler.fill`][Filler.fill]).

        A call with the same ``gappy`` object, model object, variables, dims,
        invalid mask objects, region, options, adaptation and calibration as
        the last one returns the last result instead of filling again (the
        fill is deterministic): an evaluation's ``guess_noise`` reuses the
        model's own ensemble.
        """
        from sparsediff.filling.fill import fill

        held = (gappy, self.model, *invalid.values())  # kept alive: their ids stay theirs
        key = (
            tuple(id(x) for x in held),
            tuple(variables),
            tuple(dims),
            tuple(invalid),
            tuple((d, r.start, r.stop, r.step) for d, r in region.items()),
            self.options,
            repr(self.adapt),
            self.calibrate,
        )
        if self._last is not None and self._last[0] == key:
            return self._last[2]
        order = gappy[variables[0]].dims
        invalid_all = None
        for v in variables:
            mask = invalid[v].transpose(*order)
            invalid_all = mask if invalid_all is None else invalid_all & mask
        assert invalid_all is not None
        wide, back = context_region(self.model, gappy.sizes, region)
        filled = fill(
            gappy.isel(wide)[list(variables)],
            self.model,
            options=self.options,
            device=self.device,
            invalid=invalid_all.isel(wide),
            invalid_below=None,  # the evaluation's rule (the model's, by default) is in invalid
            invalid_along=None,
            progress=self.progress,
            adapt=self.adapt,
            calibrate=self.calibrate,
        ).isel(back)
        result = _with_member(filled, variables)
        self._last = (key, held, result)
        return result


MODEL_NAME = "sparsediff"
"""Name of the ``model`` argument's row in the table."""


def model_fillers_of(
    model: Any, models: Mapping[str, Any] | None, options: FillOptions, **settings: Any
) -> list[Filler]:
    """The models of an evaluation as fillers (its ``model`` first, named ``"sparsediff"``).

    Parameters
    ----------
    model
        A [`Model`][sparsediff.model.Model], the path of a saved one, or ``None``.
    models
        Further ``{name: Model, path or Filler}``.
    options, **settings
        Given to each [`ModelFiller`][ModelFiller] made of a Model or path.

    Returns
    -------
    list of Filler

    Raises
    ------
    InputError
        A name used twice, a filler under another name, or an object that is
        neither a model nor a path.
    """
    from sparsediff.model import Model, load

    named: dict[str, Any] = {}
    if model is not None:
        named[MODEL_NAME] = model
    for name, m in (models or {}).items():
        if str(name) in named:
            raise InputError(f"model name {name!r} is used twice")
        named[str(name)] = m
    out: list[Filler] = []
    for name, m in named.items():
        if isinstance(m, Filler):
            if m.name != name:
                raise InputError(f"models[{name!r}] is a filler named {m.name!r}")
            out.append(m)
            continue
        if isinstance(m, str | os.PathLike):
            m = load(m)
        elif not isinstance(m, Model):
            raise InputError(
                f"model {name!r} must be a sparsediff Model or the path of a saved one, "
                f"got {type(m).__name__}"
            )
        out.append(ModelFiller(m, name, options=options, **settings))
    return out


def check_filled(filler: Filler, filled: xr.Dataset, truth: xr.Dataset) -> None:
    """Refuse a filler's output unless it holds every variable on the region with a ``member`` dim.

    Raises
    ------
    InputError
        A variable missing, or with other dims or sizes than ``truth``'s.
    """
    for v, want in truth.data_vars.items():
        got = dict(filled[v].sizes) if v in filled.data_vars else {}
        sizes = dict(got)
        members = sizes.pop("member", None)
        if not members or sizes != dict(want.sizes):
            raise InputError(
                f"filler {filler.name!r} returned {v!r} with dims {got or 'none'}; "
                f"a filler returns every variable on the region ({dict(want.sizes)}) with a "
                "'member' dim"
            )
