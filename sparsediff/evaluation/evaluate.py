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

Invalid points (by default the first model's own rule, as in its fills:
its training mask, its ``invalid_below`` threshold, or points missing at every
step of its ``invalid_along`` dim, decided on the *original* data by
[`sparsediff.data.invalid_policy`][sparsediff.data.invalid_policy]) are never
hidden, never filled and never scored.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import pandas as pd
import xarray as xr

from sparsediff import atomic
from sparsediff.data import masks
from sparsediff.data.gaps import parse_pattern
from sparsediff.data.invalid_policy import RecordedRule, invalid_states
from sparsediff.data.selection import as_dataset, as_tuple, numeric_variables
from sparsediff.errors import InputError, SparsediffWarning
from sparsediff.evaluation.baselines import Baseline, Setting, baseline_class, for_evaluation
from sparsediff.evaluation.figures import best_other, plot_example, plot_scores
from sparsediff.evaluation.fillers import (
    BaselineFiller,
    Filler,
    ModelFiller,
    check_filled,
    model_fillers_of,
    single_member,
)
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
from sparsediff.filling.fit_input import check_fit_options
from sparsediff.filling.invalid import model_rule
from sparsediff.method.options import FillKeywords, FillOptions
from sparsediff.progress import bar as progress_bar

__all__ = ["DEFAULT_BASELINES", "DEFAULT_OPTIONS", "evaluate", "plot_scores"]

DEFAULT_BASELINES: tuple[str, ...] = ("time_mean", "linear", "laplace", "laplace_eof", "dineof")
"""The classical baselines an evaluation compares with by default."""

DEFAULT_OPTIONS = FillOptions(members=8)
"""The sampling of an evaluation's models when no ``options`` are given (8 members,
so that CRPS and spread-skill are scored)."""


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


def evaluate(
    ds: xr.Dataset | xr.DataArray,
    model: Any = None,
    *,
    holdout: str | tuple[str, float] = "boxes:0.3",
    baselines: str | Iterable[str | Baseline | Filler] | None = DEFAULT_BASELINES,
    options: FillOptions | None = None,
    dims: Sequence[Hashable] | None = None,
    time_dim: Hashable | None = "time",
    invalid_along: Hashable | Iterable[Hashable] | None = "model",
    out: str | os.PathLike[str] | None = None,
    models: Mapping[str, Any] | None = None,
    variables: str | Iterable[str] | None = None,
    invalid: masks.InvalidSpec = None,
    invalid_below: float | str | None = "model",
    region: Mapping[Any, Any] | None = None,  # Any keys: Mapping keys are invariant
    device: str = "auto",
    progress: bool | None = None,
    adapt: Any = None,
    calibrate: str = "auto",
    **keywords: Unpack[FillKeywords],
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
    options
        How each model given as a Model or path samples
        ([`FillOptions`][sparsediff.method.options.FillOptions], every field
        passed to [`sparsediff.fill`][sparsediff.filling.fill.fill]); ``None``: from
        ``keywords``, with [`DEFAULT_OPTIONS`][DEFAULT_OPTIONS] (8 members) for those
        not given. Its ``members`` are the ensemble the table scores (their mean,
        and CRPS and spread-skill), its ``seed`` also seeds the held-out gaps and
        DINEOF's cross-validation.
    dims
        Spatial dims of the holdout pattern, the baselines and the spectra
        (default: the model's), less ``time_dim`` (the pattern is drawn per step).
    time_dim
        The record dim of the time-based baselines and of the holdout keying.
    invalid_along
        Dim(s) along which points missing at every step of the **original**
        data are invalid (land in an ocean field; ignored if absent);
        ``"model"``: the first model's rule, as in its fills (without a model:
        ``time_dim``).
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
        User invalid mask (variable name, DataArray or file; ``True`` = invalid);
        without it, the first model's training mask where it fits the data.
    invalid_below
        Points at or below this value are invalid; ``"model"``: the first
        model's threshold, when no ``invalid`` is given; ``None``: none.
        With ``invalid`` and ``invalid_along`` as in
        [`sparsediff.fill`][sparsediff.filling.fill.fill]
        ([`sparsediff.data.invalid_policy`][sparsediff.data.invalid_policy]);
        the rule is decided once, on the original data, and every filler
        gets its invalid points.
    region
        Index ranges ``{dim: slice(start, stop)}`` where gaps are hidden and
        scored (e.g. the held-out period); the baselines see all of ``ds``,
        the models fill the region.
    device, progress
        Passed to [`sparsediff.fill`][sparsediff.filling.fill.fill] for each model given
        as a Model or path. ``progress`` also shows a bar over all the fills
        (``None``: when interactive).
    adapt, calibrate
        Passed to ``sparsediff.fill`` too; they see the gappy input without the
        held-out points. With an ``out`` in
        [`AdaptOptions`][sparsediff.training.adapt.AdaptOptions], give one model
        only (its run directory is shared).
    **keywords
        The fields of ``FillOptions`` (``members=8``, ``steps`` the model's, ``seed=0``,
        ``sampler``, ``batch_size``, ``guidance``, ``cfg_scale``, ...) when
        ``options`` is not given.

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
        An unknown baseline, a bad option (``members``/``steps`` < 1, ...), an
        unknown keyword, or an option given both in ``options`` and as a keyword.
    CompatibilityError
        A model that cannot fill these data.
    """
    if isinstance(holdout, str):
        parse_pattern(holdout)
    opts = FillOptions.fold(options, defaults=DEFAULT_OPTIONS, **keywords)
    check_fit_options(adapt, calibrate)
    model_fillers = model_fillers_of(
        model,
        models,
        opts,
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
        region=region,
        seed=opts.seed,
        members=opts.members,
    )
    rule = {"invalid": invalid, "invalid_below": invalid_below, "invalid_along": invalid_along}
    held = _hold_out(plan, holdout, rule, seed=opts.seed, time_dim=time_dim)
    fills = _run(plan, held, progress)
    result, gap_spectra = _score(plan, held, fills, opts.seed)
    result.attrs = _table_attrs(plan, holdout, opts)
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
    recorded: RecordedRule  # what "model" means in the invalid rule
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
    first = next((f for f in model_fillers if isinstance(f, ModelFiller)), None)
    if first is not None:
        recorded = model_rule(first.model)
    else:  # baselines only: land is what is missing at every step of the record
        recorded = RecordedRule(along=time_dim if time_dim in data.dims else None)
    return _Plan(data, names, dims, pattern_dims, has_time, reg, recorded, fillers, notes)


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
    rule: dict[str, Any],
    *,
    seed: int,
    time_dim: Hashable | None,
) -> _Held:
    """Load the data, decide their invalid points (``rule``: the user's arguments) and hide
    the holdout among their observed points (refused if it hides none)."""
    names, reg, invalid, along = plan.names, plan.region, rule["invalid"], rule["invalid_along"]
    keep = [*names, *([invalid] if isinstance(invalid, str) and invalid in plan.data else [])]
    data = plan.data[keep].compute()
    if not (isinstance(along, str) and along == "model"):  # a dim the data lack: ignored
        along = [d for d in as_tuple(along) if d in data.dims] or None
    resolved, st = invalid_states(
        data,
        names,
        invalid=invalid,
        invalid_below=rule["invalid_below"],
        invalid_along=along,
        recorded=plan.recorded,
    )
    inv = {v: st[v] == masks.INVALID for v in names}
    gappy, held = make_holdout(
        data,
        holdout,
        dims=plan.pattern_dims,
        seed=seed,
        variables=names,
        invalid=resolved.invalid,
        invalid_along=resolved.along,
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
        check_filled(f, filled, held.truth_r[names])
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
    plan: _Plan, holdout: str | tuple[str, float], opts: FillOptions
) -> dict[str, Any]:
    """What the table was scored on: holdout, seed, sampling, region and notes."""
    return {
        "holdout": holdout if isinstance(holdout, str) else f"{holdout[0]}:{holdout[1]}",
        "seed": int(opts.seed),
        "members": int(opts.members),
        "steps": opts.steps,  # None: each model's calibrated steps
        "sampler": opts.sampler,
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
    atomic.write_text(out_dir / "scores.csv", result.to_csv(index=False))
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
