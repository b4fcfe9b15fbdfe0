"""Tests of training.patches and data.patch_windows: eligibility, sharding, determinism, values."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch.utils.data import DataLoader

from sparsediff.data import masks
from sparsediff.data.patch_windows import Window
from sparsediff.data.stats import compute_stats
from sparsediff.errors import InputError
from sparsediff.training.patches import PatchDataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def synthetic() -> xr.Dataset:
    """Two variables over (time, y, x) with holes, a dead corner and a land strip."""
    rng = np.random.default_rng(0)
    nt, ny, nx = 6, 20, 24
    a = rng.standard_normal((nt, ny, nx)) * 3 + 10
    b = rng.standard_normal((nt, ny, nx))
    a[rng.random(a.shape) < 0.3] = np.nan
    b[rng.random(b.shape) < 0.1] = np.nan
    a[:, :8, :8] = b[:, :8, :8] = np.nan  # a dead corner: those windows are ineligible
    a[2] = np.nan  # one time step of `a` lost entirely
    a[:, 17:, :] = b[:, 17:, :] = np.nan  # "land", missing at every time: invalid
    return xr.Dataset(
        {
            "a": (("time", "y", "x"), a),
            # another dim order: the dataset transposes every variable to (batch, *dims)
            "b": (("x", "time", "y"), b.transpose(2, 0, 1)),
        },
        coords={"time": np.arange(nt), "y": np.arange(ny) * 0.5, "x": np.arange(nx) * 0.5},
    )


def _brute_force_fractions(ds: xr.Dataset, names, size, starts) -> dict[tuple, float]:
    """Observed fraction of every window by plain numpy (the reference)."""
    finite = sum(np.isfinite(ds[n].transpose("time", "y", "x").values) for n in names)
    out = {}
    for t, y0, x0 in itertools.product(range(ds.sizes["time"]), *starts):
        block = finite[t, y0 : y0 + size[0], x0 : x0 + size[1]]
        out[(t, y0, x0)] = block.sum() / (len(names) * size[0] * size[1])
    return out


def _collect(dataset: PatchDataset, *, num_workers: int, batch_size: int = 1) -> list[int]:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    out: list[int] = []
    for batch in loader:
        out.extend(int(i) for i in batch["index"])
    return out


def test_windows_and_eligibility_match_brute_force(synthetic: xr.Dataset) -> None:
    ds = PatchDataset(synthetic, ["a", "b"], ("y", "x"), 8, min_observed=0.4)
    assert ds.batch_dims == ("time",)
    # starts every 8 points, the last one aligned to the end (20 -> 0, 8, 12; 24 -> 0, 8, 16)
    reference = _brute_force_fractions(synthetic, ["a", "b"], (8, 8), ([0, 8, 12], [0, 8, 16]))
    expected = {k for k, f in reference.items() if f >= 0.4}
    got = {(w.batch[0], *w.start) for w in ds.windows}
    assert got == expected
    assert len(ds) == len(expected)
    assert 0 < len(ds) < len(reference)
    for w in ds.windows:
        assert isinstance(w, Window)
        assert w.observed == pytest.approx(reference[(w.batch[0], *w.start)], abs=1e-12)
        # global id: C order over (time, y window, x window)
        assert w.index == w.batch[0] * 9 + [0, 8, 12].index(w.start[0]) * 3 + w.start[1] // 8


def test_items_hold_masked_source_values(synthetic: xr.Dataset) -> None:
    ds = PatchDataset(synthetic, ["a", "b"], ("y", "x"), (8, 12), stride=(6, 6), shuffle=False)
    by_id = {w.index: w for w in ds.windows}
    seen = 0
    for item in ds:
        w = by_id[item["index"]]
        assert item["values"].dtype == torch.float32
        assert item["values"].shape == (2, 8, 12)
        assert item["observed"].dtype == torch.bool
        assert item["invalid"].dtype == torch.bool
        t, (y0, x0) = w.batch[0], w.start
        for c, name in enumerate(["a", "b"]):
            src = synthetic[name].transpose("time", "y", "x").values[t, y0 : y0 + 8, x0 : x0 + 12]
            ok = np.isfinite(src)
            np.testing.assert_array_equal(item["observed"][c].numpy(), ok)
            np.testing.assert_array_equal(
                item["values"][c].numpy(), np.where(ok, src, 0.0).astype(np.float32)
            )
        assert not item["invalid"].any()  # without states, nothing is invalid
        seen += 1
    assert seen == len(ds)


def test_states_give_invalid_and_observed(synthetic: xr.Dataset) -> None:
    st = masks.states(synthetic, ["a", "b"], invalid_along="time")
    ds = PatchDataset(
        synthetic, ["a", "b"], ("y", "x"), 8, states=st, shuffle=False, dtype=torch.float64
    )
    item = next(iter(ds))
    assert item["values"].dtype == torch.float64
    w = ds.windows[0]
    t, (y0, x0) = w.batch[0], w.start
    for c, name in enumerate(["a", "b"]):
        code = st[name].transpose("time", "y", "x").values[t, y0 : y0 + 8, x0 : x0 + 8]
        np.testing.assert_array_equal(item["observed"][c].numpy(), code == masks.OBSERVED)
        np.testing.assert_array_equal(item["invalid"][c].numpy(), code == masks.INVALID)
    # the land strip (rows 17-19) is invalid in windows that reach it
    bottom = [w for w in ds.windows if w.start[0] == 12]
    assert bottom
    for w in bottom:
        item = ds.read(w)
        assert item["invalid"][:, -3:, :].all()
        assert not item["observed"][:, -3:, :].any()
        assert not item["invalid"][:, :-3, :].all()


def test_min_observed_windows_never_appear(synthetic: xr.Dataset) -> None:
    for threshold in (0.0, 0.3, 0.6, 0.9):
        ds = PatchDataset(synthetic, ["a", "b"], ("y", "x"), 8, min_observed=threshold)
        ids = _collect(ds, num_workers=0)
        assert sorted(ids) == sorted(w.index for w in ds.windows)
        for item in itertools.islice(iter(ds), 10):
            assert item["observed"].float().mean() >= threshold - 1e-12
    # the dead corner holds no observed point: never eligible, even at a tiny threshold
    tiny = PatchDataset(synthetic, ["a", "b"], ("y", "x"), 8, min_observed=1e-9)
    assert all(w.start != (0, 0) for w in tiny.windows)


def test_every_window_once_per_epoch_across_ranks_and_workers(synthetic: xr.Dataset) -> None:
    def make(rank: int, **kw) -> PatchDataset:
        return PatchDataset(
            synthetic, ["a", "b"], ("y", "x"), 6, stride=4, rank=rank, world_size=2, seed=3, **kw
        )

    ranks = [make(0), make(1)]
    eligible = sorted(w.index for w in ranks[0].windows)
    assert len(eligible) % 4 != 0  # the count does not divide: the split is still exact
    orders = []
    for epoch in (0, 1):
        got = []
        for ds in ranks:
            ds.set_epoch(epoch)
            ids = _collect(ds, num_workers=2)
            assert len(ids) == ds.local_len()
            got.append(ids)
        flat = got[0] + got[1]
        assert len(flat) == len(set(flat)) == len(eligible)  # no duplicates
        assert sorted(flat) == eligible  # nothing missing
        assert abs(len(got[0]) - len(got[1])) <= 1
        orders.append(got)
    assert orders[0] != orders[1]  # epochs differ
    # same seed and epoch: same order (a fresh dataset, a fresh loader)
    again = make(0)
    again.set_epoch(1)
    assert _collect(again, num_workers=2) == orders[1][0]
    other_seed = PatchDataset(synthetic, ["a", "b"], ("y", "x"), 6, stride=4, rank=0, world_size=2)
    other_seed.set_epoch(1)
    assert _collect(other_seed, num_workers=0) != orders[1][0]


def test_loader_yields_rank_order_and_skip_resumes(synthetic: xr.Dataset) -> None:
    kw = {"rank": 1, "world_size": 2, "seed": 5, "batch_size": 3}
    ds = PatchDataset(synthetic, ["a", "b"], ("y", "x"), 6, stride=4, **kw)
    ds.set_epoch(2)
    order = [ds.windows[i].index for i in ds.rank_order()]
    stream = _collect(ds, num_workers=2, batch_size=3)
    assert stream == order  # blocks of batch_size per worker: the loader keeps the order
    resumed = PatchDataset(synthetic, ["a", "b"], ("y", "x"), 6, stride=4, **kw)
    resumed.set_epoch(2, skip=7)
    assert _collect(resumed, num_workers=2, batch_size=3) == stream[7:]
    unshuffled = PatchDataset(synthetic, ["a", "b"], ("y", "x"), 6, stride=4, shuffle=False)
    assert _collect(unshuffled, num_workers=0) == sorted(w.index for w in unshuffled.windows)


def test_three_spatial_dims_without_batch(synthetic: xr.Dataset) -> None:
    ds = PatchDataset(synthetic, "a", ("time", "y", "x"), (4, 8, 8), min_observed=0.0)
    assert ds.batch_dims == ()
    assert ds.windows[0].batch == ()
    assert len(ds) == 2 * 3 * 3  # time starts 0, 2; y 0, 8, 12; x 0, 8, 16
    item = next(iter(ds))
    assert item["values"].shape == (1, 4, 8, 8)


def test_ostia_values_are_normalized_source_values() -> None:
    sample_data = pytest.importorskip("iris_sample_data")
    path = Path(sample_data.__file__).parent / "sample_data" / "ostia_monthly.nc"
    source = xr.open_dataset(path).isel(time=slice(0, 12))
    st = masks.states(source, ["surface_temperature"], invalid_along="time")
    stats = compute_stats(source, ["surface_temperature"], states=st)
    ds = PatchDataset(
        source,
        ["surface_temperature"],
        ("latitude", "longitude"),
        (16, 32),
        stats=stats,
        states=st,
        min_observed=0.5,
        seed=1,
    )
    sst = source["surface_temperature"].values
    code = st["surface_temperature"].values
    vstats = stats["surface_temperature"]
    normalized = (sst.astype(np.float64) - vstats.mean) / vstats.std
    by_id = {w.index: w for w in ds.windows}
    land_seen = False
    for item in itertools.islice(iter(ds), 40):
        w = by_id[item["index"]]
        t, (y0, x0) = w.batch[0], w.start
        region = (t, slice(y0, y0 + 16), slice(x0, x0 + 32))
        obs = code[region] == masks.OBSERVED
        np.testing.assert_array_equal(item["observed"][0].numpy(), obs)
        np.testing.assert_array_equal(item["invalid"][0].numpy(), code[region] == masks.INVALID)
        values = item["values"][0].numpy()
        np.testing.assert_allclose(values[obs], normalized[region][obs], rtol=1e-6, atol=1e-6)
        assert np.all(values[~obs] == 0.0)
        assert obs.mean() >= 0.5
        land_seen |= bool(item["invalid"].any())
    assert land_seen
    assert abs(float(ds.read(ds.windows[0])["values"].mean())) < 5  # really normalized


def test_lazy_zarr_store(synthetic: xr.Dataset, tmp_path: Path) -> None:
    store = tmp_path / "data.zarr"
    synthetic.chunk({"time": 2, "y": 10, "x": 12}).to_zarr(store, mode="w", consolidated=False)
    lazy = xr.open_zarr(store, chunks={}, consolidated=False)
    assert lazy["a"].chunks is not None  # dask-backed
    ds = PatchDataset(lazy, ["a", "b"], ("y", "x"), 8, min_observed=0.3, seed=2)
    eager = PatchDataset(synthetic, ["a", "b"], ("y", "x"), 8, min_observed=0.3, seed=2)
    assert ds.windows == eager.windows
    assert lazy["a"].chunks is not None  # building the dataset did not load the store
    for got, want in zip(DataLoader(ds, batch_size=None, num_workers=2), eager):
        assert got["index"] == want["index"]
        for key in ("values", "observed", "invalid"):
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


def test_bad_input_is_rejected(synthetic: xr.Dataset) -> None:
    with pytest.raises(InputError, match=r"window size 32 is larger than dim 'y' of size 20"):
        PatchDataset(synthetic, ["a"], ("y", "x"), (32, 8))
    with pytest.raises(InputError, match="'c'"):
        PatchDataset(synthetic, ["a", "c"], ("y", "x"), 8)
    with pytest.raises(InputError, match="'lat'"):
        PatchDataset(synthetic, ["a"], ("lat", "x"), 8)
    with pytest.raises(InputError, match="2 or 3"):
        PatchDataset(synthetic, ["a"], ("x",), 8)
    with pytest.raises(InputError, match="rank"):
        PatchDataset(synthetic, ["a"], ("y", "x"), 8, rank=2, world_size=2)
    other = synthetic.assign(c=(("y", "x"), np.zeros((20, 24))))
    with pytest.raises(InputError, match="same dims"):
        PatchDataset(other, ["a", "c"], ("y", "x"), 8)


def test_numpy_windows_and_torch_dataset_agree(synthetic: xr.Dataset) -> None:
    """The data layer plans and reads; the torch dataset only wraps the arrays as tensors."""
    from sparsediff.data.patch_windows import PatchWindows

    kw = {"stride": 4, "min_observed": 0.3, "seed": 3, "rank": 1, "world_size": 2}
    plain = PatchWindows(synthetic, ["a", "b"], ("y", "x"), 6, **kw)
    torched = PatchDataset(synthetic, ["a", "b"], ("y", "x"), 6, dtype=torch.float64, **kw)
    assert plain.windows == torched.windows
    np.testing.assert_array_equal(plain.rank_order(), torched.rank_order())
    items = list(plain)
    assert [i["index"] for i in items] == [i["index"] for i in torched]
    for item, window in zip(items[:3], [plain.windows[int(p)] for p in plain.rank_order()[:3]]):
        tensors = torched.read(window)
        assert isinstance(item["values"], np.ndarray)
        np.testing.assert_array_equal(item["values"], tensors["values"].numpy())
        np.testing.assert_array_equal(item["observed"], tensors["observed"].numpy())
        np.testing.assert_array_equal(item["invalid"], tensors["invalid"].numpy())
