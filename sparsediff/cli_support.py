"""The machinery of the ``sparsediff`` command line (``sparsediff.cli``).

One-line errors and warnings (`_errors`, `_OneLineGroup`), the sampling
options derived from [`FillOptions`][sparsediff.method.options.FillOptions] on
first use (`_SamplingCommand`), and the options and parsers several commands
share. Nothing here imports torch when the module is loaded.
"""

from __future__ import annotations

import functools
import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import click

from sparsediff.errors import SparsediffError, SparsediffWarning

__all__: list[str] = []


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


def _fit_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--adapt-steps`` and ``--calibrate``: fit the model to the input before filling."""
    f = click.option(
        "--calibrate",
        type=click.Choice(["auto", "validation", "input"]),
        default="auto",
        show_default=True,
        help="Spread calibration: the model's (fitted on its validation part), refitted "
        "on hidden observed points of INPUT, or auto: the model's for a grid, refitted "
        "on the observations for --points.",
    )(f)
    return click.option(
        "--adapt-steps",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Fine-tune the model's decoder this many steps on the observed points of INPUT "
        "before filling (0: off).",
    )(f)


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
    defaults: Any, help_overrides: Mapping[str, str] | None = None
) -> list[click.Option]:
    """One click option per field of [`FillOptions`][sparsediff.method.options.FillOptions].

    Each with the field's type and help and its value in ``defaults`` (the
    ``FillOptions`` the Python function the command calls takes when none are
    given): ``--members``, ``--steps``, ..., ``--compile``.
    """
    from sparsediff.method.options import fill_option_fields, option_type

    click_types = {int: click.INT, float: click.FLOAT, str: click.STRING}
    options = []
    for f in fill_option_fields():
        options.append(
            click.Option(
                [f"--{f.name.replace('_', '-')}", f.name],
                type=click_types[option_type(f)],
                default=getattr(defaults, f.name),
                show_default=True,
                help=(help_overrides or {}).get(f.name, f.metadata["help"]),
            )
        )
    return options


class _SamplingCommand(click.Command):
    """A command with sampling options derived from ``FillOptions`` (`_sampling_options`).

    They are added when the command is first used (its arguments parsed or
    its help shown), not when this module is imported: ``FillOptions`` lives
    on the torch side, and ``sparsediff --help`` or ``sparsediff info`` should
    not load torch. ``defaults``: the dotted name of the ``FillOptions`` (or of
    the class, for its defaults) whose values the options default to.
    """

    def __init__(
        self,
        *args: Any,
        defaults: str,
        help_overrides: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._defaults = defaults
        self._help_overrides = help_overrides
        self._derived = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        """The command's parameters, the derived options after its arguments."""
        if not self._derived:
            module, _, name = self._defaults.rpartition(".")
            defaults = getattr(importlib.import_module(module), name)
            if isinstance(defaults, type):  # the class: its defaults
                defaults = defaults()
            at = sum(isinstance(p, click.Argument) for p in self.params)
            self.params[at:at] = _sampling_options(defaults, self._help_overrides)
            self._derived = True
        return super().get_params(ctx)


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
