"""Baselines that map point observations: kriging, ``griddata`` and binned-then-Laplace.

Each is a small class with a ``name`` and one method,

``predict(shown, targets, grid, invalid) -> PointForecast``

that estimates the field at the ``targets``' exact locations from the
``shown`` observations only (both aligned to ``grid``); ``invalid`` marks the
grid's cells never filled (land), for the baselines that work on the grid.
They work per time step: an observation belongs to its nearest step of the
grid's time dim (as binning puts it), and only the shown observations of a
step inform that step's targets. [`evaluate_points`][sparsediff.evaluation.points.evaluate_points]
runs them beside sparsediff; [`POINT_BASELINES`][POINT_BASELINES] maps a name to its class
and [`register_point_baseline`][register_point_baseline] adds one.

[`Kriging`][Kriging] (``kriging``)
    Ordinary kriging with gstools (``gstools.krige.Ordinary``) and a variogram
    fitted on the step's shown points (``gstools.vario_estimate`` then
    ``fit_variogram``, exponential with a nugget; great-circle distances on a
    latitude/longitude grid). At most ``max_points`` shown points condition a
    step (a seeded random subset beyond that; noted), which bounds its memory
    (the kriging matrix is ``max_points**2``). Gives a mean and the kriging
    standard deviation. gstools' kriging variance is ``sill - k.λ`` with the
    sill including the nugget, and its right-hand side leaves the nugget out
    (``exact=False``, the default used here), so the variance at a target is
    that of a new *observation* there: it already includes the fitted nugget
    (measurement error plus variability below the points' spacing), which the
    forecast records (``PointForecast.nugget``) so that scoring does not count
    it twice. The fitted nugget can be zero (a smooth field, or a variogram
    dominated by a trend): the variance then holds no observation error.
[`GriddataLinear`][GriddataLinear] (``griddata``)
    ``scipy.interpolate.griddata(method="linear")`` over the step's shown
    points (copied one turn east and west on a global longitude); targets
    outside the shown points' convex hull get the nearest shown value (noted).
[`BinnedLaplace`][BinnedLaplace] (``binned_laplace``)
    The shown observations binned onto the grid (cell means), filled by the
    gridded [`Laplace`][sparsediff.evaluation.baselines.Laplace] baseline, read at
    the targets through H. Its first guess is the mean of each step's bins
    (``"mean"``) by default, so a basin walled off by land without a bin gets
    that mean: the time-mean first guess of the gridded evaluations hurts on
    sparse bins (OSTIA, 6 months, 1 % of sea cells: RMSE 1.68 K with it,
    0.88 K with the step mean; ``first_guess=`` chooses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import xarray as xr

from sparsediff.data.binning import bin_to_grid
from sparsediff.data.obs_operator import positions_on
from sparsediff.data.observations import Observations
from sparsediff.data.target_grid import TargetGrid
from sparsediff.errors import ConfigError, InputError

__all__ = [
    "POINT_BASELINES",
    "BinnedLaplace",
    "GriddataLinear",
    "Kriging",
    "PointForecast",
    "get_point_baseline",
    "register_point_baseline",
    "time_steps",
]


@dataclass(frozen=True)
class PointForecast:
    """A forecast at the target observations.

    Attributes
    ----------
    mean
        The estimate at each target, shape ``(n,)`` (NaN: no estimate).
    std
        A Gaussian standard deviation per target, or ``None``.
    notes
        What the baseline chose or could not do, in words.
    nugget
        The part of ``std**2`` at each target that already stands for
        observation error (kriging: the fitted nugget, which gstools' variance
        includes), or ``None`` (none of it). Scoring with ``obs_error="add"``
        tops it up to the observation's ``error**2`` and adds nothing where it
        is larger (see [`evaluate_points`][sparsediff.evaluation.points.evaluate_points]).
    """

    mean: np.ndarray
    std: np.ndarray | None = None
    notes: tuple[str, ...] = ()
    nugget: np.ndarray | None = None


def time_steps(obs: Observations, grid: TargetGrid) -> np.ndarray:
    """The index of each observation's nearest step along ``grid``'s time dim (0 without one)."""
    dims = [d for d in grid.dims if grid.roles[d] == "time"]
    if not dims or dims[0] not in obs.coords:
        return np.zeros(len(obs), dtype=np.int64)
    centres = grid.positions[dims[0]]
    x = positions_on(obs, grid, dims[0])
    order = np.argsort(centres)
    sorted_c = centres[order]
    i = np.clip(np.searchsorted(sorted_c, x), 1, max(sorted_c.size - 1, 1))
    if sorted_c.size == 1:
        return np.zeros(len(obs), dtype=np.int64)
    left = sorted_c[i - 1]
    nearest = np.where(np.abs(x - left) <= np.abs(sorted_c[i] - x), i - 1, i)
    return order[nearest].astype(np.int64)


def _space(obs: Observations, grid: TargetGrid) -> tuple[list[np.ndarray], bool]:
    """Positions along the grid's non-time dims; whether they are (latitude, longitude)."""
    dims = [d for d in grid.dims if grid.roles[d] != "time" and grid.shape[grid.dims.index(d)] > 1]
    roles = [grid.roles[d] for d in dims]
    if sorted(r or "" for r in roles) == ["latitude", "longitude"]:
        lat = dims[roles.index("latitude")]
        lon = dims[roles.index("longitude")]
        return [positions_on(obs, grid, lat), positions_on(obs, grid, lon)], True
    return [positions_on(obs, grid, d) for d in dims], False


def _global_longitude(grid: TargetGrid) -> bool:
    return any(grid.periodic[d] for d in grid.dims)


class PointBaseline:
    """Interface of the point baselines (see the module notes)."""

    name: ClassVar[str] = ""

    def predict(
        self,
        shown: Observations,
        targets: Observations,
        grid: TargetGrid,
        invalid: xr.DataArray | None = None,
    ) -> PointForecast:
        """Estimate the field at ``targets`` from ``shown`` (both aligned to ``grid``)."""
        raise NotImplementedError


class Kriging(PointBaseline):
    """Ordinary kriging per time step, variogram fitted on the shown points (gstools).

    Parameters
    ----------
    max_points
        Most shown points that condition one step (a seeded random subset beyond).
    seed
        Seed of that subset and of the variogram's sampling.
    bins
        Number of distance bins of the empirical variogram.
    """

    name: ClassVar[str] = "kriging"

    def __init__(self, max_points: int = 1000, seed: int = 0, bins: int = 15) -> None:
        if int(max_points) < 3 or int(bins) < 3:
            raise ConfigError(f"max_points and bins must be >= 3, got {max_points}, {bins}")
        self.max_points, self.seed, self.bins = int(max_points), int(seed), int(bins)

    def _fit(self, pos: list[np.ndarray], values: np.ndarray, latlon: bool) -> object:
        import gstools as gs

        scale = gs.KM_SCALE if latlon else 1.0
        # gstools' standard bins: up to a third of the points' bounding-box diameter
        centre, gamma = gs.vario_estimate(
            tuple(pos), values, latlon=latlon, geo_scale=scale, bin_no=self.bins,
            sampling_size=min(values.size, 2000), sampling_seed=self.seed,
        )  # fmt: skip
        dim = 2 if latlon else len(pos)
        model = gs.Exponential(dim=dim, latlon=latlon, geo_scale=scale)
        ok = np.isfinite(gamma)
        model.fit_variogram(centre[ok], gamma[ok], nugget=True)
        return model

    def predict(
        self,
        shown: Observations,
        targets: Observations,
        grid: TargetGrid,
        invalid: xr.DataArray | None = None,
    ) -> PointForecast:
        """Krige each step's targets from that step's shown points."""
        import gstools as gs

        mean = np.full(len(targets), np.nan)
        std = np.full(len(targets), np.nan)
        nugget = np.full(len(targets), np.nan)
        notes: list[str] = []
        rng = np.random.default_rng([1602, self.seed])
        s_step, t_step = time_steps(shown, grid), time_steps(targets, grid)
        s_pos, latlon = _space(shown, grid)
        t_pos, _ = _space(targets, grid)
        capped = 0
        for step in np.unique(t_step):
            use = np.flatnonzero(s_step == step)
            want = np.flatnonzero(t_step == step)
            if use.size < 3:
                continue
            if use.size > self.max_points:
                use = np.sort(rng.choice(use, self.max_points, replace=False))
                capped += 1
            pos = [p[use] for p in s_pos]
            model = self._fit(pos, shown.values[use], latlon)
            nugget[want] = float(model.nugget)  # type: ignore[attr-defined]
            krige = gs.krige.Ordinary(model, cond_pos=tuple(pos), cond_val=shown.values[use])
            field, var = krige(tuple(p[want] for p in t_pos), mesh_type="unstructured")
            mean[want] = field
            std[want] = np.sqrt(np.maximum(var, 0.0))
        if capped:
            notes.append(
                f"kriging: {capped} step(s) conditioned on a random {self.max_points} of "
                "their shown points"
            )
        return PointForecast(mean, std, tuple(notes), nugget)


class GriddataLinear(PointBaseline):
    """Linear interpolation of each step's shown points (``scipy.interpolate.griddata``)."""

    name: ClassVar[str] = "griddata"

    def predict(
        self,
        shown: Observations,
        targets: Observations,
        grid: TargetGrid,
        invalid: xr.DataArray | None = None,
    ) -> PointForecast:
        """Interpolate linearly; the nearest shown value outside the convex hull."""
        from scipy.interpolate import griddata

        mean = np.full(len(targets), np.nan)
        s_step, t_step = time_steps(shown, grid), time_steps(targets, grid)
        s_pos, latlon = _space(shown, grid)
        t_pos, _ = _space(targets, grid)
        wrap = latlon and _global_longitude(grid)
        outside = 0
        for step in np.unique(t_step):
            use = np.flatnonzero(s_step == step)
            want = np.flatnonzero(t_step == step)
            if use.size < 3:
                continue
            pts, vals = np.stack([p[use] for p in s_pos], axis=1), shown.values[use]
            if wrap:  # one turn east and west, so the hull crosses the dateline
                turn = np.array([0.0, 360.0])
                east, west = pts + turn, pts - turn
                pts, vals = np.concatenate([pts, east, west]), np.tile(vals, 3)
            xi = np.stack([p[want] for p in t_pos], axis=1)
            est = griddata(pts, vals, xi, method="linear")
            miss = ~np.isfinite(est)
            if miss.any():
                est[miss] = griddata(pts, vals, xi[miss], method="nearest")
                outside += int(miss.sum())
            mean[want] = est
        notes = (f"griddata: {outside} targets outside the convex hull took the nearest value",)
        return PointForecast(mean, None, notes if outside else ())


class BinnedLaplace(PointBaseline):
    """The gridded Laplace baseline on the binned shown observations, read through H.

    ``first_guess`` is the background of
    [`Laplace`][sparsediff.evaluation.baselines.laplace.Laplace] (``"time_mean"``,
    ``"mean"`` or ``"none"``), not a model's first guess.
    """

    name: ClassVar[str] = "binned_laplace"

    def __init__(
        self,
        time: Literal["linear", "nearest"] = "nearest",
        first_guess: Literal["time_mean", "mean", "none"] = "mean",
    ) -> None:
        self.time, self.first_guess = time, first_guess

    def predict(
        self,
        shown: Observations,
        targets: Observations,
        grid: TargetGrid,
        invalid: xr.DataArray | None = None,
    ) -> PointForecast:
        """Bin, fill with Laplace (NaN stays on invalid cells), interpolate to the targets."""
        from sparsediff.evaluation.baselines import Laplace

        binned = bin_to_grid(shown, grid)[shown.name]
        time_dims = [d for d in grid.dims if grid.roles[d] == "time"]
        spatial = [d for d in grid.dims if d not in time_dims]
        if len(spatial) not in (2, 3):
            raise InputError(f"binned_laplace needs 2 or 3 spatial dims, the grid has {spatial}")
        many = bool(time_dims) and grid.shape[grid.dims.index(time_dims[0])] > 1
        if self.first_guess == "time_mean" and many:
            laplace = Laplace(time_dim=time_dims[0])
        else:
            guess = "mean" if self.first_guess == "time_mean" else self.first_guess
            laplace = Laplace(time_dim=None, first_guess=guess)
        filled = laplace.fill(binned, dims=spatial, invalid=invalid)
        assert isinstance(filled, xr.DataArray)  # a DataArray in, a DataArray out
        at = targets.at(filled, time=self.time) if time_dims else targets.at(filled)
        return PointForecast(np.asarray(at.values, dtype=np.float64))


POINT_BASELINES: dict[str, type[PointBaseline]] = {
    Kriging.name: Kriging,
    GriddataLinear.name: GriddataLinear,
    BinnedLaplace.name: BinnedLaplace,
}
"""Registry: point baseline name -> class."""


def register_point_baseline(cls: type[PointBaseline]) -> type[PointBaseline]:
    """Add a [`PointBaseline`][PointBaseline] subclass to `POINT_BASELINES` (a class decorator).

    Raises
    ------
    ConfigError
        Not a subclass, no name, or a name taken by another class.
    """
    if not isinstance(cls, type) or not issubclass(cls, PointBaseline) or not cls.name:
        raise ConfigError(f"a point baseline must be a named PointBaseline subclass, got {cls!r}")
    if POINT_BASELINES.get(cls.name, cls) is not cls:
        raise ConfigError(f"a point baseline named {cls.name!r} is already registered")
    POINT_BASELINES[cls.name] = cls
    return cls


def get_point_baseline(name: str | PointBaseline) -> PointBaseline:
    """A point baseline by name (an instance is returned as is).

    Raises
    ------
    ConfigError
        An unknown name.
    """
    if isinstance(name, PointBaseline):
        return name
    make: Callable[[], PointBaseline] | None = POINT_BASELINES.get(name)
    if make is None:
        raise ConfigError(
            f"unknown point baseline {name!r}; expected one of {', '.join(POINT_BASELINES)}"
        )
    return make()
