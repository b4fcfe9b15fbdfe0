"""Training crops: halo, padding, wrap, context frames and donors, in memory or lazy."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import sparsediff.training.crops as crops_module
from sparsediff.data import masks
from sparsediff.errors import InputError
from sparsediff.training.crops import CropDataset


def _data(nt: int = 5, ny: int = 10, nx: int = 12) -> tuple[xr.Dataset, xr.Dataset]:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(nt, ny, nx)).astype("float32")
    v[:, 0, 0] = np.nan  # invalid (never observed)
    v[2, 4:6, 4:6] = np.nan  # a gap
    ds = xr.Dataset({"a": (("t", "y", "x"), v)})
    return ds, masks.states(ds, ["a"], invalid_along="t")


def _crops(ds: xr.Dataset, st: xr.Dataset, **kw: object) -> CropDataset:
    args: dict[str, object] = {"halo": (2, 3), "shuffle": False, "min_observed": 0.0}
    args.update(kw)
    return CropDataset(ds, ["a"], ("y", "x"), (4, 4), stride=(3, 4), states=st, **args)  # type: ignore[arg-type]


def test_crop_is_the_window_plus_halo_with_padding_outside_the_domain() -> None:
    ds, st = _data()
    c = _crops(ds, st)
    first = c.windows[0]
    assert first.start == (0, 0)
    item = c.read(first)
    assert item["values"].shape == (1, 8, 10)
    active = item["active"][0].numpy()
    # two rows and three columns of padding before the domain: inactive, unobserved
    assert not active[:2].any()
    assert not active[:, :3].any()
    assert not item["observed"][0].numpy()[:2].any()
    # the window itself is the data
    window = item["values"][0, 2:6, 3:7].numpy()
    raw = ds["a"].values[first.batch[0], 0:4, 0:4]
    ok = np.isfinite(raw)
    np.testing.assert_array_equal(window[ok], raw[ok])
    assert not active[2, 3]  # the invalid point (NaN at every step)


def test_periodic_dim_wraps_instead_of_padding() -> None:
    ds, st = _data()
    c = _crops(ds, st, periodic=(False, True))
    item = c.read(c.windows[0])
    # columns before x=0 are the last columns of the domain
    np.testing.assert_array_equal(
        item["values"][0, 2:6, 0].numpy()[item["observed"][0, 2:6, 0].numpy()],
        ds["a"].values[c.windows[0].batch[0], 0:4, -3][item["observed"][0, 2:6, 0].numpy()],
    )
    assert item["active"][0, 2:6, :3].all()


def test_context_frames_and_their_ends() -> None:
    ds, st = _data()
    c = _crops(ds, st, context_dim="t", context_offsets=(-1, 1))
    for w in c.windows:
        item = c.read(w)
        assert item["context"].shape == (2, 1, 8, 10)
        t = w.batch[0]
        for k, off in enumerate((-1, 1)):
            obs = item["context_observed"][k, 0].numpy()
            if not 0 <= t + off < 5:
                assert not obs.any()
                continue
            ref = c.read(type(w)(w.index, (t + off,), w.start, w.observed))
            np.testing.assert_array_equal(obs, ref["observed"][0].numpy())


def test_in_memory_and_lazy_reads_are_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    ds, st = _data()
    fast = _crops(ds, st, context_dim="t", donor=True)
    monkeypatch.setattr(crops_module, "_IN_MEMORY_BYTES", 0)
    slow = _crops(ds.chunk({"t": 2}), st.chunk({"t": 2}), context_dim="t", donor=True)
    assert fast._arrays is not None
    assert slow._arrays is None
    for w in fast.windows[:6]:
        a, b = fast.read(w), slow.read(w)
        assert a.keys() == b.keys()
        for key in a:
            if key != "index":
                assert np.array_equal(a[key].numpy(), b[key].numpy()), key


def test_donor_is_another_step_of_the_same_place() -> None:
    ds, st = _data()
    c = _crops(ds, st, donor=True)
    w = next(w for w in c.windows if w.batch == (1,) and w.start == (3, 4))
    donor = c.read(w)["donor"][0].numpy()
    # step 2 has a gap at y, x = 4..5: some window of step 1 gets it as a donor
    candidates = []
    for t in range(5):
        if t == 1:
            continue
        other = c.read(type(w)(w.index, (t,), w.start, w.observed))
        candidates.append(other["observed"][0].numpy() | ~other["active"][0].numpy())
    assert any(np.array_equal(donor, cand) for cand in candidates)


def test_a_given_keep_mask_is_the_donor_of_every_crop_at_its_own_step() -> None:
    ds, st = _data()
    rng = np.random.default_rng(1)
    keep = xr.DataArray(rng.random((5, 10, 12)) > 0.3, dims=("t", "y", "x"))
    c = _crops(ds, st, keep=keep.transpose("x", "t", "y"))  # any dim order
    for w in c.windows[:6]:
        item = c.read(w)
        donor = item["donor"][0].numpy()
        active = item["active"][0].numpy()
        y0, x0 = w.start[0] - 2, w.start[1] - 3  # the halo before the window
        ys = np.clip(np.arange(y0, y0 + 8), 0, 9)
        xs = np.clip(np.arange(x0, x0 + 10), 0, 11)
        expected = keep.values[w.batch[0]][np.ix_(ys, xs)] | ~active
        np.testing.assert_array_equal(donor, expected)
    assert c.whole_fields().keep is c.keep
    # with coordinates, the mask is lined up by label: data sorted the other way round
    labelled = keep.assign_coords(t=np.arange(5))
    back = ds.assign_coords(t=np.arange(5)).isel(t=slice(None, None, -1))
    c2 = _crops(back, st.assign_coords(t=np.arange(5)).isel(t=slice(None, None, -1)), keep=labelled)
    w = c2.windows[0]
    label = int(back["t"].values[w.batch[0]])
    item = c2.read(w)
    ys = np.clip(np.arange(w.start[0] - 2, w.start[0] + 6), 0, 9)
    xs = np.clip(np.arange(w.start[1] - 3, w.start[1] + 7), 0, 11)
    expected = keep.values[label][np.ix_(ys, xs)] | ~item["active"][0].numpy()
    np.testing.assert_array_equal(item["donor"][0].numpy(), expected)
    with pytest.raises(InputError, match="keep has sizes"):
        _crops(ds, st, keep=keep.isel(t=slice(0, 4)))


def test_whole_field_batches_spread_over_the_part() -> None:
    from sparsediff.training.data import whole_field_batches

    ds, st = _data()
    c = _crops(ds, st)
    whole = c.whole_fields()
    steps = {w.index: w.batch[0] for w in whole.windows}
    batches = whole_field_batches(c, max_fields=3)
    assert [steps[b.positions[0]] for b in batches] == [0, 2, 4]  # first, middle, last
    assert all(tuple(b.values.shape) == (1, 1, 10, 12) for b in batches)
    assert len(whole_field_batches(c)) == 5  # every step when there are few
