"""Normalisation statistics computed over observed points only.

[`compute_stats`][compute_stats] reads the data once (a single ``dask.compute`` for all
variables): every chunk contributes its count, mean and sum of squared
deviations in float64, and the chunks are merged with the parallel-variance
formula (Chan et al.), which stays accurate for large offsets such as sea
temperatures in kelvin. [`Stats`][Stats] is saved as JSON next to a model.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dask
import dask.array as da
import numpy as np
import xarray as xr

from sparsediff import atomic
from sparsediff.data.masks import OBSERVED, InvalidSpec, MissingRule, _fit_mask, invalid_mask
from sparsediff.data.selection import as_dataset, numeric_variables, validate_dims
from sparsediff.errors import CheckpointError, InputError

__all__ = [
    "STATS_FORMAT_VERSION",
    "Stats",
    "VariableStats",
    "compute_stats",
    "denormalize_array",
    "normalize_array",
]

STATS_FORMAT_VERSION = 1

ArrayT = TypeVar("ArrayT")


@dataclass(frozen=True)
class VariableStats:
    """Mean and standard deviation of one variable over its observed points.

    Parameters
    ----------
    mean, std
        Of the values, or of ``log(x + offset)`` when ``log`` is true.
        ``std`` is the population standard deviation (``ddof=0``).
    log
        Whether the variable is log-transformed before normalising.
    offset
        Added before the log transform.
    count
        Number of observed points the statistics were computed from.
    """

    mean: float
    std: float
    log: bool = False
    offset: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", float(self.mean))
        object.__setattr__(self, "std", float(self.std))
        object.__setattr__(self, "log", bool(self.log))
        object.__setattr__(self, "offset", float(self.offset))
        object.__setattr__(self, "count", int(self.count))
        if not (math.isfinite(self.mean) and math.isfinite(self.offset)):
            raise InputError(f"mean and offset must be finite, got {self.mean}, {self.offset}")
        if not (math.isfinite(self.std) and self.std > 0):
            raise InputError(f"std must be finite and positive, got {self.std}")
        if self.count < 0:
            raise InputError(f"count must be >= 0, got {self.count}")


@dataclass
class Stats:
    """Per-variable normalisation statistics.

    Parameters
    ----------
    variables
        Mapping of variable name to [`VariableStats`][VariableStats].
    """

    variables: dict[str, VariableStats] = field(default_factory=dict)

    def __getitem__(self, name: str) -> VariableStats:
        """Return the statistics of ``name`` (KeyError naming the known ones)."""
        try:
            return self.variables[name]
        except KeyError:
            raise KeyError(
                f"no statistics for variable {name!r}; known: {', '.join(self.variables)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        """Whether statistics for ``name`` exist."""
        return name in self.variables

    def __iter__(self) -> Iterator[str]:
        """Iterate over variable names."""
        return iter(self.variables)

    def __len__(self) -> int:
        """Number of variables."""
        return len(self.variables)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with a ``format_version``."""
        return {
            "format_version": STATS_FORMAT_VERSION,
            "variables": {name: asdict(vs) for name, vs in self.variables.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stats:
        """Rebuild from [`to_dict`][to_dict] output.

        Raises
        ------
        CheckpointError
            Unknown format version or malformed content.
        """
        version = data.get("format_version") if isinstance(data, Mapping) else None
        if version != STATS_FORMAT_VERSION:
            raise CheckpointError(
                f"stats format_version {version!r} is not supported "
                f"(this version reads {STATS_FORMAT_VERSION})"
            )
        try:
            return cls(
                {str(n): VariableStats(**dict(v)) for n, v in dict(data["variables"]).items()}
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"malformed stats: {err}") from err

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the statistics as JSON (atomically) and return the path."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        return atomic.write_text(Path(os.fspath(path)), text)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Stats:
        """Read statistics written by [`save`][save].

        Raises
        ------
        InputError
            The file does not exist.
        CheckpointError
            The file is not valid stats JSON.
        """
        source = Path(os.fspath(path))
        if not source.is_file():
            raise InputError(f"stats file not found: {str(source)!r}")
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read stats file {str(source)!r}: {err}") from err
        return cls.from_dict(data)


# --------------------------------------------------------------------------- compute


_SLAB = 1 << 21  # values per slab inside a block: bounds float64 temporaries to ~16 MiB


def _slab_moments(
    x: np.ndarray,
    m: np.ndarray | None,
    mode: str,
    rule: MissingRule,
    offset: float | None,
) -> tuple[int, float, float, int]:
    """Count, mean, sum of squared deviations and #non-positive of a 1-D slab."""
    if mode == "states":
        ok = np.asarray(m) == OBSERVED
    else:
        ok = rule.usable(x)
        if m is not None:
            ok &= ~np.asarray(m, dtype=bool)
    vals = x[ok].astype(np.float64)
    bad = 0
    if offset is not None:
        vals += offset
        positive = vals > 0
        bad = int(vals.size - np.count_nonzero(positive))
        vals = np.log(vals[positive])
    n = int(vals.size)
    if n == 0:
        return 0, 0.0, 0.0, bad
    mean = float(vals.mean())
    vals -= mean
    return n, mean, float(np.dot(vals, vals)), bad


def _block_moments(
    x: np.ndarray,
    m: np.ndarray | None = None,
    *,
    mode: str,
    rule: MissingRule,
    offset: float | None,
) -> np.ndarray:
    """Count, mean, sum of squared deviations and #non-positive of one block.

    The block is processed in slabs merged with Chan's parallel formula, so the
    float64 temporaries stay small whatever the chunk size.
    """
    x = np.asarray(x)
    flat = x.reshape(-1)
    mflat = None if m is None else np.broadcast_to(np.asarray(m), x.shape).reshape(-1)
    n, mean, m2, bad = 0, 0.0, 0.0, 0
    for start in range(0, flat.size, _SLAB):
        part = slice(start, start + _SLAB)
        nb, mb, m2b, badb = _slab_moments(
            flat[part], None if mflat is None else mflat[part], mode, rule, offset
        )
        bad += badb
        if nb == 0:
            continue
        total = n + nb
        delta = mb - mean
        mean += delta * nb / total
        m2 += m2b + delta * delta * n * nb / total
        n = total
    out = np.array([n, mean, m2, bad], dtype=np.float64)
    return out.reshape((1,) * x.ndim + (4,))


def _aligned(mask: xr.DataArray, var: xr.DataArray, x: da.Array) -> da.Array:
    """``mask`` (dims a subset of ``var``'s) as a dask array of ``x``'s shape and chunks."""
    dims = [d for d in var.dims if d in mask.dims]
    m = mask.transpose(*dims).data
    chunks = tuple(x.chunks[var.dims.index(d)] for d in dims)
    m = da.asarray(m).rechunk(chunks) if isinstance(m, da.Array) else da.from_array(m, chunks)
    m = m[tuple(slice(None) if d in mask.dims else None for d in var.dims)]
    return da.broadcast_to(m, x.shape, chunks=x.chunks)


def _log_offsets(
    log: str | Iterable[str] | Mapping[str, float], names: list[str]
) -> dict[str, float]:
    if isinstance(log, str):
        offsets = {log: 0.0}
    elif isinstance(log, Mapping):
        offsets = {str(k): float(v) for k, v in log.items()}
    else:
        offsets = {str(k): 0.0 for k in log}
    for name in offsets:
        if name not in names:
            raise InputError(
                f"log variable {name!r} is not among the variables used: {', '.join(names)}"
            )
    return offsets


def compute_stats(
    ds: xr.Dataset | xr.DataArray,
    variables: str | Iterable[str] | None = None,
    *,
    log: str | Iterable[str] | Mapping[str, float] = (),
    states: xr.Dataset | None = None,
    invalid: InvalidSpec = None,
    invalid_along: Hashable | Iterable[Hashable] | None = None,
) -> Stats:
    """Mean and standard deviation of each variable over its observed points.

    Parameters
    ----------
    ds
        The data (dask-backed or in memory).
    variables
        Variables to use; default as [`numeric_variables`][sparsediff.data.io.numeric_variables].
    log
        Variables to log-transform: names (offset 0) or ``{name: offset}``;
        their stats are of ``log(x + offset)``.
    states
        Output of [`states`][sparsediff.data.masks.states]; if given, its
        ``OBSERVED`` points are used and ``invalid``/``invalid_along`` must
        not be passed.
    invalid, invalid_along
        As for [`states`][sparsediff.data.masks.states]. ``invalid_along`` is
        checked but does not change the result: points missing at every step
        are never observed anyway.

    Returns
    -------
    Stats
        One [`VariableStats`][VariableStats] per variable (population std).

    Raises
    ------
    InputError
        Unknown/non-numeric variable or dim, a mask that does not fit, a
        variable with no observed value, a constant variable (std 0), or a
        log variable with observed values ``x + offset <= 0``.

    Notes
    -----
    All variables are computed in one ``dask.compute`` call: the data are read
    once, chunk by chunk, so memory stays bounded by a few chunks per thread.
    """
    data = as_dataset(ds)
    names = numeric_variables(data, variables)
    offsets = _log_offsets(log, names)
    if states is not None and (invalid is not None or invalid_along is not None):
        raise InputError("pass either states or invalid/invalid_along, not both")
    if invalid_along is not None:
        validate_dims(data, invalid_along)
    user = invalid_mask(data, invalid) if states is None else None
    graphs = {
        name: _moments_graph(data[name], name, states, user, offsets.get(name)) for name in names
    }
    (moments,) = dask.compute(graphs)
    return Stats({name: _variable_stats(name, moments[name], offsets) for name in names})


def _moments_graph(
    var: xr.DataArray,
    name: str,
    states: xr.Dataset | None,
    user: xr.DataArray | None,
    offset: float | None,
) -> da.Array:
    """The lazy per-block moments of one variable over its observed points.

    Observed is ``OBSERVED`` in ``states`` when given, else a usable value
    outside the user's invalid mask ``user``.
    """
    validate_dims(var, var.dims)
    x = var.data
    if not isinstance(x, da.Array):
        x = da.from_array(np.asarray(x), chunks=-1)
    if states is not None:
        if name not in states.data_vars or dict(states[name].sizes) != dict(var.sizes):
            raise InputError(f"states do not hold variable {name!r} with dims {var.sizes}")
        mask: da.Array | None = _aligned(states[name], var, x)
        mode = "states"
    else:
        mask = _aligned(_fit_mask(user, var, name), var, x) if user is not None else None
        mode = "finite"
    args = [x] if mask is None else [x, mask]
    return da.map_blocks(
        _block_moments,
        *args,
        mode=mode,
        rule=MissingRule.of(var),
        offset=offset,
        dtype=np.float64,
        chunks=(*tuple((1,) * len(c) for c in x.chunks), (4,)),
        new_axis=x.ndim,
        meta=np.empty((0,) * (x.ndim + 1), dtype=np.float64),
    )


def _variable_stats(name: str, moments: np.ndarray, offsets: dict[str, float]) -> VariableStats:
    """Merge the per-block moments of one variable into its stats, after the checks.

    Raises
    ------
    InputError
        Non-positive values of a log variable, no observed value, or std 0.
    """
    parts = np.asarray(moments, dtype=np.float64).reshape(-1, 4)
    n, means, m2s, bad = parts[:, 0], parts[:, 1], parts[:, 2], parts[:, 3]
    total = float(n.sum())
    if name in offsets and bad.sum() > 0:
        raise InputError(
            f"variable {name!r} has {int(bad.sum())} observed values <= 0 after adding "
            f"offset {offsets[name]}; a log transform needs positive values"
        )
    if total == 0:
        raise InputError(
            f"variable {name!r} has no observed value (all NaN, fill value or invalid)"
        )
    mean = float((n * means).sum() / total)
    m2 = float(m2s.sum() + (n * np.square(means - mean)).sum())
    std = math.sqrt(max(m2, 0.0) / total)
    if not std > 0:
        raise InputError(f"variable {name!r} is constant over its observed points (std 0)")
    return VariableStats(
        mean=mean,
        std=std,
        log=name in offsets,
        offset=offsets.get(name, 0.0),
        count=int(total),
    )


# --------------------------------------------------------------------------- apply


def normalize_array(a: ArrayT, vstats: VariableStats) -> ArrayT:
    """``(a - mean) / std``, after ``log(a + offset)`` for log variables.

    Parameters
    ----------
    a
        A NumPy (or dask) array; integer input gives float64.
    vstats
        Statistics of the variable.

    Returns
    -------
    array
        Same shape; float dtype of ``a`` is kept.
    """
    x: Any = a if hasattr(a, "dtype") else np.asarray(a, dtype=np.float64)
    if vstats.log:
        x = np.log(x + vstats.offset)
    return (x - vstats.mean) / vstats.std


def denormalize_array(a: ArrayT, vstats: VariableStats) -> ArrayT:
    """Inverse of [`normalize_array`][normalize_array].

    Parameters
    ----------
    a
        Normalised values.
    vstats
        Statistics of the variable.

    Returns
    -------
    array
        Values in physical units.
    """
    x: Any = a if hasattr(a, "dtype") else np.asarray(a, dtype=np.float64)
    x = x * vstats.std + vstats.mean
    if vstats.log:
        x = np.exp(x) - vstats.offset
    return x
