"""The registry of baselines: name -> class."""

from __future__ import annotations

from typing import Any

from sparsediff.errors import ConfigError
from sparsediff.evaluation.baselines.base import Baseline
from sparsediff.evaluation.baselines.condsim import CondSim
from sparsediff.evaluation.baselines.dineof import DINEOF
from sparsediff.evaluation.baselines.guess_noise import GuessNoise
from sparsediff.evaluation.baselines.laplace import Laplace
from sparsediff.evaluation.baselines.laplace_eof import LaplaceEOF
from sparsediff.evaluation.baselines.laplace_seasonal import LaplaceSeasonal
from sparsediff.evaluation.baselines.linear import LinearInterp
from sparsediff.evaluation.baselines.setting import NEEDS, Setting, unmet
from sparsediff.evaluation.baselines.time_mean import TimeMean
from sparsediff.evaluation.fillers import Filler

__all__ = ["BASELINES", "baseline_class", "for_evaluation", "get_baseline", "register_baseline"]

Registered = type[Baseline] | type[Filler]

BASELINES: dict[str, Registered] = {}
"""Registry: baseline name -> class (a `Baseline`, or a
[`Filler`][sparsediff.evaluation.fillers.Filler] for an ensemble baseline).

Every class has a ``name``, the ``needs`` it declares
([`setting`][sparsediff.evaluation.baselines.setting]) and a classmethod
``for_evaluation(setting, notes)`` that builds the instance an evaluation runs."""


def register_baseline(cls: Registered, *, replace: bool = False) -> Registered:
    """Add a baseline class to [`BASELINES`][BASELINES] under its ``name``.

    Usable as a class decorator. Once registered, the name works everywhere a
    baseline name does (``evaluate(baselines=...)``, ``sparsediff evaluate
    --baselines``, [`get_baseline`][get_baseline]).

    Parameters
    ----------
    cls
        A `Baseline` subclass, or a
        [`Filler`][sparsediff.evaluation.fillers.Filler] subclass with a
        class-level ``name``, ``needs`` and ``for_evaluation``.
    replace
        Allow replacing a registered class of the same name.

    Returns
    -------
    type
        ``cls`` itself.

    Raises
    ------
    ConfigError
        A class that is neither, has no name, declares an unknown need, or
        whose name is taken (without ``replace``).
    """
    if not isinstance(cls, type) or not issubclass(cls, Baseline | Filler):
        raise ConfigError(f"a baseline must be a Baseline or Filler subclass, got {cls!r}")
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"baseline class {cls.__name__} has no name")
    needs = getattr(cls, "needs", None)
    if not isinstance(needs, frozenset) or not callable(getattr(cls, "for_evaluation", None)):
        raise ConfigError(
            f"baseline class {cls.__name__} must declare needs (a frozenset) and for_evaluation"
        )
    bad = sorted(set(needs) - set(NEEDS))
    if bad:
        raise ConfigError(f"baseline {name!r} declares unknown needs {bad}; known: {NEEDS}")
    if name in BASELINES and BASELINES[name] is not cls and not replace:
        raise ConfigError(f"a baseline named {name!r} is already registered")
    BASELINES[name] = cls
    return cls


def baseline_class(name: str) -> Registered:
    """The registered class of baseline ``name`` (checks a name without building it).

    Parameters
    ----------
    name
        A name of [`BASELINES`][BASELINES].

    Returns
    -------
    type
        The class.

    Raises
    ------
    ConfigError
        An unknown name.
    """
    try:
        return BASELINES[name]
    except KeyError:
        raise ConfigError(
            f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}"
        ) from None


def get_baseline(name: str, **kwargs: Any) -> Baseline | Filler:
    """Build a baseline by its registry name.

    Parameters
    ----------
    name
        One of [`BASELINES`][BASELINES] (``time_mean``, ``linear``, ``laplace``,
        ``laplace_seasonal``, ``laplace_eof``, ``dineof``, ``guess_noise``, ``condsim``, and any
        registered since).
    **kwargs
        Passed to the class.

    Returns
    -------
    Baseline or Filler
        The configured baseline.

    Raises
    ------
    ConfigError
        An unknown name or an option the baseline does not take.
    """
    cls = baseline_class(name)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"bad options for baseline {name!r}: {err}") from None


def for_evaluation(name: str, setting: Setting, notes: list[str]) -> Baseline | Filler | None:
    """The instance of baseline ``name`` an evaluation runs, or ``None`` (skipped, noted).

    A baseline whose declared ``needs`` the ``setting`` does not meet is
    skipped with a note saying which; otherwise its class's
    ``for_evaluation`` builds it.

    Parameters
    ----------
    name
        A registered name.
    setting
        What the evaluation offers.
    notes
        The evaluation's notes, appended to.

    Returns
    -------
    Baseline, Filler or None

    Raises
    ------
    ConfigError
        An unknown name.
    """
    cls = baseline_class(name)
    reason = unmet(getattr(cls, "needs", frozenset()), setting)
    if reason is not None:
        notes.append(f"skipped baseline {name!r}: {reason}")
        return None
    made = getattr(cls, "for_evaluation")(setting, notes)  # noqa: B009 (either kind of class)
    if made is None:
        return None
    if not isinstance(made, Baseline | Filler):
        raise ConfigError(
            f"baseline {name!r}: for_evaluation returned {type(made).__name__}, "
            "not a Baseline or Filler"
        )
    return made


for _cls in (
    TimeMean,
    LinearInterp,
    Laplace,
    LaplaceSeasonal,
    LaplaceEOF,
    DINEOF,
    GuessNoise,
    CondSim,
):
    register_baseline(_cls)  # the built-ins meet the same contract as any added baseline
