"""Property test of the fill contract over 520 random cases (2-D and 3-D).

For every case: observed points are the input's bits (as float for integer input),
invalid points are NaN, gaps are finite, and the flags say which is which (0 observed,
1 filled, 2 invalid). The cases vary the method (latent, pixel), the spatial rank (2-D
windows 8 x 8, 3-D windows 4 x 8 x 8), the domain shape (smaller and larger than a
window), the number of time steps, the share of gaps (0 to 95 %) and of invalid points,
fill values (1e30) among the data, the dtype (float32, float64, int16 with a
``_FillValue``), whether invalid points come from a mask, from ``invalid_along`` or
both, the number of members, the batch size and the dask chunking (none, or random
chunks along time and space).

The cases are drawn from a seeded generator, in 26 groups of 20 (one test each), so a
failure names its group and case and reruns the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

import sparsediff
from tests.filling.conftest import make_model

N_GROUPS = 26
PER_GROUP = 20  # 520 cases
STATS = {"mean": 20.0, "std": 5.0}
INT_FILL = np.int16(-32768)

MODELS = {
    (2, "latent"): make_model(["v"], ["y", "x"], [8, 8], seed=1, **STATS),
    (2, "pixel"): make_model(["v"], ["y", "x"], [8, 8], mode="pixel", seed=2, **STATS),
    (3, "latent"): make_model(["v"], ["z", "y", "x"], [4, 8, 8], seed=3, **STATS),
    (3, "pixel"): make_model(["v"], ["z", "y", "x"], [4, 8, 8], mode="pixel", seed=4, **STATS),
}


def _case(rng: np.random.Generator) -> dict[str, Any]:
    rank = int(rng.choice([2, 3], p=[0.7, 0.3]))
    if rank == 2:
        spatial = (int(rng.integers(3, 25)), int(rng.integers(3, 25)))
    else:
        spatial = (int(rng.integers(2, 9)), int(rng.integers(3, 13)), int(rng.integers(3, 13)))
    return {
        "rank": rank,
        "method": str(rng.choice(["latent", "pixel"])),
        "steps_t": int(rng.integers(1, 4)),
        "spatial": spatial,
        "gap": float(rng.choice([0.0, rng.uniform(0, 0.5), rng.uniform(0.5, 0.95)])),
        "invalid": float(rng.choice([0.0, rng.uniform(0, 0.3)])),
        "fill_values": bool(rng.random() < 0.2),
        "dtype": str(rng.choice(["float32", "float64", "int16"], p=[0.45, 0.35, 0.2])),
        "mask": bool(rng.random() < 0.6),
        "along": bool(rng.random() < 0.6),
        "members": int(rng.choice([1, 1, 2, 3])),
        "batch_size": int(rng.choice([1, 3, 16])),
        "chunked": bool(rng.random() < 0.35),
        "seed": int(rng.integers(0, 2**31)),
    }


def _data(case: dict[str, Any], rng: np.random.Generator) -> tuple[xr.Dataset, np.ndarray]:
    shape = (case["steps_t"], *case["spatial"])
    dims = ("t", "z", "y", "x") if case["rank"] == 3 else ("t", "y", "x")
    values = rng.normal(STATS["mean"], STATS["std"], size=shape)
    missing = rng.random(shape) < case["gap"]
    static = rng.random(shape[1:]) < case["invalid"]  # e.g. land: missing at every step
    missing |= static[None]
    big = (rng.random(shape) < 0.05) & case["fill_values"]  # 1e30 fill values, not data
    attrs: dict[str, Any] = {}
    if case["dtype"] == "int16":
        arr = np.round(values).astype(np.int16)
        arr[missing | big] = INT_FILL
        attrs["_FillValue"] = INT_FILL  # undecoded integer data: the attribute marks gaps
    else:
        arr = values.astype(case["dtype"])
        arr[missing] = np.nan
        arr[big & ~missing] = 1e30
    ds = xr.Dataset({"v": (dims, arr, attrs)})
    if case["chunked"]:
        ds = ds.chunk(
            {
                "t": int(rng.integers(1, shape[0] + 1)),
                dims[-1]: int(rng.integers(1, shape[-1] + 1)),
            }
        )
    return ds, static


def _check(case: dict[str, Any], ds: xr.Dataset, out: xr.Dataset, user: np.ndarray) -> None:
    src = np.asarray(ds["v"].values)
    usable = src != INT_FILL if src.dtype == np.int16 else np.isfinite(src) & (np.abs(src) < 1e20)
    invalid = np.broadcast_to(user, src.shape).copy()
    if case["along"]:
        invalid |= ~usable.any(axis=0)[None]
    observed = usable & ~invalid
    gaps = ~usable & ~invalid
    got = np.asarray(out["v"].values)
    members = list(got) if case["members"] > 1 else [got]
    assert len(members) == case["members"]
    expected_dtype = np.float32 if src.dtype == np.int16 else src.dtype
    as_out = src.astype(expected_dtype)
    for m in members:
        assert m.dtype == expected_dtype
        np.testing.assert_array_equal(m[observed].view(np.uint8), as_out[observed].view(np.uint8))
        assert np.isnan(m[invalid]).all()
        assert np.isfinite(m[gaps]).all()
    flag = np.asarray(out["v_fill_flag"].values)
    np.testing.assert_array_equal(flag, np.select([observed, gaps], [0, 1], 2))


@pytest.mark.parametrize("group", range(N_GROUPS))
def test_observed_points_kept_invalid_nan_flags_right(group: int) -> None:
    rng = np.random.default_rng([2026, group])
    for i in range(PER_GROUP):
        case = _case(rng)
        ds, static = _data(case, rng)
        user = static if case["mask"] else np.zeros(static.shape, bool)
        mask_dims = ds["v"].dims[1:]
        invalid = xr.DataArray(user, dims=mask_dims) if case["mask"] else None
        try:
            out = sparsediff.fill(
                ds,
                MODELS[(case["rank"], case["method"])],
                steps=2,
                seed=case["seed"],
                members=case["members"],
                batch_size=case["batch_size"],
                invalid=invalid,
                invalid_along="t" if case["along"] else None,
            )
            _check(case, ds, out, user)
        except Exception as err:
            raise AssertionError(f"group {group}, case {i}: {case}") from err
