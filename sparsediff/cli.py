"""The ``sparsediff`` command line: demo, train, fill, evaluate, info.

Errors are one clear line on stderr and a non-zero exit; ``--debug`` shows the
traceback. Under ``torchrun`` the same commands run on every rank.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from sparsediff.errors import SparsediffError, SparsediffWarning

__all__ = ["main"]


def _check_threads(threads: int | None, *, apply: bool = True) -> None:
    """``--threads`` must be a positive integer (torch's own error is not one line)."""
    from sparsediff.errors import ConfigError

    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be a positive integer, got {threads}")
    if threads is not None and apply:
        import torch

        torch.set_num_threads(threads)


def _invalid_options(
    invalid: str | None, invalid_below: float | None, invalid_along: str | None
) -> dict[str, Any]:
    """The invalid-mask keyword arguments of ``sparsediff.fill`` from the CLI options."""
    along: Any = "model"
    if invalid_along is not None:
        along = None if invalid_along.strip().lower() == "none" else invalid_along
    return {
        "invalid": invalid,
        "invalid_below": "model" if invalid_below is None else invalid_below,
        "invalid_along": along,
    }


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Our own warnings as one ``warning: ...`` line on stderr; others as Python shows them."""
    if issubclass(category, SparsediffWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        click.echo(warnings.formatwarning(message, category, filename, lineno, line), err=True)


def _errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn exceptions into one line + exit code unless --debug."""

    @click.option("--debug", is_flag=True, help="Show full tracebacks.")
    @functools.wraps(fn)
    def wrapper(*args: Any, debug: bool = False, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                if not debug:
                    warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except SparsediffError as e:
            if debug:
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as e:  # an unexpected failure: still one line
            if debug:
                raise
            click.echo(f"error: {type(e).__name__}: {e} (run with --debug for details)", err=True)
            sys.exit(1)

    return wrapper


class _OneLineGroup(click.Group):
    """The command group, with click's usage errors as one ``error: ...`` line too."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI; a usage error (bad option value, missing argument) is one line."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        except click.ClickException as e:
            ctx = getattr(e, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            click.echo(f"error: {e.format_message()}{hint}", err=True)
            sys.exit(e.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


def _sampling_options(
    target: Callable[..., Any], help_overrides: Mapping[str, str] | None = None
) -> list[click.Option]:
    """One click option per field of :class:`~sparsediff.method.options.FillOptions`.

    Only the fields that ``target`` (the Python function the command calls)
    takes as keyword arguments, each with the field's type and help and
    ``target``'s default: ``--members``, ``--steps``, ..., ``--batch-size``.
    """
    from sparsediff.method.options import fill_option_fields, option_type

    params = inspect.signature(target).parameters
    click_types = {int: click.INT, float: click.FLOAT, str: click.STRING}
    options = []
    for f in fill_option_fields():
        if f.name not in params:
            continue
        default = params[f.name].default
        options.append(
            click.Option(
                [f"--{f.name.replace('_', '-')}", f.name],
                type=click_types[option_type(f)],
                default=f.default if default is inspect.Parameter.empty else default,
                show_default=True,
                help=(help_overrides or {}).get(f.name, f.metadata["help"]),
            )
        )
    return options


class _SamplingCommand(click.Command):
    """A command with sampling options derived from ``FillOptions`` (:func:`_sampling_options`).

    They are added when the command is first used (its arguments parsed or
    its help shown), not when this module is imported: ``FillOptions`` lives
    on the torch side, and ``sparsediff --help`` or ``sparsediff info`` should
    not load torch.
    """

    def __init__(
        self,
        *args: Any,
        target: str,
        help_overrides: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._target = target
        self._help_overrides = help_overrides
        self._derived = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        """The command's parameters, the derived options after its arguments."""
        if not self._derived:
            module, _, name = self._target.rpartition(".")
            target = getattr(importlib.import_module(module), name)
            at = sum(isinstance(p, click.Argument) for p in self.params)
            self.params[at:at] = _sampling_options(target, self._help_overrides)
            self._derived = True
        return super().get_params(ctx)


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


@main.command(cls=_SamplingCommand, target="sparsediff.filling.fill.fill")
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
    points: Path | None = None,
    like: Path | None = None,
    value: str | None = None,
    strict: bool = False,
    **sampling: Any,
) -> None:
    """Fill the gaps of INPUT with MODEL and write OUTPUT (.zarr streams; .nc in one go).

    With --points OBS --like GRID (and no INPUT): fill GRID from point observations.
    The sampling options (--members to --batch-size) are the fields of
    sparsediff.method.options.FillOptions, with their defaults.
    """
    if points is not None or like is not None:  # sparsediff.filling.points
        from sparsediff.filling.points import fill_points_command

        _check_threads(threads)
        args = (model_path, input_path, output, points, like, value, strict, overwrite)
        kw = dict(sampling, device=device, check_values=not no_value_check)
        kw |= _invalid_options(invalid, invalid_below, invalid_along)
        click.echo(f"filled data written to {fill_points_command(*args, **kw)}")
        return
    if input_path is None or output is None:
        missing = "INPUT" if input_path is None else "OUTPUT"
        raise click.UsageError(f"Missing argument '{missing}' (or fill from --points and --like)")
    import sparsediff
    from sparsediff.atomic import check_writable
    from sparsediff.devices import resolve_device
    from sparsediff.errors import InputError

    # checks of the target first: nothing is loaded or written for a bad one
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise InputError(f"{output} already exists; pass --overwrite to replace it")
    if region_size < 1:
        raise InputError(f"--region-size must be a positive integer, got {region_size}")
    check_writable(output.parent)
    _check_threads(threads)
    resolve_device(device)
    from sparsediff.filling.fill import check_compatible
    from sparsediff.filling.store import fill_to_zarr

    model = sparsediff.load(model_path)
    ds = sparsediff.open(input_path)
    check_compatible(ds, model)
    client = None
    if scheduler:
        from dask.distributed import Client, LocalCluster

        if scheduler.startswith("local:"):
            n = int(scheduler.split(":", 1)[1])
            client = Client(LocalCluster(n_workers=n, threads_per_worker=1, processes=True))
        else:
            client = Client(scheduler)
    try:
        kw = dict(
            **sampling,
            device=device,
            check_values=not no_value_check,
            **_invalid_options(invalid, invalid_below, invalid_along),
        )
        if output.suffix == ".zarr":
            fill_to_zarr(
                ds,
                model,
                output,
                region_size=region_size,
                resume=resume,
                overwrite=overwrite,
                history=f"fill {input_path.name} with {model_path}",
                **kw,
            )
        else:
            filled = sparsediff.fill(ds, model, progress=True, **kw)
            sparsediff.write(
                filled,
                output,
                mode="w" if overwrite else "w-",
                history=f"fill {input_path.name} with {model_path}",
            )
    finally:
        if client is not None:
            client.close()
    click.echo(f"filled data written to {output}")


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@_errors
def info(path: Path) -> None:
    """Describe a saved model, or the gaps of a dataset."""
    import sparsediff

    if (path / "config.json").is_file() or (path / "model" / "config.json").is_file():
        model = sparsediff.load(path)  # a model directory, or a run directory holding one
        spec = model.spec
        click.echo(f"sparsediff model at {path}")
        click.echo(f"  method:     {spec.kind} (first guess: {spec.first_guess})")
        click.echo(f"  variables:  {', '.join(model.variables)}")
        click.echo(f"  dims:       {', '.join(model.dims)}  window {spec.window}")
        click.echo(f"  units:      {json.dumps(spec.units)}")
        if spec.n_context:
            click.echo(f"  context:    {spec.context_dim} {spec.context_offsets}")
        click.echo(f"  spread:     {spec.calibration}")
        for name, net in model.nets.items():
            n = sum(p.numel() for p in net.parameters())
            click.echo(f"  {name + ':':<11} {n:,} parameters")
        prov = model.provenance
        click.echo(f"  trained:    {prov.get('trained_at')} on {prov.get('data_source')}")
        return
    ds = sparsediff.open(path)
    click.echo(f"dataset {path}")
    click.echo(str(ds))
    click.echo("")
    click.echo("gap summary (share of non-invalid points that are gaps):")
    click.echo(str(ds.sparsediff.gap_summary()))


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_out"),
    show_default=True,
    help="Where to write fill_sparsediff.zarr, example_fill.png and scores.csv.",
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


def _parse_region(items: tuple[str, ...]) -> dict[str, slice]:
    """``("time=48:54", ...)`` -> ``{"time": slice(48, 54)}`` (one line error otherwise)."""
    from sparsediff.errors import InputError

    out: dict[str, slice] = {}
    for item in items:
        dim, sep, rng = item.partition("=")
        start, colon, stop = rng.partition(":")
        try:
            if not (sep and colon and dim.strip()):
                raise ValueError
            out[dim.strip()] = slice(
                int(start) if start.strip() else None, int(stop) if stop.strip() else None
            )
        except ValueError:
            raise InputError(
                f"bad --region {item!r}; expected DIM=START:STOP such as time=48:54"
            ) from None
    return out


@main.command(
    cls=_SamplingCommand,
    target="sparsediff.evaluation.evaluate.evaluate",
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
    default="time_mean,linear,laplace,dineof",
    show_default=True,
    help="Comma-separated classical baselines ('none' for none).",
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
    help="Write scores.csv, example_fill.png and rmse_by_method.png there.",
)
@click.option(
    "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)."
)
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
    **sampling: Any,
) -> None:
    """Hide HOLDOUT gaps in INPUT, fill them with MODEL and baselines, print the scores.

    The sampling options (--members to --batch-size) are the fields of
    sparsediff.method.options.FillOptions that sparsediff.evaluate takes, with
    its defaults.
    """
    import pandas as pd

    from sparsediff.devices import resolve_device

    _check_threads(threads)
    resolve_device(device)

    import sparsediff
    from sparsediff.data.gaps import parse_pattern
    from sparsediff.evaluation.evaluate import evaluate as run_evaluate

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
        **sampling,
    )
    for note in table.attrs.get("notes", []):
        click.echo(f"note: {note}")
    members, steps, sampler = sampling["members"], sampling["steps"], sampling["sampler"]
    click.echo(
        f"held-out {holdout} (seed {sampling['seed']}), {members} members x {steps} {sampler} "
        "steps; scores on held-out points only"
    )
    with pd.option_context("display.width", 200, "display.max_columns", None):
        click.echo(table.drop(columns=["n_points"]).to_string(index=False, float_format="%.4g"))
    if out is not None:
        click.echo(f"scores and figures written to {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
