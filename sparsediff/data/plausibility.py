"""Are the data in the units and scale the model was trained on? Checked against its stats.

A variable without a ``units`` attribute cannot be checked by name: °C data
given to a model trained in kelvin would fill the gaps with values near 300
beside observations near 28. So the observed values themselves are compared
with the training statistics ([`Stats`][sparsediff.data.stats.Stats]; for a
model with a climatology these are statistics of the anomalies, so the data's
anomalies from that climatology are compared). With ``z`` the value in
training standard deviations from the training mean:

* **refuse** ([`CompatibilityError`][sparsediff.errors.CompatibilityError]) when the median
  ``|z|`` of the checked values exceeds `REFUSE_MEDIAN_Z` (10): most
  observations are then impossible for the model, which is what another unit
  or scale looks like (°C for K gives hundreds, hPa for Pa about a hundred);
* **warn** ([`SparsediffWarning`][sparsediff.errors.SparsediffWarning]) when more than
  `WARN_SHARE` (1 %) of them lie beyond `FAR_Z` (6) standard
  deviations;
* **warn** when the smallest or largest observed value of the whole input
  lies beyond `EXTREME_Z` (20) standard deviations from anything the
  model saw (the training mean plus the climatology's range): a spike, or a
  fill value the file does not declare.

The first two look at a **sample**, so a large lazy input is not read twice:
at most `MAX_STEPS` positions spread evenly over the batch dims (time,
level, ...), each a whole spatial field thinned by a stride to at most
`MAX_POINTS` points in all. Only the chunks holding those fields are
read. The extremes come from the pass over the data that classifies the
points ([`sparsediff.data.masks.states_and_range`][sparsediff.data.masks.states_and_range]), at no
extra read.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import dask
import numpy as np
import xarray as xr

from sparsediff.data import seasonal
from sparsediff.data.climatology import anomalies
from sparsediff.data.masks import MissingRule
from sparsediff.data.stats import Stats, normalize_array
from sparsediff.errors import CompatibilityError

__all__ = [
    "EXTREME_Z",
    "FAR_Z",
    "MAX_POINTS",
    "MAX_STEPS",
    "REFUSE_MEDIAN_Z",
    "WARN_SHARE",
    "ValueReport",
    "check_values",
    "range_warnings",
    "value_reports",
]

#: Refuse when the median |z| of the checked observations exceeds this.
REFUSE_MEDIAN_Z = 10.0
#: A value this many training standard deviations from the training mean is far.
FAR_Z = 6.0
#: Warn when more than this share of the checked observations is far.
WARN_SHARE = 0.01
#: Warn when the whole input's extremes lie this far beyond what training saw.
EXTREME_Z = 20.0
#: Batch positions (time steps, levels, ...) the sample check reads at most.
MAX_STEPS = 4
#: Points the sample check looks at, at most, over all its positions.
MAX_POINTS = 1 << 20

_SAMPLE = "_sample"


@dataclass(frozen=True)
class ValueReport:
    """What the sample check found for one variable.

    Attributes
    ----------
    variable
        The variable.
    checked
        Observed values looked at.
    steps
        Batch positions they come from.
    median_z
        Median of ``|z|`` (training standard deviations from the training mean).
    far_share
        Share of the checked values with ``|z| > FAR_Z``.
    median_value
        Median of the checked values (of their anomalies, for a climatology model).
    """

    variable: str
    checked: int
    steps: int
    median_z: float
    far_share: float
    median_value: float

    @property
    def refused(self) -> bool:
        """Whether the values are clearly in another unit or scale."""
        return self.median_z > REFUSE_MEDIAN_Z

    @property
    def warned(self) -> bool:
        """Whether many of the values lie far outside the training range."""
        return self.far_share > WARN_SHARE


def _sample_indexers(
    sizes: Mapping[Hashable, int], batch: Sequence[Hashable], spatial: Sequence[Hashable]
) -> tuple[dict[Hashable, object], int]:
    """Indexers of the sample: a few batch positions (pointwise), strided spatial dims."""
    index: dict[Hashable, object] = {}
    n_steps = 1
    if batch:
        shape = tuple(int(sizes[d]) for d in batch)
        total = math.prod(shape)
        flat = np.unique(np.linspace(0, total - 1, min(total, MAX_STEPS)).round().astype(int))
        n_steps = flat.size
        for d, idx in zip(batch, np.unravel_index(flat, shape), strict=True):
            index[d] = xr.DataArray(idx, dims=_SAMPLE)
    points = n_steps * math.prod(int(sizes[d]) for d in spatial)
    stride = max(1, math.ceil((points / MAX_POINTS) ** (1.0 / max(len(spatial), 1))))
    if stride > 1:
        for d in spatial:
            index[d] = slice(None, None, stride)
    return index, n_steps


def value_reports(
    ds: xr.Dataset,
    variables: Iterable[str],
    stats: Stats,
    *,
    spatial: Sequence[Hashable],
    climatology: Mapping[str, xr.DataArray] | None = None,
    below: float | None = None,
) -> list[ValueReport]:
    """Compare a sample of the observed values with the training statistics.

    Parameters
    ----------
    ds
        The data (lazy or in memory; only the sample is computed, in one call).
    variables
        The variables to check (each must be in ``stats``).
    stats
        The model's training statistics.
    spatial
        The spatial dims (sampled with a stride); the others are batch dims.
    climatology
        The model's climatology: the anomalies from it are compared.
    below
        Values at or below it are invalid (the model's ``invalid_below``), not checked.

    Returns
    -------
    list of ValueReport
        One per variable that has observed values in the sample.
    """
    names = list(variables)
    raw = ds[names]
    dims = list(raw[names[0]].dims)
    batch = [d for d in dims if d not in spatial]
    index, n_steps = _sample_indexers(raw.sizes, batch, [d for d in dims if d in spatial])
    rules = {v: MissingRule.of(raw[v]) for v in names}
    shifted = anomalies(raw, dict(climatology)) if climatology else raw
    todo = {v: (raw[v].isel(index).data, shifted[v].isel(index).data) for v in names}
    (done,) = dask.compute(todo)
    reports = []
    for v in names:
        values, anomaly = (np.asarray(a) for a in done[v])
        ok = rules[v].usable(values)
        if below is not None:
            with np.errstate(invalid="ignore"):
                ok &= ~(values <= below)
        picked = anomaly[ok].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.abs(normalize_array(picked, stats[v]))
        z = z[np.isfinite(z)]
        if z.size == 0:
            continue
        reports.append(
            ValueReport(
                variable=v,
                checked=int(z.size),
                steps=n_steps,
                median_z=float(np.median(z)),
                far_share=float(np.mean(z > FAR_Z)),
                median_value=float(np.median(picked)),
            )
        )
    return reports


def check_values(
    ds: xr.Dataset,
    variables: Iterable[str],
    stats: Stats,
    *,
    spatial: Sequence[Hashable],
    climatology: Mapping[str, xr.DataArray] | None = None,
    below: float | None = None,
) -> list[str]:
    """Refuse data clearly in another unit or scale; return warnings for doubtful ones.

    Parameters
    ----------
    ds, variables, stats, spatial, climatology, below
        As for [`value_reports`][value_reports].

    Returns
    -------
    list of str
        One warning per variable with many values far outside the training range.

    Raises
    ------
    CompatibilityError
        A variable whose observed values lie, in median, more than
        ``REFUSE_MEDIAN_Z`` training standard deviations from the training mean.
    """
    messages = []
    for r in value_reports(
        ds, variables, stats, spatial=spatial, climatology=climatology, below=below
    ):
        vs = stats[r.variable]
        what = "anomalies from the model's climatology" if climatology else "values"
        trained = f"mean {vs.mean:.4g}, std {vs.std:.4g}" + (" of the log" if vs.log else "")
        if r.refused:
            raise CompatibilityError(
                f"the observed {what} of {r.variable!r} (median {r.median_value:.4g}) lie "
                f"{r.median_z:.0f} training standard deviations from the model's ({trained}): "
                "are they in another unit or scale (degC for K, hPa for Pa)? Convert them, "
                "or pass check_values=False (CLI: --no-value-check) to fill anyway"
            )
        if r.warned:
            messages.append(
                f"{r.far_share:.1%} of the observed {what} of {r.variable!r} checked "
                f"({r.checked} at {r.steps} steps) lie more than {FAR_Z:g} training standard "
                f"deviations from the model's ({trained}); fills may be poor"
            )
    return messages


def range_warnings(
    ranges: Mapping[str, tuple[float, float]],
    stats: Stats,
    climatology: Mapping[str, xr.DataArray] | None = None,
) -> list[str]:
    """Warnings for observed extremes far beyond anything the model saw in training.

    Parameters
    ----------
    ranges
        Per variable, the smallest and largest observed value of the whole
        input (from
        [`sparsediff.data.masks.states_and_range`][sparsediff.data.masks.states_and_range]).
    stats
        The model's training statistics.
    climatology
        The model's climatology (its range widens what training saw; a
        seasonal one's over a year of phases, not evaluated at the data's steps).

    Returns
    -------
    list of str
        One message per extreme beyond ``EXTREME_Z`` standard deviations.
    """
    out = []
    for v, (lo, hi) in ranges.items():
        if v not in stats or not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        vs = stats[v]
        clim = (climatology or {}).get(v)
        c_lo, c_hi = seasonal.climatology_range(clim) if clim is not None else (0.0, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            z_hi = float(normalize_array(np.float64(hi - c_hi), vs))
            z_lo = float(normalize_array(np.float64(lo - c_lo), vs))
        where = "mean plus the climatology's range" if clim is not None else "mean"
        for value, z, side in ((hi, z_hi, "above"), (lo, -z_lo, "below")):
            if math.isfinite(z) and z > EXTREME_Z:
                out.append(
                    f"observed values of {v!r} reach {value:.6g}, {z:.0f} training standard "
                    f"deviations {side} the training {where} (a spike, or a fill value the "
                    "file does not declare?); they are kept as observations"
                )
    return out
