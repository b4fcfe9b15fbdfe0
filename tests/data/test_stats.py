"""Tests of sparsediff.data.stats and the synthetic fields of sparsediff.data.sample_data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sparsediff.data.io import write
from sparsediff.data.masks import OBSERVED, states
from sparsediff.data.sample_data import gaussian_random_field
from sparsediff.data.stats import (
    Stats,
    VariableStats,
    compute_stats,
    denormalize_array,
    normalize_array,
)
from sparsediff.errors import CheckpointError, InputError

SST = "surface_temperature"


def two_variable_dataset(synthetic) -> tuple[xr.Dataset, np.ndarray]:
    """`field` (about 280 K, gappy) and a positive `rain` with its own gaps."""
    ds, truth = synthetic(shape=(6, 32, 40), gap_fraction=0.25, seed=3)
    rng = np.random.default_rng(7)
    rain = np.exp(gaussian_random_field((6, 32, 40), seed=11)).astype(np.float32)
    rain[rng.random(rain.shape) < 0.1] = np.nan
    ds["rain"] = (("time", "y", "x"), rain, {"units": "mm/day"})
    return ds, truth


def reference(values: np.ndarray, ok: np.ndarray, log_offset: float | None = None):
    v = values[ok].astype(np.float64)
    if log_offset is not None:
        v = np.log(v + log_offset)
    return v.mean(), v.std(), v.size


def test_stats_match_numpy_on_observed_points(ostia: xr.Dataset) -> None:
    stats = compute_stats(ostia.chunk({"time": 3}), invalid_along="time")
    mean, std, n = reference(ostia[SST].values, np.isfinite(ostia[SST].values))
    vs = stats[SST]
    assert vs.count == n
    assert vs.mean == pytest.approx(mean, rel=1e-12)
    assert vs.std == pytest.approx(std, rel=1e-10)
    assert (vs.log, vs.offset) == (False, 0.0)


def test_stats_exclude_invalid_points_and_log_variant(synthetic) -> None:
    ds, _truth = two_variable_dataset(synthetic)
    box = xr.zeros_like(ds["field"].isel(time=0), dtype=bool).drop_vars("time")
    box[20:, 30:] = True  # an extra invalid region, given as a user mask
    chunked = ds.chunk({"time": 2, "y": 16})
    stats = compute_stats(chunked, log={"rain": 0.5}, invalid=box, invalid_along="time")
    for name, offset in (("field", None), ("rain", 0.5)):
        values = ds[name].values
        ok = np.isfinite(values) & ~np.broadcast_to(box.values, values.shape)
        mean, std, n = reference(values, ok, offset)
        assert stats[name].count == n
        assert stats[name].mean == pytest.approx(mean, rel=1e-12, abs=1e-12)
        assert stats[name].std == pytest.approx(std, rel=1e-10)
    assert stats["rain"].log
    assert stats["rain"].offset == 0.5
    assert not stats["field"].log
    # precomputed states give the same numbers, bit for bit with the same chunks
    st = states(chunked, invalid=box, invalid_along="time")
    assert compute_stats(chunked, log={"rain": 0.5}, states=st) == stats
    in_memory = compute_stats(ds, log={"rain": 0.5}, states=st.load())
    assert in_memory["field"].std == pytest.approx(stats["field"].std, rel=1e-12)


def test_stats_is_one_dask_compute(synthetic, count_computes, tmp_path: Path) -> None:
    ds, _ = two_variable_dataset(synthetic)
    mask = xr.DataArray(np.zeros((32, 40), np.int8), dims=("y", "x"), name="m")
    mask_path = write(mask.to_dataset(), tmp_path / "mask.zarr")
    lazy = ds.chunk({"time": 1, "y": 8})
    assert lazy["field"].data.npartitions == 24
    with count_computes() as computes:
        stats = compute_stats(lazy, log=["rain"], invalid=mask_path, invalid_along="time")
    assert computes() == 1
    assert len(stats) == 2


def test_large_offset_is_accurate() -> None:
    rng = np.random.default_rng(0)
    values = 1e6 + rng.normal(scale=1e-3, size=(8, 50, 50))
    ds = xr.Dataset({"v": (("t", "y", "x"), values)}).chunk({"t": 1})
    vs = compute_stats(ds)["v"]
    assert vs.mean == pytest.approx(values.mean(), rel=1e-14)
    assert vs.std == pytest.approx(values.std(), rel=1e-8)


def test_json_round_trip_is_exact(tmp_path: Path, synthetic) -> None:
    ds, _ = two_variable_dataset(synthetic)
    stats = compute_stats(ds, log={"rain": 0.1})
    path = stats.save(tmp_path / "sub" / "stats.json")
    assert [p.name for p in path.parent.iterdir()] == ["stats.json"]
    data = json.loads(path.read_text())
    assert data["format_version"] == 1
    assert set(data["variables"]) == {"field", "rain"}
    loaded = Stats.load(path)
    assert loaded == stats
    assert loaded["rain"].mean == stats["rain"].mean  # bit-exact floats
    assert Stats.from_dict(stats.to_dict()) == stats
    assert list(loaded) == ["field", "rain"]
    assert "rain" in loaded


def test_stats_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="stats file not found"):
        Stats.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format_version": 99, "variables": {}}))
    with pytest.raises(CheckpointError, match="format_version 99"):
        Stats.load(bad)
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read stats file"):
        Stats.load(bad)
    bad.write_text(json.dumps({"format_version": 1, "variables": {"a": {"mean": 1}}}))
    with pytest.raises(CheckpointError, match="malformed stats"):
        Stats.load(bad)
    with pytest.raises(KeyError, match="no statistics for variable 'x'"):
        Stats()["x"]


def test_array_normalization() -> None:
    vs = VariableStats(mean=2.0, std=0.5, log=True, offset=1.0, count=10)
    x = np.array([0.5, 1.0, 8.0, np.nan])
    z = normalize_array(x, vs)
    np.testing.assert_allclose(z[:3], (np.log(x[:3] + 1.0) - 2.0) / 0.5)
    np.testing.assert_allclose(denormalize_array(z, vs), x, rtol=1e-12)
    plain = VariableStats(mean=280.0, std=2.0)
    y = np.array([278.0, 282.0], dtype=np.float32)
    assert normalize_array(y, plain).dtype == np.float32
    np.testing.assert_array_equal(normalize_array(y, plain), [-1.0, 1.0])
    np.testing.assert_allclose(denormalize_array([0.5], plain), [281.0])


def test_stats_errors(synthetic) -> None:
    ds, _ = two_variable_dataset(synthetic)
    with pytest.raises(InputError, match="variable 'empty' has no observed value"):
        compute_stats(ds.assign(empty=ds["field"] * np.nan))
    with pytest.raises(InputError, match="variable 'flat' is constant"):
        compute_stats(ds.assign(flat=ds["field"] * 0 + 3))
    with pytest.raises(InputError, match=r"'field' has \d+ observed values <= 0"):
        compute_stats(ds.assign(field=ds["field"] - 280), log=["field"])
    with pytest.raises(InputError, match="log variable 'snow'"):
        compute_stats(ds, log=["snow"])
    with pytest.raises(InputError, match="either states or invalid"):
        compute_stats(ds, states=states(ds), invalid_along="time")
    with pytest.raises(InputError, match="dim 'depth' is not in the dataset"):
        compute_stats(ds, invalid_along="depth")
    with pytest.raises(InputError, match="'tag' is not numeric"):
        compute_stats(ds.assign(tag=(("y", "x"), np.full((32, 40), "a"))), ["tag"])
    with pytest.raises(InputError, match="dim 'time' of variable 'field' has length 0"):
        compute_stats(ds.isel(time=slice(0, 0)))
    wrong = xr.DataArray(np.zeros((31, 40), bool), dims=("y", "x"))
    with pytest.raises(InputError, match=r"\(y: 31, x: 40\).*\(time: 6, y: 32, x: 40\)"):
        compute_stats(ds, invalid=wrong)
    with pytest.raises(InputError, match="std must be finite and positive"):
        VariableStats(mean=0.0, std=0.0)


def test_observed_mask_from_states_matches_stats_count(ostia: xr.Dataset) -> None:
    st = states(ostia, invalid_along="time")
    n = int((st[SST] == OBSERVED).sum())
    assert compute_stats(ostia, states=st)[SST].count == n


# --------------------------------------------------------------------------- samples


def test_gaussian_random_field_properties() -> None:
    g = gaussian_random_field((128, 128), slope=3.0, seed=5)
    assert g.shape == (128, 128)
    assert g.dtype == np.float64
    assert g.mean() == pytest.approx(0.0, abs=1e-12)
    assert g.std() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_array_equal(g, gaussian_random_field((128, 128), slope=3.0, seed=5))
    assert not np.array_equal(g, gaussian_random_field((128, 128), slope=3.0, seed=6))
    assert gaussian_random_field((8, 12, 10)).shape == (8, 12, 10)
    with pytest.raises(InputError, match="shape must be 2 or 3 sizes"):
        gaussian_random_field((10,))


@pytest.mark.parametrize("slope", [2.0, 4.0])
def test_gaussian_random_field_spectrum_slope(slope: float) -> None:
    n = 256
    power = np.zeros(n // 2)
    counts = np.zeros(n // 2)
    k = np.sqrt(np.add.outer(np.fft.fftfreq(n) ** 2, np.fft.fftfreq(n) ** 2)) * n
    shell = np.round(k).astype(int)
    for seed in range(4):
        p = np.abs(np.fft.fft2(gaussian_random_field((n, n), slope=slope, seed=seed))) ** 2
        sel = shell < n // 2
        power += np.bincount(shell[sel], weights=p[sel], minlength=n // 2)
        counts += np.bincount(shell[sel], minlength=n // 2)
    ks = np.arange(4, n // 4)
    fitted = np.polyfit(np.log(ks), np.log(power[ks] / counts[ks]), 1)[0]
    assert fitted == pytest.approx(-slope, abs=0.15)


def test_block_larger_than_one_slab_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    values = (300.0 + rng.normal(size=(5, 1000, 1000))).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    ds = xr.Dataset({"v": (("t", "y", "x"), values)})  # one 5-million-value block
    vs = compute_stats(ds)["v"]
    mean, std, n = reference(values, np.isfinite(values))
    assert vs.count == n
    assert vs.mean == pytest.approx(mean, rel=1e-13)
    assert vs.std == pytest.approx(std, rel=1e-10)
