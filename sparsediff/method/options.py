"""How to sample a fill: [`FillOptions`][FillOptions], the one place fill options are defined.

Each field carries its type, its default and (``metadata["help"]``) a
one-line help. From them come the ``sparsediff fill`` command-line options
(``--members``, ``--cfg-scale``, ... ; and those of ``sparsediff evaluate``
that [`sparsediff.evaluate`][sparsediff.evaluation.evaluate.evaluate] accepts) and the provenance
attribute of a
filled dataset ([`FillOptions.record`][FillOptions.record]). The public functions
(``sparsediff.fill``, ``sparsediff.evaluate``, ``fill_to_zarr``, ...) take one
``options=FillOptions(...)`` or the same fields as keyword arguments
([`FillKeywords`][FillKeywords]), folded into one ``FillOptions`` by
[`FillOptions.fold`][FillOptions.fold]; a test fails when any of these drift apart
from the fields.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Self, TypedDict

from sparsediff.diffusion.samplers import SAMPLERS
from sparsediff.errors import ConfigError
from sparsediff.rng import check_seed

__all__ = ["FillKeywords", "FillOptions", "fill_option_fields", "option_type"]

_MAX_SEED = 2**63 - 1

#: Network precisions of a fill (`FillOptions.precision`).
PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class FillOptions:
    """How to sample; the defaults are what a user should never have to touch.

    Attributes
    ----------
    members
        Ensemble size K.
    steps
        Solver steps; ``None`` (the default): the steps the model's spread
        factors were fitted with (``spread_steps`` of its spec:
        ``calibration.steps`` of the training config, 6 by default; 16 for
        models calibrated before the field). Other steps keep the RMSE (the
        ensemble mean is the regression), but the samples differ from those
        the factors were fitted on: a model calibrated at 16 steps and filled
        at 6 gives the demo case spread/skill 1.18 instead of 1.07 and a
        CRPS 0.7 % higher (8 members), where calibrated at 6 it gives 1.07 and
        0.05 % (the results page, "Sampler steps").
    sampler
        ``"dpmpp_2m"``, ``"heun"``, ``"euler"``, ``"ddim"`` or ``"ancestral"``.
    seed
        Global seed (``0 <= seed < 2**63``); each window's noise is keyed by
        (seed, its position, member).
    guidance
        Strength of decoder-gradient data-consistency guidance (0 = off).
    cfg_scale
        Classifier-free guidance scale (1 = plain conditional sampling).
    sigma_min, sigma_max
        Noise range of the Karras schedule.
    batch_size
        Rows per model call: ``batch_size // members`` windows with all their
        members (at least one window); ``None`` (the default): as many as a
        quarter of the available memory holds (see
        [`rows_per_call`][sparsediff.filling.block.rows_per_call]). Changes
        results by float rounding only.
    precision
        ``"float32"``, or ``"bfloat16"``: the networks run under
        `torch.autocast` in bfloat16 (for GPUs with bf16 tensor cores;
        the fill moves by about 1 % of the data's spread, see the benchmarks page).
    compile
        ``"off"``, or a `torch.compile` backend (``"inductor"``, its
        default one; ``"aot_eager"`` captures the graphs without generating
        code) for the networks of the fill.
    """

    members: int = field(default=1, metadata={"help": "Ensemble members."})
    steps: int | None = field(
        default=None,
        metadata={"help": "Sampler steps (default: those the model's spread was calibrated at)."},
    )
    sampler: str = field(
        default="dpmpp_2m",
        metadata={"help": "Sampler: dpmpp_2m, heun, euler, ddim or ancestral."},
    )
    seed: int = field(default=0, metadata={"help": "Seed (same seed, same bytes)."})
    guidance: float = field(
        default=0.0, metadata={"help": "Data-consistency guidance strength (0: off)."}
    )
    cfg_scale: float = field(
        default=1.0, metadata={"help": "Classifier-free guidance scale (1: off)."}
    )
    sigma_min: float = field(
        default=0.002, metadata={"help": "Smallest noise level of the sampling schedule."}
    )
    sigma_max: float = field(
        default=80.0, metadata={"help": "Largest noise level of the sampling schedule."}
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Rows per model call (windows x members; default: from the free "
            "memory); float rounding only."
        },
    )
    precision: str = field(
        default="float32",
        metadata={"help": "Network precision: float32 or bfloat16 (autocast)."},
    )
    compile: str = field(
        default="off",
        metadata={"help": "torch.compile backend for the networks (off, inductor, ...)."},
    )

    def __post_init__(self) -> None:
        fields = dataclasses.fields(self)
        for f in fields:  # the integers first, then the numbers
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            if option_type(f) is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{f.name} must be an integer, got {value!r}")
        for f in fields:
            value = getattr(self, f.name)
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if option_type(f) is float and not is_number:
                raise ConfigError(f"{f.name} must be a number, got {value!r}")
        if not isinstance(self.sampler, str) or self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {sorted(SAMPLERS)}")
        if self.members < 1:
            raise ConfigError(f"members must be >= 1, got {self.members}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}"
            )
        if not isinstance(self.compile, str) or not self.compile:
            raise ConfigError(
                f"compile must be 'off' or a torch.compile backend, got {self.compile!r}"
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.seed <= _MAX_SEED:
            raise ConfigError(f"seed must be in [0, 2**63), got {self.seed}")
        if self.guidance < 0:
            raise ConfigError(f"guidance must be >= 0, got {self.guidance}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(
                f"need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}"
            )

    def record(self) -> dict[str, Any]:
        """Every option as a JSON-able dict (the provenance of a fill)."""
        return dataclasses.asdict(self)

    def at_steps(self, spread_steps: int) -> Self:
        """These options with ``steps`` set: ``spread_steps`` (a model's) when not given."""
        return self if self.steps is not None else dataclasses.replace(self, steps=spread_steps)

    @classmethod
    def fold(
        cls, options: FillOptions | None, /, *, defaults: Self | None = None, **keywords: Any
    ) -> Self:
        """The options of a call: ``options``, or the fields given as keywords.

        The one place where a public function's ``options=`` argument and its
        option keywords (``members=``, ``seed=``, ...) become one ``FillOptions``.

        Parameters
        ----------
        options
            The options given as an object (``None``: not given).
        defaults
            What the keywords not given take (default ``FillOptions()``; e.g.
            ``sparsediff.evaluate``'s 8 members); unused when ``options`` is given.
        **keywords
            Fields of ``FillOptions`` given one by one (a numpy integer ``seed``
            is taken as an int).

        Returns
        -------
        FillOptions

        Raises
        ------
        ConfigError
            A keyword that is not a field, a field given both in ``options``
            and as a keyword, ``options`` that are not a ``FillOptions``, or a
            bad value.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(k for k in keywords if k not in names)
        if unknown:
            raise ConfigError(
                f"unknown fill option(s) {', '.join(unknown)}; the options are {', '.join(names)}"
            )
        if options is not None:
            if not isinstance(options, cls):
                raise ConfigError(f"options must be a FillOptions, got {type(options).__name__}")
            if keywords:
                twice = ", ".join(sorted(keywords))
                raise ConfigError(
                    f"{twice} given both in options= and as keyword(s); give each option once "
                    f"(e.g. dataclasses.replace(options, {sorted(keywords)[0]}=...))"
                )
            return options
        if "seed" in keywords:
            keywords["seed"] = check_seed(keywords["seed"])
        return dataclasses.replace(defaults if defaults is not None else cls(), **keywords)


class FillKeywords(TypedDict, total=False):
    """The fields of [`FillOptions`][FillOptions] as keyword arguments (all optional).

    The type of the ``**keywords`` of the functions that take ``options=``,
    so that ``fill(ds, model, members=8)`` is checked like
    ``fill(ds, model, options=FillOptions(members=8))``; a test keeps it equal
    to the fields.
    """

    members: int
    steps: int | None
    sampler: str
    seed: int
    guidance: float
    cfg_scale: float
    sigma_min: float
    sigma_max: float
    batch_size: int | None
    precision: str
    compile: str


def fill_option_fields() -> list[dataclasses.Field[Any]]:
    """The fields of [`FillOptions`][FillOptions], in order (the CLI derives its options from them).

    Returns
    -------
    list of dataclasses.Field
        One per option, with its ``name``, ``default`` and ``metadata["help"]``;
        its type is [`option_type`][option_type].
    """
    return list(dataclasses.fields(FillOptions))


def option_type(f: dataclasses.Field[Any]) -> type:
    """The type of a field of [`FillOptions`][FillOptions]: ``int``, ``float`` or ``str``.

    An optional field (``int | None``) has the type of its values.
    """
    return _TYPES[f.name]


def _value_type(hint: Any) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


_TYPES: dict[str, type] = {
    name: _value_type(hint) for name, hint in typing.get_type_hints(FillOptions).items()
}
