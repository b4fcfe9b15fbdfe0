"""How to sample a fill: [`FillOptions`][FillOptions], the one place fill options are defined.

Each field carries its type, its default and (``metadata["help"]``) a
one-line help. From them come the ``sparsediff fill`` command-line options
(``--members``, ``--cfg-scale``, ... ; and those of ``sparsediff evaluate``
that [`sparsediff.evaluate`][sparsediff.evaluation.evaluate.evaluate] accepts) and the provenance
attribute of a
filled dataset ([`FillOptions.record`][FillOptions.record]). ``sparsediff.fill`` spells them
out as keyword arguments (so that they show in its signature); a test fails
when any of these drift apart from the fields.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from sparsediff.diffusion.samplers import SAMPLERS
from sparsediff.errors import ConfigError

__all__ = ["FillOptions", "fill_option_fields", "option_type"]

_MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class FillOptions:
    """How to sample; the defaults are what a user should never have to touch.

    Attributes
    ----------
    members
        Ensemble size K.
    steps
        Solver steps (DPM-Solver++(2M) at 16 steps matches long ancestral
        sampling closely, see the benchmarks page).
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
        members (at least one window); changes results by float rounding only.
    """

    members: int = field(default=1, metadata={"help": "Ensemble members."})
    steps: int = field(default=16, metadata={"help": "Sampler steps."})
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
    batch_size: int = field(
        default=16,
        metadata={
            "help": "Windows x members per model call: larger is faster until memory runs "
            "out; results differ only in the last digits."
        },
    )

    def __post_init__(self) -> None:
        fields = dataclasses.fields(self)
        for f in fields:  # the integers first, then the numbers
            value = getattr(self, f.name)
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
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
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
    """The type of a field of [`FillOptions`][FillOptions]: ``int``, ``float`` or ``str``."""
    return _TYPES[f.name]


_TYPES: dict[str, type] = typing.get_type_hints(FillOptions)
