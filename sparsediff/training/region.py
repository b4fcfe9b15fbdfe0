"""The part of the data a model was trained on, so that scores can stay off it.

Training splits the record along one dim (``data.holdout_dim``, else the
first batch dim, see [`splits`][sparsediff.training.data.splits]): the
training and validation parts (the networks and the spread calibration saw
them) come first, the held-out part last. The model records the first two as
``provenance["trained_region"]``::

    {"dim": "time", "start": 0, "stop": 48, "size": 54,
     "first": "2002-01-16T12:00:00", "last": "2005-12-16T12:00:00"}

``start``/``stop`` are indices of the training data (``stop`` exclusive),
``first``/``last`` its coordinate values there (ISO text for dates, numbers
otherwise; absent without a coordinate). Models saved before this record
existed get it from their recorded config and sizes, without coordinates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["describe_region", "overlap_warning", "record_region", "seen_steps", "trained_region"]


def _coord_value(value: Any) -> Any:
    """A coordinate value as JSON: ISO text for dates, a float or text otherwise."""
    arr = np.asarray(value)
    if np.issubdtype(arr.dtype, np.datetime64):
        return str(np.datetime_as_string(arr, unit="s"))
    if np.issubdtype(arr.dtype, np.number):
        return float(arr)
    item = arr.item()
    return item.isoformat() if hasattr(item, "isoformat") else str(item)


def record_region(ds: xr.Dataset, dim: str | None, seen: slice) -> dict[str, Any] | None:
    """The ``trained_region`` record of the part ``seen`` (indices along ``dim``) of ``ds``."""
    if dim is None:
        return None
    n = int(ds.sizes[dim])
    start, stop, _ = seen.indices(n)
    out: dict[str, Any] = {"dim": dim, "start": start, "stop": stop, "size": n}
    if dim in ds.coords and stop > start:
        out["first"] = _coord_value(ds[dim].values[start])
        out["last"] = _coord_value(ds[dim].values[stop - 1])
    return out


def trained_region(model: Any) -> dict[str, Any] | None:
    """The model's ``trained_region`` record (derived from its config for older models)."""
    if model is None:
        return None
    prov = getattr(model, "provenance", None) or {}
    if "trained_region" in prov:
        return prov["trained_region"]
    config, sizes = prov.get("config"), dict(getattr(model.spec, "sizes", None) or {})
    if not config or not sizes:
        return None
    from sparsediff.training.config import TrainConfig
    from sparsediff.training.data import splits

    try:
        dim, train, validation, _ = splits(TrainConfig.model_validate(config), sizes)
    except Exception:  # a config this version no longer reads: nothing to say
        return None
    if dim is None:
        return None
    return {"dim": dim, "start": train.start, "stop": validation.stop, "size": sizes[dim]}


def seen_steps(region: dict[str, Any], ds: xr.Dataset, scored: slice) -> tuple[int, int]:
    """How many of the scored steps (``scored`` along the record's dim of ``ds``) training saw.

    By coordinate value when the record has ``first``/``last`` and ``ds`` a
    coordinate of that dim, else by index when ``ds`` has the training
    record's ``size`` along it (the same record); otherwise none is known to
    be seen. Returns ``(seen, scored)`` step counts.
    """
    dim = region["dim"]
    if dim not in ds.dims:
        return 0, 0
    positions = np.arange(ds.sizes[dim])[scored]
    values = np.asarray(ds[dim].values)[scored] if dim in ds.coords else None
    if "first" in region and values is not None:
        if np.issubdtype(values.dtype, np.datetime64):
            lo, hi = np.datetime64(region["first"]), np.datetime64(region["last"])
            return int(((values >= lo) & (values <= hi)).sum()), len(positions)
        if np.issubdtype(values.dtype, np.number):
            low, high = float(region["first"]), float(region["last"])
            return int(((values >= low) & (values <= high)).sum()), len(positions)
    if ds.sizes[dim] == region.get("size"):
        inside = (positions >= region["start"]) & (positions < region["stop"])
        return int(inside.sum()), len(positions)
    return 0, len(positions)


def describe_region(region: dict[str, Any]) -> str:
    """``"time steps 0-47 (2002-01-16 to 2005-12-16)"`` for messages."""
    text = f"{region['dim']} steps {region['start']}-{region['stop'] - 1}"
    if "first" in region:
        text += f" ({str(region['first'])[:10]} to {str(region['last'])[:10]})"
    return text


def overlap_warning(model: Any, ds: xr.Dataset, region: dict[Any, slice]) -> str | None:
    """The warning for scores taken where ``model`` was trained, or ``None``.

    Parameters
    ----------
    model
        The model scored.
    ds
        The data evaluated.
    region
        The scored index ranges (``{dim: slice}``; a dim absent: all of it).
    """
    rec = trained_region(model)
    if rec is None:
        return None
    seen, scored = seen_steps(rec, ds, region.get(rec["dim"], slice(None)))
    if not seen:
        return None
    return (
        f"{seen} of the {scored} scored {rec['dim']} steps were used to train the model "
        f"({describe_region(rec)}): its scores there are optimistic; score a held-out "
        f"region (region=, CLI --region) such as {rec['dim']}={rec['stop']}:{rec['size']}"
    )
