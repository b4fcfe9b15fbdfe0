"""``sparsediff.evaluate``: hide gaps, fill them with models and baselines, score the fills.

The protocol (the one every number in the docs comes from):

1. hide a gap pattern (``"boxes:0.3"``, ``"mcar:0.5"``, ``"cloud:0.3"`` ...)
   among the **observed** points ([`make_holdout`][sparsediff.evaluation.holdout.make_holdout];
   only inside ``region`` when one is given, e.g. the held-out period of a
   training run);
2. fill the gappy data with each model (``members`` ensemble members) and each
   classical baseline (`sparsediff.evaluation.baselines`), all of them
   [`Filler`][sparsediff.evaluation.fillers.Filler] objects run in one loop; the
   baselines see the whole record as context (their time mean, their EOFs),
   the models fill the ``region``;
3. score every fill on the held-out points only
   ([`score_table`][sparsediff.evaluation.metrics.score_table], spectra, and PSNR/SSIM
   for volumes).

Invalid points (a user mask, and points missing at every step of
``invalid_along`` in the *original* data) are never hidden, never filled and
never scored.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from sparsediff.data import masks
from sparsediff.data.gaps import parse_pattern
from sparsediff.data.selection import as_dataset, as_tuple, numeric_variables
from sparsediff.errors import ConfigError, InputError, SparsediffWarning
from sparsediff.evaluation.baselines import Baseline, Setting, baseline_class, for_evaluation
from sparsediff.evaluation.figures import best_other, plot_example, plot_scores
from sparsediff.evaluation.fillers import BaselineFiller, Filler, ModelFiller, single_member
from sparsediff.evaluation.holdout import make_holdout, region_slices
from sparsediff.evaluation.metrics import (
    plot_gap_spectra,
    power_spectrum_ratio,
    psnr,
    score_table,
    spectrum_ratio_score,
    ssim,
    structure_table,
)
from sparsediff.progress import bar as progress_bar

__all__ = ["DEFAULT_BASELINES", "evaluate", "plot_scores"]

DEFAULT_BASELINES: tuple[str, ...] = ("time_mean", "linear", "laplace", "dineof")
"""The classical baselines an evaluation compares with by default."""

MODEL_NAME = "sparsediff"
"""Name of the ``model`` argument's row in the table."""


def _model_fillers(model: Any, models: Mapping[str, Any] | None, **options: Any) -> list[Filler]:
    """The models as fillers (paths are loaded; ``options`` go to [`ModelFiller`][ModelFiller])."""
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
        out.append(ModelFiller(m, name, **options))
    return out


def _baseline_list(
    baselines: str | Iterable[str | Baseline | Filler] | None,
) -> list[tuple[str, str | Baseline | Filler]]:
    if baselines is None:
        return []
    if isinstance(baselines, str):
        items: list[str | Baseline | Filler] = [
            b.strip() for b in baselines.split(",") if b.strip()
        ]
    else:
        items = list(baselines)
    out: list[tuple[str, str | Baseline | Filler]] = []
    for item in items:
        if isinstance(item, Baseline | Filler):
            out.append((item.name, item))
        elif isinstance(item, str):
            baseline_class(item)  # unknown names fail here, before any compute
            out.append((item, item))
        else:
            raise InputError(
                f"baselines must be names, Baseline or Filler objects, got {type(item).__name__}"
            )
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise InputError(f"a baseline is listed twice: {names}")
    return out


def _baseline_filler(
    name: str, spec: str | Baseline | Filler, setting: Setting, notes: list[str]
) -> Filler | None:
    """The filler to run, or ``None`` (skipped, with a note) when it cannot run."""
    if isinstance(spec, Filler):
        return spec
    made = spec if isinstance(spec, Baseline) else for_evaluation(name, setting, notes)
    if made is None or isinstance(made, Filler):
        return made
    return BaselineFiller(made)


def _check_positive(**values: int | None) -> None:
    for key, v in values.items():
        if v is not None and int(v) < 1:
            raise ConfigError(f"{key} must be >= 1, got {v}")


def _check_fit_options(adapt: Any, calibrate: Any) -> None:
    """One-line errors for bad ``adapt``/``calibrate`` before anything is computed."""
    from sparsediff.filling.fit_input import check_calibrate
    from sparsediff.training.adapt import as_adapt_options

    check_calibrate(calibrate)
    as_adapt_options(adapt)


def evaluate(
    ds: xr.Dataset | xr.DataArray,
    model: Any = None,
    *,
    holdout: str | tuple[str, float] = "boxes:0.3",
    baselines: str | Iterable[str | Baseline | Filler] | None = DEFAULT_BASELINES,
    members: int = 8,
    steps: int = 16,
    seed: int = 0,
    dims: Sequence[Hashable] | None = None,
    time_dim: Hashable | None = "time",
    invalid_along: Hashable | Iterable[Hashable] | None = "time",
    out: str | os.PathLike[str] | None = None,
    models: Mapping[str, Any] | None = None,
    variables: str | Iterable[str] | None = None,
    invalid: masks.InvalidSpec = None,
    region: Mapping[Any, Any] | None = None,  # Any keys: Mapping keys are invariant
    sampler: str = "dpmpp_2m",
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool | None = None,
    adapt: Any = None,
    calibrate: str = "validation",
) -> pd.DataFrame:
    """Score models and classical baselines on the same held-out gaps.

    Parameters
    ----------
    ds
        Data with truth at its observed points (a DataArray counts as a
        one-variable Dataset); dask-backed data are loaded, so they must fit in memory.
    model
        A trained [`Model`][sparsediff.model.Model] or the path of a saved one;
        its row is named ``"sparsediff"``.
    holdout
        Gap pattern hidden among the observed points, ``"<pattern>:<fraction>"``
        with a pattern of [`PATTERNS`][sparsediff.data.gaps.PATTERNS] (``mcar``,
        ``boxes``, ``stripes``, ``swath``, ``cloud``).
    baselines
        Registry names of [`BASELINES`][sparsediff.evaluation.baselines.BASELINES]
        (or one comma-separated string),
        [`Baseline`][sparsediff.evaluation.baselines.Baseline] objects or any
        [`Filler`][sparsediff.evaluation.fillers.Filler] (run as given); ``None``
        or ``()``: none. A baseline that lacks what it needs (``time_mean`` and
        ``dineof`` a time dim outside ``dims``, ``guess_noise`` a model,
        ``condsim`` two spatial dims) is skipped, noted in ``table.attrs["notes"]``;
        without a time dim ``laplace`` starts from the slice mean. The null
        ensembles ``guess_noise`` and ``condsim`` get ``members`` members.
    members
        Ensemble members per model (the table scores their mean, and CRPS and
        spread-skill of the ensemble).
    steps
        Sampler steps per member.
    seed
        Seed of the held-out gaps, the sampling noise and DINEOF's cross-validation.
    dims
        Spatial dims of the holdout pattern, the baselines and the spectra
        (default: the model's), less ``time_dim`` (the pattern is drawn per step).
    time_dim
        The record dim of the time-based baselines and of the holdout keying.
    invalid_along
        Dim(s) along which points missing at every step of the **original**
        data are invalid (land in an ocean field); ignored if absent.
    out
        Directory for ``scores.csv``, ``example_fill.png`` (the first model's
        fill, or the first baseline's), ``rmse_by_method.png``,
        ``gap_spectra.png`` (gap power ratio per wavenumber and method) and each
        model's fill of the region (``fill_<name>.zarr``: members, flags, provenance).
    models
        Further models to compare, ``{name: Model or path}`` (e.g. latent and
        pixel-space variants), or ``{name: Filler}`` for a variant with its own
        fill options (a [`ModelFiller`][sparsediff.evaluation.fillers.ModelFiller]).
    variables
        Variables to score (default: the first model's, or every numeric
        variable holding ``dims``).
    invalid
        User invalid mask (variable name, DataArray or file; ``True`` = invalid).
    region
        Index ranges ``{dim: slice(start, stop)}`` where gaps are hidden and
        scored (e.g. the held-out period); the baselines see all of ``ds``,
        the models fill the region.
    sampler, batch_size, device, progress
        Passed to [`sparsediff.fill`][sparsediff.filling.fill.fill] (with ``members``,
        ``steps`` and ``seed``) for each model given as a Model or path.
        ``progress`` also shows a bar over all the fills (``None``: when interactive).
    adapt, calibrate
        Passed to ``sparsediff.fill`` too; they see the gappy input without the
        held-out points. With an ``out`` in
        [`AdaptOptions`][sparsediff.training.adapt.AdaptOptions], give one model
        only (its run directory is shared).

    Returns
    -------
    pandas.DataFrame
        One row per variable and method: ``variable``, ``method``, ``kind``
        (``"model"`` or ``"baseline"``), ``rmse``, ``mae``, ``bias`` (weighted
        by cos latitude when there is a latitude), ``crps`` (of a deterministic
        fill: its MAE), ``spread_skill`` (NaN under 2 members),
        ``spectrum_score`` (mean ``|ln|`` power ratio over the upper half of the
        wavenumbers; 0 is perfect), ``energy_score`` and ``variogram_score``
        (per gap region, averaged;
        [`multivariate_scores`][sparsediff.evaluation.metrics.multivariate_scores]),
        ``n_regions``, ``gap_power_low``/``_mid``/``_high`` (members' power in
        the gaps over the truth's per wavenumber band; 1 is perfect), ``psnr``
        and ``ssim`` (3 spatial ``dims`` only), ``n_points`` (held-out points
        scored) and ``seconds`` (the fill's wall time). ``table.attrs``: the
        holdout spec, seed, members, steps, sampler, region and ``notes``.

    Raises
    ------
    InputError
        Bad data, dims, region or holdout spec, or a holdout that hides no
        observed point.
    ConfigError
        An unknown baseline, or ``members``/``steps`` < 1.
    CompatibilityError
        A model that cannot fill these data.
    """
    if isinstance(holdout, str):
        parse_pattern(holdout)
    _check_positive(members=members, steps=steps, batch_size=batch_size)
    _check_fit_options(adapt, calibrate)
    model_fillers = _model_fillers(
        model,
        models,
        members=members,
        steps=steps,
        sampler=sampler,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=progress,
        adapt=adapt,
        calibrate=calibrate,
    )
    plan = _plan(
        ds,
        model_fillers,
        baselines,
        dims=dims,
        variables=variables,
        invalid=invalid,
        time_dim=time_dim,
        invalid_along=invalid_along,
        region=region,
        seed=seed,
        members=members,
    )
    held = _hold_out(plan, holdout, seed=seed, invalid=invalid, time_dim=time_dim)
    fills = _run(plan, held, progress)
    result, gap_spectra = _score(plan, held, fills, seed)
    result.attrs = _table_attrs(plan, holdout, seed, members, steps, sampler)
    if out is not None:
        _report(Path(out), result, plan, held, fills, gap_spectra, holdout)
    return result


@dataclass(frozen=True)
class _Plan:
    """What an evaluation fills and scores, decided before anything is computed."""

    data: xr.Dataset  # the input as a Dataset
    names: list[str]  # the variables scored
    dims: tuple[Hashable, ...]  # the spatial dims
    pattern_dims: tuple[Hashable, ...]  # the dims of the holdout pattern
    has_time: bool  # a record dim outside ``pattern_dims`` (time-based baselines)
    region: dict[Hashable, slice]  # where gaps are hidden, filled and scored
    along: list[Hashable] | None  # the ``invalid_along`` dims the data have
    fillers: list[Filler]  # the models, then the baselines that can run
    notes: list[str]  # the baselines skipped, and why


@dataclass(frozen=True)
class _Held:
    """The data with their held-out points: what the fillers see and what is scored."""

    data: xr.Dataset  # the variables scored (and a named invalid mask), loaded
    gappy: xr.Dataset  # ``data`` with the held-out points hidden
    invalid: dict[str, xr.DataArray]  # per variable, its invalid points
    held_r: xr.Dataset  # the held-out points, on the region
    truth_r: xr.Dataset  # ``data`` on the region
    gappy_r: xr.Dataset  # ``gappy`` on the region


@dataclass(frozen=True)
class _Fills:
    """Every filler's output on the region, per variable and method."""

    filled_by: dict[str, xr.Dataset]  # per filler, its output
    ensembles: dict[str, dict[str, xr.DataArray]]  # members, invalid points NaN
    preds: dict[str, dict[str, xr.DataArray]]  # the ensemble means
    kinds: dict[str, str]  # ``"model"`` or ``"baseline"``
    seconds: dict[str, float]  # wall time of each fill


def _plan(
    ds: xr.Dataset | xr.DataArray,
    model_fillers: list[Filler],
    baselines: str | Iterable[str | Baseline | Filler] | None,
    *,
    dims: Sequence[Hashable] | None,
    variables: str | Iterable[str] | None,
    invalid: masks.InvalidSpec,
    time_dim: Hashable | None,
    invalid_along: Hashable | Iterable[Hashable] | None,
    region: Mapping[Hashable, Any] | None,
    seed: int,
    members: int,
) -> _Plan:
    """Check the data against the fillers; decide dims, variables, region and baselines.

    The first model sets the default dims and variables; a baseline that cannot run is noted.
    """
    # an unnamed DataArray is the model's one variable, as for sparsediff.fill
    single = [f.variables[0] for f in model_fillers if f.variables and len(f.variables) == 1]
    data = as_dataset(ds, name=single[0] if single else None)
    base_specs = _baseline_list(baselines)
    if not model_fillers and not base_specs:
        raise InputError("nothing to evaluate: give a model, models= or baselines")
    clash = [n for n, _ in base_specs if n in {f.name for f in model_fillers}]
    if clash:
        raise InputError(f"model name(s) {clash} clash with baseline names")
    tied = [f for f in model_fillers if f.dims is not None]  # the first model sets defaults
    if dims is None:
        if not tied or tied[0].dims is None:
            raise InputError("give dims= (the spatial dims) when evaluating baselines only")
        dims = tied[0].dims
    dims = tuple(dims)
    for f in model_fillers:
        f.check(data)
    if variables is None and tied and tied[0].variables is not None:
        variables = list(tied[0].variables)
    names = _scored_variables(data, variables, dims, invalid, model_fillers)
    pattern_dims = tuple(d for d in dims if d != time_dim)
    if len(pattern_dims) < 2:
        pattern_dims = dims
    has_time = (
        time_dim is not None and time_dim in data[names[0]].dims and time_dim not in pattern_dims
    )
    reg = region_slices(data, region)
    _warn_trained_region(model_fillers, data, reg)
    along = [d for d in as_tuple(invalid_along) if d in data.dims] or None
    notes: list[str] = []
    fillers = list(model_fillers)
    setting = Setting(
        time_dim=time_dim,
        has_time=has_time,
        n_dims=len(pattern_dims),
        seed=seed,
        members=members,
        model_filler=next((f for f in model_fillers if isinstance(f, ModelFiller)), None),
    )
    for n, spec in base_specs:
        runner = _baseline_filler(n, spec, setting, notes)
        if runner is not None:
            fillers.append(runner)
    return _Plan(data, names, dims, pattern_dims, has_time, reg, along, fillers, notes)


def _scored_variables(
    data: xr.Dataset,
    variables: str | Iterable[str] | None,
    dims: tuple[Hashable, ...],
    invalid: masks.InvalidSpec,
    model_fillers: list[Filler],
) -> list[str]:
    """The variables to score (``None``: every numeric one that holds ``dims``), checked."""
    if variables is None:
        candidates = [
            v for v in numeric_variables(data) if not (isinstance(invalid, str) and v == invalid)
        ]
        variables = [v for v in candidates if all(d in data[v].dims for d in dims)]
        if not variables:
            raise InputError(
                f"no numeric variable has all of the dims {dims} "
                f"(variables: {', '.join(map(str, data.data_vars))})"
            )
    names = numeric_variables(data, variables)
    for d in dims:
        for v in names:
            if d not in data[v].dims:
                raise InputError(
                    f"dim {d!r} is not a dim of variable {v!r} "
                    f"(dims: {', '.join(map(str, data[v].dims))})"
                )
    for f in model_fillers:
        lacking = [v for v in names if f.variables is not None and v not in f.variables]
        if lacking:
            raise InputError(
                f"model {f.name!r} does not fill {lacking} (it fills {list(f.variables or ())})"
            )
    return names


def _hold_out(
    plan: _Plan,
    holdout: str | tuple[str, float],
    *,
    seed: int,
    invalid: masks.InvalidSpec,
    time_dim: Hashable | None,
) -> _Held:
    """Load the data and hide the holdout among their observed points (refused if it hides none)."""
    names, reg = plan.names, plan.region
    keep = [*names, *([invalid] if isinstance(invalid, str) and invalid in plan.data else [])]
    data = plan.data[keep].compute()
    st = masks.states(data, names, invalid=invalid, invalid_along=plan.along)
    inv = {v: st[v] == masks.INVALID for v in names}
    gappy, held = make_holdout(
        data,
        holdout,
        dims=plan.pattern_dims,
        seed=seed,
        variables=names,
        invalid=invalid,
        invalid_along=plan.along,
        region=reg,
        protect_along=time_dim if plan.has_time else None,
    )
    held_r = held.isel(reg)
    for v in names:
        if not bool(held_r[v].any()):
            raise InputError(
                f"the holdout {holdout!r} hides no observed point of {v!r}"
                + (f" in region {reg}" if reg else "")
            )
    return _Held(data, gappy, inv, held_r, data.isel(reg), gappy.isel(reg))


def _run(plan: _Plan, held: _Held, progress: bool | None) -> _Fills:
    """Fill the gappy data with every filler, in one loop (a bar when ``progress``)."""
    names, reg = plan.names, plan.region
    fills = _Fills({}, {v: {} for v in names}, {v: {} for v in names}, {}, {})
    for f in progress_bar(plan.fillers, progress=progress, desc="fills", leave=False):
        t0 = time.perf_counter()
        filled = f.fill(
            held.gappy, variables=names, dims=plan.pattern_dims, invalid=held.invalid, region=reg
        )
        fills.seconds[f.name] = time.perf_counter() - t0
        _check_filled(f, filled, held.truth_r[names])
        fills.kinds[f.name] = f.kind
        fills.filled_by[f.name] = filled
        for v in names:
            ens = filled[v].where(~held.invalid[v].isel(reg))
            fills.ensembles[v][f.name] = ens
            fills.preds[v][f.name] = ens.mean("member")
    return fills


def _score(
    plan: _Plan, held: _Held, fills: _Fills, seed: int
) -> tuple[pd.DataFrame, dict[str, dict[str, xr.DataArray]]]:
    """The table of scores on the held-out points, and each variable's gap spectra."""
    spec_dims = plan.pattern_dims[-2:]
    volume = len(plan.dims) == 3
    frames = []
    gap_spectra: dict[str, dict[str, xr.DataArray]] = {}
    for v in plan.names:
        truth, mask = held.truth_r[v], held.held_r[v]
        ensembles, preds = fills.ensembles[v], fills.preds[v]
        table = score_table(preds, truth, mask, ensembles=ensembles)
        table.insert(0, "variable", v)
        table.insert(2, "kind", [fills.kinds[n] for n in table["method"]])
        table["spectrum_score"] = [
            spectrum_ratio_score(power_spectrum_ratio(ensembles[n], truth, dims=spec_dims))
            for n in table["method"]
        ]
        structure, gap_spectra[v] = structure_table(
            ensembles, truth, mask, dims=plan.pattern_dims, spectrum_dims=spec_dims, seed=seed
        )
        table = table.merge(structure, on="method", how="left", sort=False)
        if volume:
            table["psnr"] = [psnr(preds[n], truth, mask) for n in table["method"]]
            table["ssim"] = [ssim(preds[n], truth, mask, dims=plan.dims) for n in table["method"]]
        table["n_points"] = int(mask.sum())
        table["seconds"] = [fills.seconds[n] for n in table["method"]]
        frames.append(table)
    return pd.concat(frames, ignore_index=True), gap_spectra


def _table_attrs(
    plan: _Plan, holdout: str | tuple[str, float], seed: int, members: int, steps: int, sampler: str
) -> dict[str, Any]:
    """What the table was scored on: holdout, seed, sampling, region and notes."""
    return {
        "holdout": holdout if isinstance(holdout, str) else f"{holdout[0]}:{holdout[1]}",
        "seed": int(seed),
        "members": int(members),
        "steps": int(steps),
        "sampler": sampler,
        "region": {str(k): [s.start, s.stop] for k, s in plan.region.items()},
        "notes": plan.notes,
    }


def _report(
    out_dir: Path,
    result: pd.DataFrame,
    plan: _Plan,
    held: _Held,
    fills: _Fills,
    gap_spectra: dict[str, dict[str, xr.DataArray]],
    holdout: str | tuple[str, float],
) -> None:
    """Write the table, the figures and each model's fill to ``out_dir``."""
    from sparsediff.data.io import write

    names, fillers, filled_by = plan.names, plan.fillers, fills.filled_by
    out_dir.mkdir(parents=True, exist_ok=True)
    result.to_csv(out_dir / "scores.csv", index=False)
    if fillers:
        example = single_member(filled_by[fillers[0].name])
        rival = best_other(result, names[0], fillers[0].name)
        compare = {rival: single_member(filled_by[rival])} if rival else None
        path = out_dir / "example_fill.png"
        plot_example(example, names[0], held.gappy_r, held.truth_r, held.held_r, path, compare)
    units = {v: str(held.data[v].attrs.get("units", "")) for v in names}
    plot_scores(result, out_dir / "rmse_by_method.png", units=units)
    plot_gap_spectra(gap_spectra[names[0]], out_dir / "gap_spectra.png", title=names[0])
    for f in fillers:
        if f.kind == "model":
            write(
                single_member(filled_by[f.name]),
                out_dir / f"fill_{f.name}.zarr",
                mode="w",
                history=f"evaluate {holdout}",
            )


def _warn_trained_region(
    fillers: list[Filler], data: xr.Dataset, reg: Mapping[Hashable, slice]
) -> None:
    """Warn when a model is scored on steps it was trained on (optimistic scores)."""
    from sparsediff.training.region import overlap_warning

    for f in fillers:
        message = overlap_warning(getattr(f, "model", None), data, dict(reg))
        if message:
            warnings.warn(f"model {f.name!r}: {message}", SparsediffWarning, stacklevel=4)


def _check_filled(filler: Filler, filled: xr.Dataset, truth: xr.Dataset) -> None:
    """A filler's output holds every variable on the region, with a ``member`` dim."""
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
