"""How to sample a fill: :class:`FillOptions`, the one place fill options are defined.

``sparsediff.fill``'s keyword arguments, the ``sparsediff fill`` command-line
options and the provenance attribute of a filled dataset are all derived from
the fields of this dataclass (see :func:`fill_option_fields`), so they cannot
drift apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sparsediff.diffusion.samplers import SAMPLERS
from sparsediff.errors import ConfigError

__all__ = ["FillOptions", "fill_option_fields"]

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
        Windows per model call (changes results by float rounding only).
    """

    members: int = 1
    steps: int = 16
    sampler: str = "dpmpp_2m"
    seed: int = 0
    guidance: float = 0.0
    cfg_scale: float = 1.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    batch_size: int = 16

    def __post_init__(self) -> None:
        for name in ("members", "steps", "seed", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        for name in ("guidance", "cfg_scale", "sigma_min", "sigma_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, got {value!r}")
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
    """The fields of :class:`FillOptions` (for the CLI and the API to derive theirs)."""
    return list(dataclasses.fields(FillOptions))
