"""``condsim``: kriging-based conditional simulation (gstools), a classical ensemble.

For every 2-D slice over the spatial dims (each time step, each member of the
other dims) on its own:

1. the shown (observed, not invalid) points of the slice are the
   conditioning data; above ``max_cond`` of them, a random subset of
   ``max_cond`` (seeded) is used — this bounds the cost, which grows with
   the cube of the conditioning points (the kriging system);
2. an empirical variogram of these points (grid-index distances, ``n_bins``
   bins up to half the slice's diagonal) is fitted with an exponential model
   with a nugget (`gstools.Exponential`);
3. ordinary kriging with that model (`gstools.krige.Ordinary`) and a
   conditioned random field (`gstools.CondSRF`, randomization method)
   draw ``members`` fields at the gap points, each with its own seed.

Observed points are copied back, invalid points are NaN. A slice with fewer
than ``min_cond`` shown points gets the mean of them at every gap (NaN
without any). A global longitude is not wrapped (distances are in grid
indices, isotropic).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import xarray as xr

from sparsediff.errors import ConfigError
from sparsediff.evaluation.fillers import Filler, Kind

if TYPE_CHECKING:
    from sparsediff.evaluation.baselines.setting import Setting

__all__ = ["CondSim"]

_SIM_KEY = 0x63_73  # "cs": the random stream of this baseline


def _fit_model(pos: tuple[np.ndarray, np.ndarray], vals: np.ndarray, n_bins: int) -> object:
    """An exponential variogram (with nugget) fitted to the empirical one of ``vals``."""
    import gstools as gs

    span = float(np.hypot(np.ptp(pos[0]), np.ptp(pos[1])))
    var = float(np.var(vals))
    model = gs.Exponential(dim=2, var=max(var, 1e-12), len_scale=max(span / 4.0, 1.0))
    if var <= 0.0 or span < 2.0:
        return model
    edges = np.linspace(0.0, span / 2.0, n_bins + 1)
    centres, gamma, counts = gs.vario_estimate(pos, vals, edges, return_counts=True)
    keep = counts > 0
    if keep.sum() < 3:
        return model
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit_variogram(centres[keep], gamma[keep], nugget=True)
    except (RuntimeError, ValueError):  # curve_fit failed: keep the moment estimates
        model = gs.Exponential(dim=2, var=max(var, 1e-12), len_scale=max(span / 4.0, 1.0))
    return model


class CondSim(Filler):
    """Kriging-based conditional simulation per slice (see the module docstring).

    Parameters
    ----------
    members
        Ensemble size.
    seed
        Seed of the conditioning subsets and of the simulated fields.
    max_cond
        Most conditioning points per slice (a seeded random subset above).
    min_cond
        Fewest shown points a slice needs to be simulated.
    n_bins
        Bins of the empirical variogram.
    mode_no
        Fourier modes of the randomization method.
    name
        Row name.
    """

    name: str = "condsim"
    kind: ClassVar[Kind] = "baseline"
    needs: ClassVar[frozenset[str]] = frozenset({"plane"})

    def __init__(
        self,
        members: int = 8,
        *,
        seed: int = 0,
        max_cond: int = 400,
        min_cond: int = 10,
        n_bins: int = 12,
        mode_no: int = 1000,
        name: str = "condsim",
    ) -> None:
        if int(members) < 1 or int(min_cond) < 3 or int(max_cond) < int(min_cond):
            raise ConfigError(
                f"condsim needs members >= 1 and 3 <= min_cond <= max_cond, got {members}, "
                f"{min_cond}, {max_cond}"
            )
        if int(n_bins) < 3 or int(mode_no) < 1:
            raise ConfigError(
                f"condsim needs n_bins >= 3 and mode_no >= 1, got {n_bins}, {mode_no}"
            )
        self.members = int(members)
        self.seed = int(seed)
        self.max_cond = int(max_cond)
        self.min_cond = int(min_cond)
        self.n_bins = int(n_bins)
        self.mode_no = int(mode_no)
        self.name = name

    @classmethod
    def for_evaluation(cls, setting: Setting, notes: list[str]) -> CondSim:
        """As many members as the models get, seeded by the evaluation's seed.

        Parameters
        ----------
        setting, notes
            As for [`for_evaluation`][sparsediff.evaluation.baselines.base.Baseline.for_evaluation].

        Returns
        -------
        CondSim
        """
        return cls(members=setting.members, seed=setting.seed)

    def simulate(
        self, values: np.ndarray, shown: np.ndarray, gap: np.ndarray, key: int
    ) -> np.ndarray:
        """``members`` conditional simulations of one 2-D slice at its ``gap`` points.

        Parameters
        ----------
        values
            The slice (``(ny, nx)``; only ``shown`` points are read).
        shown, gap
            Boolean masks of the conditioning points and of the points to draw.
        key
            Index of the slice (with `seed`, keys its random draws).

        Returns
        -------
        numpy.ndarray
            ``(members, n_gap)`` draws, in the order of ``np.flatnonzero(gap)``.
        """
        import gstools as gs

        n_gap = int(gap.sum())
        iy, ix = np.nonzero(shown)
        if iy.size < self.min_cond:
            fill = float(values[shown].mean()) if iy.size else np.nan
            return np.full((self.members, n_gap), fill)
        rng = np.random.default_rng([self.seed, _SIM_KEY, key])
        if iy.size > self.max_cond:
            pick = np.sort(rng.choice(iy.size, size=self.max_cond, replace=False))
            iy, ix = iy[pick], ix[pick]
        pos = (iy.astype(np.float64), ix.astype(np.float64))
        vals = values[iy, ix].astype(np.float64)
        model = _fit_model(pos, vals, self.n_bins)
        krige = gs.krige.Ordinary(model, pos, vals)
        srf = gs.CondSRF(krige, mode_no=self.mode_no)
        gy, gx = np.nonzero(gap)
        target = (gy.astype(np.float64), gx.astype(np.float64))
        seeds = rng.integers(0, 2**31 - 1, size=self.members)
        return np.stack([np.asarray(srf(target, seed=int(s))) for s in seeds])

    def fill(
        self,
        gappy: xr.Dataset,
        *,
        variables: Sequence[str],
        dims: tuple[Hashable, ...],
        invalid: Mapping[str, xr.DataArray],
        region: Mapping[Hashable, slice],
    ) -> xr.Dataset:
        """Simulate every gap of the region (see `Filler.fill`)."""
        import gstools as gs

        if len(dims) != 2:
            raise ConfigError(f"condsim works on 2 spatial dims, got {dims}")
        threads = gs.config.NUM_THREADS
        gs.config.NUM_THREADS = 1  # the evaluation's CPU budget: one thread, as torch
        try:
            out = {
                v: self._fill_var(gappy[v].isel(region), invalid[v].isel(region), dims, i)
                for i, v in enumerate(variables)
            }
        finally:
            gs.config.NUM_THREADS = threads
        return xr.Dataset(out, attrs=gappy.attrs)

    def _fill_var(
        self, da: xr.DataArray, inv: xr.DataArray, dims: tuple[Hashable, ...], index: int
    ) -> xr.DataArray:
        batch = [d for d in da.dims if d not in dims]
        src = da.transpose(*batch, *dims)
        values = np.asarray(src.values, dtype=np.float64)
        bad = np.asarray(inv.astype(bool).broadcast_like(src).transpose(*src.dims).values)
        shape2 = values.shape[-2:]
        flat_v = values.reshape(-1, *shape2)
        flat_bad = bad.reshape(-1, *shape2)
        result = np.repeat(np.where(flat_bad, np.nan, flat_v)[None], self.members, axis=0)
        for b in range(flat_v.shape[0]):
            shown = np.isfinite(flat_v[b]) & ~flat_bad[b]
            gap = ~np.isfinite(flat_v[b]) & ~flat_bad[b]
            if gap.any():
                key = index * 1_000_003 + b
                result[:, b][:, gap] = self.simulate(flat_v[b], shown, gap, key)
        out = xr.DataArray(
            result.reshape(self.members, *values.shape),
            dims=("member", *src.dims),
            coords=src.coords,
            attrs=dict(da.attrs),
            name=da.name,
        )
        return out.transpose("member", *da.dims).astype(
            da.dtype if np.issubdtype(da.dtype, np.floating) else np.float64
        )
