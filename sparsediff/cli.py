"""The ``sparsediff`` command line: demo, train, fill, evaluate, info.

Errors are one clear line on stderr and a non-zero exit; ``--debug`` shows the
traceback (the machinery is in `sparsediff.cli_support`). Under ``torchrun`` the
same commands run on every rank.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sparsediff.cli_support import (
    _check_threads,
    _errors,
    _fit_options,
    _invalid_options,
    _OneLineGroup,
    _parse_region,
    _SamplingCommand,
)

__all__ = ["main"]


@click.group(cls=_OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sparsediff")
def main() -> None:
    """Fill gaps in gridded data with latent diffusion trained on the gappy data."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --out.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run directory (overrides run.out in the config).",
)
@_errors
def train(config: Path, resume: bool, out: Path | None) -> None:
    """Train a model from a YAML CONFIG (works under torchrun)."""
    from sparsediff.training.trainer import train as run_train

    model = run_train(None, config, out=out, resume=resume)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        where = Path(out or model.provenance["config"]["run"]["out"]) / "model"
        click.echo(f"model written to {where}")


@main.command(cls=_SamplingCommand, defaults="sparsediff.method.options.FillOptions")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=False, path_type=Path))
@click.argument("input_path", metavar="[INPUT]", type=click.Path(path_type=Path), required=False)
@click.argument("output", type=click.Path(path_type=Path), required=False)
@click.option("--points", type=click.Path(path_type=Path), help="Fill a grid from these point "
              "observations (CSV, NetCDF, CF DSG) instead of INPUT; needs --like.")  # fmt: skip
@click.option("--like", type=click.Path(path_type=Path), help="Template of the grid for --points.")
@click.option("--value", default=None, help="The observed column/variable of --points.")
@click.option("--strict", is_flag=True, help="Refuse --points outside the grid (default: drop).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option(
    "--region-size",
    default=1,
    show_default=True,
    help="Positions of the region dim per Zarr region write.",
)
@click.option("--resume", is_flag=True, help="Skip regions an interrupted run finished.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option(
    "--scheduler",
    default=None,
    help="dask.distributed scheduler address, or 'local:N' for a local N-worker cluster.",
)
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's).")
@click.option(
    "--invalid",
    default=None,
    help="Invalid mask (True = never filled): a variable of INPUT or a NetCDF/Zarr file "
    "(default: the model's training mask on its grid).",
)
@click.option(
    "--invalid-below",
    type=float,
    default=None,
    help="Points at or below this value are invalid (default: the model's rule).",
)
@click.option(
    "--invalid-along",
    default=None,
    help="Points missing at every step of this dim are invalid ('none' to turn off; "
    "default: the model's rule when it has no mask for this grid).",
)
@click.option(
    "--no-value-check",
    is_flag=True,
    help="Fill even data whose values look like another unit or scale than the model's.",
)
@click.option(
    "--init",
    "init_job",
    is_flag=True,
    help="Array jobs: create OUTPUT (.zarr) with its metadata and coordinates for tasks "
    "run with --region, and stop.",
)
@click.option(
    "--region",
    "task_region",
    default=None,
    metavar="DIM=START:STOP",
    help="Array jobs: fill these steps into the OUTPUT made by --init (same model, input "
    "and options as the init; on --region-size boundaries).",
)
@click.option(
    "--min-observed-share",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Refuse INPUT when a step (e.g. a time step) has a smaller share of observed "
    "points (default: only warn about steps with none).",
)
@_fit_options
@click.option(
    "--adapt-out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run directory of the adaptation (checkpoints, metrics.jsonl); with --resume an "
    "interrupted adaptation continues from its newest checkpoint.",
)
@_errors
def fill(
    model_path: Path,
    input_path: Path,
    output: Path,
    device: str,
    region_size: int,
    resume: bool,
    overwrite: bool,
    scheduler: str | None,
    threads: int | None,
    invalid: str | None,
    invalid_below: float | None,
    invalid_along: str | None,
    no_value_check: bool,
    min_observed_share: float | None,
    init_job: bool,
    task_region: str | None,
    adapt_steps: int,
    calibrate: str,
    adapt_out: Path | None,
    points: Path | None = None,
    like: Path | None = None,
    value: str | None = None,
    strict: bool = False,
    **sampling: Any,
) -> None:
    """Fill the gaps of INPUT with MODEL and write OUTPUT (.zarr streams; .nc in one go).

    With --points OBS --like GRID (and no INPUT): fill GRID from point observations.
    The sampling options (--members to --compile) are the fields of FillOptions,
    sparsediff.fill's options in Python, with the same defaults. Ends with one
    line: points filled, kept as observed and left invalid.
    """
    from sparsediff.method.options import FillOptions

    options = FillOptions.fold(None, **sampling)  # a bad option: before anything is read
    if points is not None or like is not None:  # sparsediff.filling.points
        unsupported = {
            "--init": init_job,
            "--region": task_region,
            "--adapt-steps": adapt_steps,
            "--min-observed-share": min_observed_share is not None,
        }
        args = (model_path, input_path, output, points, like, value, strict, overwrite)
        kw = dict(options=options, device=device, check_values=not no_value_check)
        kw |= dict(calibrate=calibrate)
        kw |= _invalid_options(invalid, invalid_below, invalid_along)
        _fill_points(args, kw, unsupported, threads)
        return
    if input_path is None or output is None:
        missing = "INPUT" if input_path is None else "OUTPUT"
        raise click.UsageError(f"Missing argument '{missing}' (or fill from --points and --like)")
    array_job = init_job or bool(task_region)
    fits = bool(adapt_steps) or calibrate == "input"
    _check_fill_target(output, (init_job, task_region), fits, overwrite, region_size)
    _check_threads(threads)
    from sparsediff.devices import resolve_device

    resolve_device(device)
    import sparsediff
    from sparsediff.filling.fill import check_compatible

    model = sparsediff.load(model_path)
    ds = sparsediff.open(input_path)
    check_compatible(ds, model)
    invalid_kw = _invalid_options(invalid, invalid_below, invalid_along)
    if fits:
        from sparsediff.filling.fit_input import fit_to_input
        from sparsediff.training.adapt import AdaptOptions

        out_dir = None if adapt_out is None else str(adapt_out)
        adapt = AdaptOptions(steps=adapt_steps, seed=options.seed, out=out_dir, resume=resume)
        seed = options.seed
        model = fit_to_input(
            ds, model, adapt=adapt, calibrate=calibrate, seed=seed, device=device, **invalid_kw
        )
    kw = dict(
        options=options,
        device=device,
        check_values=not no_value_check,
        min_observed_share=min_observed_share,
        **invalid_kw,
    )
    history = f"fill {input_path.name} with {model_path}"
    client = _dask_client(scheduler)
    try:
        if array_job:
            _array_job(ds, model, output, task_region, region_size, overwrite, kw, history)
            return
        _write_fill(ds, model, output, (region_size, resume, overwrite), kw, history)
    finally:
        if client is not None:
            client.close()
    from sparsediff.filling.summary import flag_counts, summary_line

    click.echo(summary_line(flag_counts(sparsediff.open(output))), err=True)
    click.echo(f"filled data written to {output}")


def _fill_points(
    args: tuple[Any, ...], kw: dict[str, Any], unsupported: dict[str, Any], threads: int | None
) -> None:
    """``fill --points``: fill a grid from point observations, then say what was written.

    ``unsupported``: the options that cannot go with ``--points``, and whether each was given.
    """
    from sparsediff.data.io import open as open_data
    from sparsediff.filling.points import fill_points_command
    from sparsediff.filling.summary import flag_counts, summary_line

    given = [name for name, on in unsupported.items() if on]
    if given:
        raise click.UsageError(f"{', '.join(given)} cannot be used with --points")
    _check_threads(threads)
    written = fill_points_command(*args, **kw)
    click.echo(f"filled data written to {written}")
    click.echo(summary_line(flag_counts(open_data(written))), err=True)


def _check_fill_target(
    output: Path,
    array_job: tuple[bool, str | None],
    fits: bool,
    overwrite: bool,
    region_size: int,
) -> None:
    """Check ``fill``'s OUTPUT and options before anything is loaded; lock OUTPUT.

    ``array_job`` is ``(--init, --region)``; ``fits``: ``--adapt-steps`` or
    ``--calibrate`` was asked for.
    """
    from sparsediff.atomic import check_writable
    from sparsediff.errors import InputError
    from sparsediff.lock import hold
    from sparsediff.paths import check_loops

    init_job, task_region = array_job
    check_loops(output)
    if (init_job or task_region) and output.suffix != ".zarr":
        raise InputError(f"array jobs (--init, --region) write Zarr stores; {output} is not one")
    if init_job and task_region:
        raise InputError("--init creates the store, --region fills part of it: pass one")
    if (init_job or task_region) and fits:
        raise InputError(
            "array jobs (--init, --region) fill with the model as given: run --adapt-steps / "
            "--calibrate in a single fill, or pass a model that is already adapted"
        )
    if not task_region:
        # one writer per target for the whole run, then checks of the target: nothing is
        # loaded or written for a bad one (array tasks lock their range instead)
        click.get_current_context().with_resource(hold(output))
        if (output.exists() or output.is_symlink()) and not overwrite:
            raise InputError(f"{output} already exists; pass --overwrite to replace it")
    if region_size < 1:
        raise InputError(f"--region-size must be a positive integer, got {region_size}")
    check_writable(output.parent)


def _dask_client(scheduler: str | None) -> Any:
    """A dask.distributed client for ``--scheduler`` (``None`` without one)."""
    if not scheduler:
        return None
    from dask.distributed import Client, LocalCluster

    if scheduler.startswith("local:"):
        n = int(scheduler.split(":", 1)[1])
        return Client(LocalCluster(n_workers=n, threads_per_worker=1, processes=True))
    return Client(scheduler)


def _write_fill(
    ds: Any,
    model: Any,
    output: Path,
    store: tuple[int, bool, bool],
    kw: dict[str, Any],
    history: str,
) -> None:
    """Fill and write OUTPUT: a Zarr store region by region, other formats in one go.

    ``store`` is ``(region_size, resume, overwrite)``.
    """
    import sparsediff
    from sparsediff.filling.store import fill_to_zarr

    region_size, resume, overwrite = store
    if output.suffix == ".zarr":
        fill_to_zarr(
            ds,
            model,
            output,
            region_size=region_size,
            resume=resume,
            overwrite=overwrite,
            history=history,
            **kw,
        )
    else:  # lazy: the write computes it once
        filled = sparsediff.fill(ds, model, progress=True, persist=False, **kw)
        sparsediff.write(filled, output, mode="w" if overwrite else "w-", history=history)


def _array_job(
    ds: Any,
    model: Any,
    output: Path,
    task_region: str | None,
    region_size: int,
    overwrite: bool,
    kw: dict[str, Any],
    history: str,
) -> None:
    """``fill --init`` or ``fill --region``: one step of an array job (see filling.array_job)."""
    from sparsediff.filling.array_job import fill_region, init_store

    if task_region is None:
        init_store(
            ds, model, output, region_size=region_size, overwrite=overwrite, history=history, **kw
        )
        click.echo(f"array-job store created at {output}; fill it with --region tasks")
        return
    ((dim, sl),) = _parse_region((task_region,)).items()
    fill_region(
        ds, model, output, sl, region_dim=dim, region_size=region_size, history=history, **kw
    )
    click.echo(f"filled {task_region} of {output}")


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="For a dataset: count as invalid what this model's fill leaves invalid "
    "(its land mask); default: points missing at every time step.",
)
@_errors
def info(path: Path, model_path: Path | None) -> None:
    """Describe a saved model, or the gaps of a dataset (land counted as invalid, not gap)."""
    import sparsediff

    if (path / "config.json").is_file() or (path / "model" / "config.json").is_file():
        model = sparsediff.load(path)  # a model directory, or a run directory holding one
        spec = model.spec
        click.echo(f"sparsediff model at {path}")
        click.echo(f"  method:     {spec.mode} (first guess: {spec.first_guess})")
        click.echo(f"  variables:  {', '.join(model.variables)}")
        click.echo(f"  dims:       {', '.join(model.dims)}  window {spec.window}")
        click.echo(f"  units:      {json.dumps(spec.units)}")
        if spec.n_context:
            click.echo(f"  context:    {spec.context_dim} {spec.context_offsets}")
            if spec.guess_context:
                fitted = model.provenance.get("context_weight")
                how = fitted or f"context weight {spec.context_weight:g}, as configured"
                click.echo(f"  guess:      space-time; {how}")
        click.echo(f"  spread:     {spec.calibration}")
        for name, net in model.nets.items():
            n = sum(p.numel() for p in net.parameters())
            click.echo(f"  {name + ':':<11} {n:,} parameters")
        prov = model.provenance
        click.echo(f"  trained:    {prov.get('trained_at')} on {prov.get('data_source')}")
        for stage, k in prov.get("kept_best", {}).items():  # run.keep_best restored a stage
            click.echo(
                f"  kept best:  {stage} weights of step {k['step']} (val_rmse {k['val_rmse']:.4g}; "
                f"the last, step {k['last_step']}: {k['last_val_rmse']:.4g})"
            )
        return
    ds = sparsediff.open(path)
    click.echo(f"dataset {path}")
    click.echo(str(ds))
    click.echo("")
    summary = ds.sparsediff.gap_summary(model=model_path)
    if model_path is not None:
        rule = f"invalid as in a fill with {model_path}"
    else:
        from sparsediff.data.axes import time_dim

        along = time_dim(ds)
        rule = f"invalid: missing at every {along!r} step" if along else "no time dim: no invalid"
    click.echo(f"gap summary ({rule}; gap_fraction: share of non-invalid points that are gaps):")
    click.echo(str(summary))


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_out"),
    show_default=True,
    help="Where to write fill_sparsediff.zarr (the fill), example_fill.png, rmse_by_method.png, "
    "calibration.png (spread against error), gap_spectra.png (power in the gaps per "
    "wavenumber) and scores.csv.",
)
@click.option(
    "--train",
    "train_now",
    is_flag=True,
    help="Train the demo model now instead of using the shipped weights.",
)
@click.option("--threads", default=1, show_default=True, help="torch CPU threads.")
@_errors
def demo(out: Path, train_now: bool, threads: int) -> None:
    """Fill real OSTIA SST gaps end to end and score the fill against the classical fills."""
    from sparsediff.demo import run_demo

    _check_threads(threads, apply=False)

    run_demo(out, train=train_now, threads=threads, echo=click.echo)


@main.command(
    cls=_SamplingCommand,
    defaults="sparsediff.evaluation.evaluate.DEFAULT_OPTIONS",
    help_overrides={"seed": "Seed of the gaps and the noise."},
)
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--holdout",
    default="boxes:0.3",
    show_default=True,
    help="Gap pattern hidden among observed points: mcar|boxes|stripes|swath|cloud:FRACTION.",
)
@click.option(
    "--baselines",
    default="time_mean,linear,laplace,laplace_eof,dineof",  # = DEFAULT_BASELINES (tested)
    show_default=True,
    help="Comma-separated baselines, classical or null ensembles (guess_noise, condsim); "
    "'none' for none.",
)
@click.option(
    "--region",
    multiple=True,
    metavar="DIM=START:STOP",
    help="Hide and score only in this index range (repeatable), e.g. time=48:54.",
)
@click.option("--invalid", default=None, help="Invalid mask: variable name or file.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write scores.csv, example_fill.png, rmse_by_method.png and gap_spectra.png there.",
)
@click.option(
    "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)."
)
@_fit_options
@_errors
def evaluate(
    model_path: Path,
    input_path: Path,
    holdout: str,
    baselines: str,
    region: tuple[str, ...],
    invalid: str | None,
    device: str,
    out: Path | None,
    threads: int | None,
    adapt_steps: int,
    calibrate: str,
    **sampling: Any,
) -> None:
    """Hide HOLDOUT gaps in INPUT, fill them with MODEL and baselines, print the scores.

    The sampling options (--members to --compile) are the fields of FillOptions,
    sparsediff.evaluate's options in Python, with the same defaults (8 members).
    Warns when the scored region overlaps the data the model was trained on.
    """
    import pandas as pd

    from sparsediff.devices import resolve_device

    _check_threads(threads)
    resolve_device(device)

    import sparsediff
    from sparsediff.data.gaps import parse_pattern
    from sparsediff.evaluation.evaluate import evaluate as run_evaluate
    from sparsediff.method.options import FillOptions

    options = FillOptions.fold(None, **sampling)
    parse_pattern(holdout)  # a bad spec fails before anything is loaded
    regions = _parse_region(region)
    names = "" if baselines.strip().lower() == "none" else baselines
    model = sparsediff.load(model_path)
    ds = sparsediff.open(input_path)
    table = run_evaluate(
        ds,
        model,
        holdout=holdout,
        baselines=names,
        region=regions or None,
        invalid=invalid,
        device=device,
        out=out,
        adapt=adapt_steps or None,
        calibrate=calibrate,
        options=options,
    )
    for note in table.attrs.get("notes", []):
        click.echo(f"note: {note}")
    members, sampler = options.members, options.sampler
    steps = options.at_steps(model.spec.spread_steps).steps
    click.echo(
        f"held-out {holdout} (seed {options.seed}), {members} members x {steps} {sampler} "
        "steps; scores on held-out points only"
    )
    with pd.option_context("display.width", 200, "display.max_columns", None):
        click.echo(table.drop(columns=["n_points"]).to_string(index=False, float_format="%.4g"))
    if out is not None:
        click.echo(f"scores and figures written to {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
