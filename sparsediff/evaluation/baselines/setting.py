"""What an evaluation offers a baseline, and what each baseline declares it needs.

A baseline class declares ``needs``, a set of `Need` words:

* ``"time"``: a record dim (``time_dim``) outside the spatial dims;
* ``"model"``: a trained model to start from (the evaluation's first model);
* ``"plane"``: exactly two spatial dims.

`sparsediff.evaluate` builds one [`Setting`][Setting] from its arguments
and, for each baseline named, either skips it with a note saying which need
is not met ([`unmet`][unmet]) or asks the class for the instance to run
(``for_evaluation(setting, notes)``).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sparsediff.evaluation.fillers import ModelFiller

__all__ = ["NEEDS", "Need", "Setting", "unmet"]

Need = Literal["time", "model", "plane"]

NEEDS: tuple[Need, ...] = ("time", "model", "plane")
"""Every word a baseline may declare in its ``needs``."""


@dataclass(frozen=True)
class Setting:
    """What an evaluation offers its baselines.

    Attributes
    ----------
    time_dim
        The record dim (``None``: none).
    has_time
        ``time_dim`` is a dim of the data outside the spatial dims.
    n_dims
        Number of spatial dims (2 or 3).
    seed
        The evaluation's seed.
    members
        Ensemble members per model (and per ensemble baseline).
    model_filler
        The first model of the evaluation as a filler (its fill options
        included), or ``None`` without a model.
    """

    time_dim: Hashable | None = "time"
    has_time: bool = False
    n_dims: int = 2
    seed: int = 0
    members: int = 1
    model_filler: ModelFiller | None = None


def unmet(needs: frozenset[str], setting: Setting) -> str | None:
    """Why a baseline with these ``needs`` cannot run in ``setting``, or ``None`` when it can.

    Parameters
    ----------
    needs
        The baseline's declared needs (words of [`NEEDS`][NEEDS]).
    setting
        What the evaluation offers.

    Returns
    -------
    str or None
        A short reason (``"it needs a time dim ('time') outside the spatial dims"``).
    """
    if "time" in needs and not setting.has_time:
        return f"it needs a time dim ({setting.time_dim!r}) outside the spatial dims"
    if "model" in needs and setting.model_filler is None:
        return "it needs a model to start from (model=)"
    if "plane" in needs and setting.n_dims != 2:
        return f"it needs exactly 2 spatial dims (the evaluation has {setting.n_dims})"
    return None
