"""The first guess's background chosen by the data: its climatology and its EOFs.

For ``data.climatology: auto`` (the per-point mean or a seasonal cycle) and
``data.eofs: auto`` (no EOF background, or one of [`EOF_CANDIDATES`][EOF_CANDIDATES]).

A seasonal climatology ([`sparsediff.data.seasonal`][sparsediff.data.seasonal]) helps
where the season moves the field between steps that the first guess reads
together, and costs where its five numbers per point are fitted on too few
years or the record has no cycle worth the name. Which holds is a property of
the data, so training measures it: both climatologies are fitted on the
training part, and the one whose **first guess** is better at points hidden
from the whole validation fields is kept — the guess the fill will start
from, with the context weight the model will use (fitted, for
``guess_context_weight: auto``), on the fields and the hide patterns of the
context-weight fit ([`fit_context_weight`][sparsediff.method.context_weight.fit_context_weight]).
The comparison is made in physical units (each candidate normalizes its own
anomalies).

Not the plain size of the anomalies: on OSTIA's validation winter the seasonal
anomalies were as large as the mean's (RMS 1.175 against 1.165 K), yet the
guess inside gaps was far better with the cycle removed, since the
neighbouring months then agree more.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import torch
import xarray as xr

from sparsediff.method import build_method
from sparsediff.method.context_weight import DRAWS, fit_context_weight
from sparsediff.training.config import TrainConfig
from sparsediff.training.data import PreparedData, prepare_data, whole_field_batches
from sparsediff.training.from_config import initial_spec, settings_of
from sparsediff.training.runtime import Runtime

__all__ = [
    "EOF_CANDIDATES",
    "HIDDEN_FIELDS",
    "choose_climatology",
    "choose_eofs",
    "guess_rmse",
    "prepare_with_climatology",
]

HIDDEN_FIELDS = 256
"""Fewest hidden validation fields (fields times draws) the choice is made on.

OSTIA's validation part is 5 months: with 8 draws each (40 hidden fields) the
seasonal cycle's guess RMSE over the mean's was 0.96, 1.05, 0.86 and 0.74 with
four seeds of the hide patterns (the mean chosen once); with 32 draws each, 0.90,
0.91, 0.86 and 0.86. The draws of the gap patterns, not the months, made the
noise."""


EOF_CANDIDATES: tuple[int, ...] = (4, 16)
"""The EOF counts ``data.eofs: auto`` weighs against none.

An EOF background helps where the record's leading patterns say more about a
step's gaps than its neighbouring steps do: on A1B's years in random order the
first guess with 16 EOFs was 18 % better at held-out boxes (the neighbours
carry nothing there), on A1B in order 5 %; on OSTIA's five validation months
4 EOFs made the guess worse (0.211 to 0.229 K), 16 worse still (0.265 K), so
none is kept there. Two candidates keep the choice under a minute there."""


def guess_rmse(
    cfg: TrainConfig,
    data: PreparedData,
    *,
    device: torch.device | str = "cpu",
    progress: bool | None = False,
    draws: int | None = None,
) -> float | None:
    """RMSE of the first guess at hidden points of the whole validation fields.

    With the context weight of ``cfg`` (the one fitted on the same points for
    ``guess_context_weight: auto``). Each field is hidden in ``draws`` draws;
    by default in at least [`DRAWS`][sparsediff.method.context_weight.DRAWS],
    and in as many as make [`HIDDEN_FIELDS`][HIDDEN_FIELDS] hidden fields in all. In the
    variables' units: the normalized RMSE pooled over the variables times
    their mean training standard deviation (exact for one variable; in log
    units for a ``log`` variable). ``None`` when there is no validation part
    or no point was hidden.
    """
    if data.validation is None:
        return None
    method = build_method(initial_spec(cfg, data.facts))
    fields = whole_field_batches(data.validation)  # one field per batch
    if draws is None:
        draws = max(DRAWS, math.ceil(HIDDEN_FIELDS / max(len(fields), 1)))
    fit = fit_context_weight(
        method, fields, settings_of(cfg), device=device, draws=draws, progress=progress
    )
    if fit is None:
        return None
    weight = fit.weight if cfg.guess_context_weight == "auto" else method.spec.context_weight
    scale = sum(data.stats[v].std for v in data.variables) / len(data.variables)
    return fit.rmse_at(weight) * scale


def _with_data(cfg: TrainConfig, **update: Any) -> TrainConfig:
    """``cfg`` with its ``data`` section updated."""
    return cfg.model_copy(update={"data": cfg.data.model_copy(update=update)})


def choose_climatology(
    cfg: TrainConfig,
    ds: xr.Dataset | None,
    data: PreparedData,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    progress: bool | None = False,
) -> tuple[TrainConfig, PreparedData]:
    """``data``, or the same data prepared with a seasonal climatology when its guess is better.

    Parameters
    ----------
    cfg, ds, rank, world_size
        As for [`prepare_data`][sparsediff.training.data.prepare_data], which made ``data``.
    data
        Data prepared with ``cfg``. Unless it is a ``seasonal_candidate``
        (``data.climatology: auto``, dates that can fit a cycle, a validation
        part) it is returned as it is.
    device, progress
        Where to compute the guesses; a progress bar over them.

    Returns
    -------
    (TrainConfig, PreparedData)
        The config with ``data.climatology`` set to what was chosen
        (``"mean"`` or ``"seasonal"``; unchanged without a ``climatology_dim``),
        so that the model's recorded config prepares the same data again, and
        the chosen data, whose ``climatology_note`` says which and why.
    """
    if cfg.data.climatology_dim is None:
        return cfg, data

    def resolved(kind: str) -> TrainConfig:
        return _with_data(cfg, climatology=kind)

    if not data.seasonal_candidate:
        return resolved("seasonal" if cfg.data.climatology == "seasonal" else "mean"), data
    other = prepare_data(resolved("seasonal"), ds, rank=rank, world_size=world_size)
    mean, cycle = (guess_rmse(cfg, x, device=device, progress=progress) for x in (data, other))
    if mean is None or cycle is None:
        note = "per-point mean (no hidden validation point to choose a seasonal cycle on)"
        return resolved("mean"), dataclasses.replace(data, climatology_note=note)
    pick = "seasonal" if cycle < mean else "mean"
    note = (
        f"{'seasonal cycle' if pick == 'seasonal' else 'per-point mean'}, chosen on hidden "
        f"validation points (first-guess RMSE {cycle:.4g} with the seasonal cycle, "
        f"{mean:.4g} with the mean)"
    )
    chosen = other if pick == "seasonal" else data
    return resolved(pick), dataclasses.replace(chosen, climatology_note=note)


def choose_eofs(
    cfg: TrainConfig,
    ds: xr.Dataset | None,
    data: PreparedData,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    progress: bool | None = False,
) -> tuple[TrainConfig, PreparedData]:
    """``data``, or the same data prepared with the EOF background whose guess is best.

    For ``data.eofs: auto`` with a ``climatology_dim`` and a validation part:
    each count of [`EOF_CANDIDATES`][EOF_CANDIDATES] (capped at the training
    steps less one, [`fit_eofs`][sparsediff.training.eof_fit.fit_eofs]) is
    prepared on top of ``cfg``'s climatology, and the first guess's
    [`guess_rmse`][guess_rmse] on the same hidden validation points picks the
    count, none (``0``, the data as they are) included. Otherwise
    ``data`` is returned as it is, with ``"auto"`` resolved to ``0``.

    Returns
    -------
    (TrainConfig, PreparedData)
        The config with ``data.eofs`` set to the count chosen, and the chosen
        data; the choice and its scores are appended to ``climatology_note``
        (the model's provenance).
    """

    def resolved(k: int) -> TrainConfig:
        return _with_data(cfg, eofs=k)

    if cfg.data.eofs != "auto":
        return cfg, data
    if cfg.data.climatology_dim is None or data.validation is None:
        return resolved(0), data
    scores: dict[int, float] = {}
    best = data  # only the best candidate's data are kept
    for k in (0, *EOF_CANDIDATES):
        x = data if k == 0 else prepare_data(resolved(k), ds, rank=rank, world_size=world_size)
        rmse = guess_rmse(resolved(k), x, device=device, progress=progress)
        if rmse is None:
            return resolved(0), data
        if not scores or rmse < min(scores.values()):
            best = x
        scores[k] = rmse
    pick = min(scores, key=lambda k: scores[k])
    tried = ", ".join(f"{scores[k]:.4g} with {k}" for k in scores)
    note = (
        f"{data.climatology_note}; EOF background: {pick} EOFs, chosen on hidden "
        f"validation points (first-guess RMSE {tried})"
    )
    return resolved(pick), dataclasses.replace(best, climatology_note=note)


def prepare_with_climatology(
    cfg: TrainConfig, ds: xr.Dataset | None, rt: Runtime
) -> tuple[TrainConfig, PreparedData]:
    """The training data, with the guess's background chosen by the data, and the resolved config.

    [`prepare_data`][sparsediff.training.data.prepare_data], then
    [`choose_climatology`][choose_climatology] and [`choose_eofs`][choose_eofs].
    The choice is printed to stderr (rank 0) when the config has a climatology.
    """
    shard = {"rank": rt.rank, "world_size": rt.world_size}
    data = prepare_data(cfg, ds, **shard)
    shown = cfg.run.progress if rt.is_main else False
    cfg, data = choose_climatology(cfg, ds, data, **shard, device=rt.device, progress=shown)
    cfg, data = choose_eofs(cfg, ds, data, **shard, device=rt.device, progress=shown)
    if rt.is_main and data.climatology_note:
        print(f"climatology: {data.climatology_note}", file=sys.stderr, flush=True)
    return cfg, data
