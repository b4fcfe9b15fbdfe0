"""Classical gap-filling baselines (xarray in, xarray out).

Every baseline is a small class with a ``name`` and one method,
``fill(data, *, dims, invalid=None)``:

* ``dims`` are the spatial dims (2 or 3 of them); the other dims are "the
  record" — the time steps (``time_dim``) that the time-based methods pool,
  and any further dims (member, level...) that are filled independently;
* a point is **observed** when its value is finite (and not a ``_FillValue``)
  and it is not invalid, a **gap** when it is missing and not invalid, and
  **invalid** where ``invalid`` (a boolean mask, ``True`` = invalid, that
  broadcasts against the data; or a variable name for a Dataset) says so;
* the result has the same dims, coords and attrs; observed points are copied
  back bit for bit, invalid points are NaN, gaps hold the fill (NaN only
  where the method cannot say anything — documented per method).

Baselines
---------
`TimeMean`
    per-point mean over the observed times (climatology).
`LinearInterp`
    separable linear interpolation over the spatial dims (per slice).
`Laplace`
    time-mean first guess plus a harmonic (Laplace) interpolation of the
    anomaly, the classical "Laplace relaxation around climatology".
`LaplaceSeasonal` (``laplace_seasonal``, on request)
    the same around a per-point seasonal cycle (mean plus annual harmonics
    fitted to the observed steps; the record needs dates).
`LaplaceEOF` (``laplace_eof``)
    the same around the record's EOFs, their coefficients interpolated
    optimally per step from its observed points (the number of EOFs
    chosen by cross-validation).
`DINEOF`
    iterated truncated SVD of the time × space anomaly matrix, rank chosen by
    cross-validation (Beckers & Rixen 2003; Alvera-Azcárate et al. 2005).

Ensemble baselines (null ensembles)
-----------------------------------
These are [`Filler`][sparsediff.evaluation.fillers.Filler] objects (they return
several members), registered beside the classical ones:

`GuessNoise` (``guess_noise``)
    the evaluated model's own first guess plus independent Gaussian noise of
    the model's per-point spread: right pointwise spread, no structure.
`CondSim` (``condsim``)
    kriging-based conditional simulation (gstools ``CondSRF``) with a
    variogram fitted per slice on the shown points.

Registry
--------
`BASELINES` maps a name to its class. Each class declares what an
evaluation must offer it (``needs``: a time dim, a model, two spatial dims;
[`setting`][sparsediff.evaluation.baselines.setting]) and builds the instance an
evaluation runs (``for_evaluation``); `register_baseline` adds one, so a
new baseline is one new module.

The baselines load the data into memory (numpy); they are meant for
evaluation-sized arrays.
"""

from __future__ import annotations

from sparsediff.evaluation.baselines.base import Baseline
from sparsediff.evaluation.baselines.condsim import CondSim
from sparsediff.evaluation.baselines.dineof import DINEOF
from sparsediff.evaluation.baselines.guess_noise import GuessNoise, guess_only
from sparsediff.evaluation.baselines.laplace import Laplace
from sparsediff.evaluation.baselines.laplace_eof import LaplaceEOF
from sparsediff.evaluation.baselines.laplace_seasonal import LaplaceSeasonal
from sparsediff.evaluation.baselines.linear import LinearInterp
from sparsediff.evaluation.baselines.registry import (
    BASELINES,
    baseline_class,
    for_evaluation,
    get_baseline,
    register_baseline,
)
from sparsediff.evaluation.baselines.setting import Setting
from sparsediff.evaluation.baselines.time_mean import TimeMean

__all__ = [
    "BASELINES",
    "DINEOF",
    "Baseline",
    "CondSim",
    "GuessNoise",
    "Laplace",
    "LaplaceEOF",
    "LaplaceSeasonal",
    "LinearInterp",
    "Setting",
    "TimeMean",
    "baseline_class",
    "for_evaluation",
    "get_baseline",
    "guess_only",
    "register_baseline",
]
