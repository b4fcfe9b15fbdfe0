"""``guess_noise``: a null ensemble, the model's own first guess plus independent noise.

The members of a real sample vary together over a gap; these do not. Each
member is the model's classical first guess (what the networks start from)
plus, at every point independently, Gaussian noise with the model's
calibrated per-point spread (the standard deviation of the model's own
members there). It matches the model's pointwise spread by construction, so
an ensemble that is no better than this on the multivariate scores (energy
and variogram score) carries no spatial structure of its own.

Cost: one first-guess fill (1 member), as the model's ensemble fill (for
the spread) is the one the evaluation already made
([`ModelFiller.fill`][sparsediff.evaluation.fillers.ModelFiller.fill] returns it again).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import xarray as xr

from sparsediff.errors import InputError
from sparsediff.evaluation.fillers import Filler, Kind, ModelFiller

if TYPE_CHECKING:
    from sparsediff.evaluation.baselines.setting import Setting
    from sparsediff.model import Model

__all__ = ["GuessNoise", "guess_only"]

_NOISE_KEY = 0x67_6E  # "gn": the noise stream of this baseline


def guess_only(model: Model) -> Model:
    """A view of a latent model that returns its first guess exactly.

    The same networks and the same fill code, with the departure scale and
    every spread factor set to 0: each member is ``guess + 0 * departure``.

    Parameters
    ----------
    model
        A latent [`Model`][sparsediff.model.Model].

    Returns
    -------
    Model
        A shallow copy (the networks are shared) with the new spec.

    Raises
    ------
    InputError
        A pixel-space model (its completion has no separate first guess).
    """
    if model.spec.mode != "latent":
        raise InputError(f"the first guess alone needs a latent model, got a {model.spec.mode} one")
    spec = model.spec.model_copy(
        update={"departure_scale": 0.0, "spread_scale": 0.0, "spread_scales": [], "spread_bins": []}
    )
    return dataclasses.replace(model, spec=spec)


class GuessNoise(Filler):
    """The model's first guess plus iid Gaussian noise of its per-point spread (a null ensemble).

    Parameters
    ----------
    model_filler
        The model as evaluated (its members, steps, sampler, seed... are
        used for both fills); at least 2 members.
    seed
        Seed of the noise.
    name
        Row name.
    """

    name: str = "guess_noise"
    kind: ClassVar[Kind] = "baseline"
    needs: ClassVar[frozenset[str]] = frozenset({"model"})

    def __init__(self, model_filler: ModelFiller, *, seed: int = 0, name: str = "guess_noise"):
        if model_filler.members < 2:
            raise InputError("guess_noise needs a model ensemble of at least 2 members")
        self.model_filler = model_filler
        self.guess_filler = copy.copy(model_filler)
        self.guess_filler.model = guess_only(model_filler.model)
        self.guess_filler.options = dataclasses.replace(model_filler.options, members=1)
        self.seed = int(seed)
        self.name = name

    @classmethod
    def for_evaluation(cls, setting: Setting, notes: list[str]) -> GuessNoise | None:
        """Around the evaluation's first model (skipped, with a note, for a pixel model).

        Parameters
        ----------
        setting, notes
            As for [`for_evaluation`][sparsediff.evaluation.baselines.base.Baseline.for_evaluation].

        Returns
        -------
        GuessNoise or None
        """
        mf = setting.model_filler
        assert mf is not None  # the "model" need is met
        if mf.model.spec.mode != "latent" or mf.members < 2:
            notes.append(
                "skipped baseline 'guess_noise': it needs a latent model and at least 2 members"
            )
            return None
        return cls(mf, seed=setting.seed)

    def fill(
        self,
        gappy: xr.Dataset,
        *,
        variables: Sequence[str],
        dims: tuple[Hashable, ...],
        invalid: Mapping[str, xr.DataArray],
        region: Mapping[Hashable, slice],
    ) -> xr.Dataset:
        """First guess + noise (see `Filler.fill`); observed points copied from ``gappy``."""
        members = self.model_filler.fill(
            gappy, variables=variables, dims=dims, invalid=invalid, region=region
        )
        guess = self.guess_filler.fill(
            gappy, variables=variables, dims=dims, invalid=invalid, region=region
        )
        out = {}
        for i, v in enumerate(variables):
            ens = members[v]
            spread = ens.std("member", ddof=1)  # 0 at observed points: they are copied back
            centre = guess[v].isel(member=0, drop=True)
            rng = np.random.default_rng([self.seed, _NOISE_KEY, i])
            noise = xr.DataArray(rng.standard_normal(ens.shape), dims=ens.dims)
            given = gappy[v].isel(region)
            observed = given.notnull() & ~invalid[v].isel(region).astype(bool)
            drawn = xr.where(observed, given, centre + spread * noise)
            out[v] = drawn.transpose(*ens.dims).astype(ens.dtype).assign_coords(ens.coords)
            out[v].attrs = dict(ens.attrs)
        return xr.Dataset(out, attrs=gappy.attrs)
