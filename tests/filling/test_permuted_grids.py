"""A model's climatology is applied by coordinates: permuted grids fill as the canonical one.

What is really invariant under a permutation of the grid (a longitude rolled to start at
180°, a latitude stored north to south) is the climatology of each point and the
anomalies the model sees. The network's own completion is not: the tile plan, and the
noise keyed by tile position, follow the array, not the globe. So the tests use models
whose completion depends on the anomalies only through permutation-equivariant steps:

* first guess ``"zero"`` with no departure: every gap gets exactly its point's
  climatology (plus the anomaly mean), so the permuted fill must equal the canonical fill
  permuted, bit for bit;
* first guess ``"laplace"`` with no departure: the gaps get the Laplace relaxation of the
  anomalies (periodic in a global longitude) plus the climatology, equal up to the
  solver's tolerance.

Before the fix, the climatology was applied by array position: the rolled grid got the
climatology of the point 180° away and the flipped grid that of the mirrored latitude.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import sparsediff
from sparsediff.errors import CompatibilityError
from tests.filling.conftest import make_model

LAT = np.arange(-75.0, 76.0, 10.0)  # 16 points
LON = np.arange(0.0, 360.0, 10.0)  # 36 points: a global, periodic longitude


def _climatology() -> xr.DataArray:
    """A climatology with structure in both dims (warm equator, a wave in longitude)."""
    lat_part = 300.0 - 25.0 * (LAT[:, None] / 75.0) ** 2
    lon_part = 3.0 * np.sin(np.radians(LON))[None, :]
    return xr.DataArray(
        lat_part + lon_part,
        dims=("lat", "lon"),
        coords={"lat": LAT, "lon": LON},
        name="sst",
    )


def _model(first_guess: str) -> sparsediff.Model:
    model = make_model(
        ["sst"],
        ["lat", "lon"],
        [8, 16],
        first_guess=first_guess,
        climatology_dim="time",
        mean=0.1,
        std=1.0,
    )
    assert model.autoencoder is not None
    with torch.no_grad():
        model.autoencoder.decoder.conv_out.weight.zero_()  # type: ignore[union-attr]
    model.climatology = {"sst": _climatology()}
    return model


def _data(seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    clim = _climatology().values
    values = (clim + rng.normal(0.0, 1.0, size=(3, *clim.shape))).astype("float32")
    values[rng.random(values.shape) < 0.3] = np.nan
    values[:, 5:7, 10:14] = np.nan  # land: missing at every step
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), values, {"units": "K"})},
        coords={"time": np.arange(3), "lat": LAT, "lon": LON},
    )


PERMUTATIONS = {
    "rolled-longitude": lambda ds: ds.roll(lon=18, roll_coords=True),  # 180 ... 350, 0 ... 170
    "flipped-latitude": lambda ds: ds.isel(lat=slice(None, None, -1)),
    "both": lambda ds: ds.roll(lon=7, roll_coords=True).isel(lat=slice(None, None, -1)),
    "minus-180-to-180": lambda ds: ds.roll(lon=18, roll_coords=True).assign_coords(
        lon=np.where(np.roll(LON, 18) >= 180.0, np.roll(LON, 18) - 360.0, np.roll(LON, 18))
    ),
}


@pytest.mark.parametrize("name", list(PERMUTATIONS))
def test_permuted_grid_gets_each_points_climatology_exactly(name: str) -> None:
    permute = PERMUTATIONS[name]
    model = _model("zero")
    ds = _data()
    canonical = sparsediff.fill(ds, model, steps=2, invalid_along="time")
    permuted = sparsediff.fill(permute(ds), model, steps=2, invalid_along="time")
    expected = permute(canonical)
    for v in ("sst", "sst_fill_flag"):
        np.testing.assert_array_equal(permuted[v].values, expected[v].values, err_msg=v)
    gaps = canonical["sst_fill_flag"].values == 1
    assert gaps.sum() > 100
    # each gap holds its own point's climatology (+ the anomaly mean 0.1)
    clim = np.broadcast_to(_climatology().values, gaps.shape)
    np.testing.assert_allclose(canonical["sst"].values[gaps], clim[gaps] + 0.1, rtol=1e-6)


@pytest.mark.parametrize("name", ["rolled-longitude", "flipped-latitude", "both"])
def test_permuted_grid_fills_like_the_canonical_one_with_a_laplace_guess(name: str) -> None:
    """The anomalies the model sees are the canonical ones, permuted."""
    permute = PERMUTATIONS[name]
    model = _model("laplace")
    ds = _data(1)
    canonical = sparsediff.fill(ds, model, steps=2, invalid_along="time")
    permuted = sparsediff.fill(permute(ds), model, steps=2, invalid_along="time")
    expected = permute(canonical)
    np.testing.assert_array_equal(permuted["sst_fill_flag"].values, expected["sst_fill_flag"])
    np.testing.assert_allclose(permuted["sst"].values, expected["sst"].values, atol=2e-3)


def test_permuted_grid_with_a_trained_like_model_keeps_observed_and_flags() -> None:
    """With a model whose departure is not zero, only the observed points, the flags and
    the invalid points are exactly invariant (the network tiles the array)."""
    model = _model("laplace")
    model.autoencoder.decoder.conv_out.weight.data.normal_(0.0, 0.05)  # type: ignore[union-attr]
    ds = _data(2)
    permute = PERMUTATIONS["both"]
    canonical = sparsediff.fill(ds, model, steps=2, invalid_along="time")
    permuted = sparsediff.fill(permute(ds), model, steps=2, invalid_along="time")
    expected = permute(canonical)
    flag = permuted["sst_fill_flag"].values
    np.testing.assert_array_equal(flag, expected["sst_fill_flag"].values)
    observed = flag == 0
    np.testing.assert_array_equal(
        permuted["sst"].values[observed], expected["sst"].values[observed]
    )
    assert np.isnan(permuted["sst"].values[flag == 2]).all()
    # the fills differ by the network's tiling only: far less than the climatology's range
    diff = np.abs(permuted["sst"].values - expected["sst"].values)[flag == 1]
    assert float(np.median(diff)) < 1.0


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda ds: ds.assign_coords(lon=LON + 5.0), r"'lon' = 5 is not on the grid"),
        (lambda ds: ds.assign_coords(lat=LAT + 5.0), r"'lat' = -70 is not on the grid"),
        (lambda ds: ds.assign_coords(lon=np.arange(36) * 9.0), r"'lon' = 9 is not on the grid"),
    ],
    ids=["half-cell-shifted-longitude", "shifted-latitude", "other-spacing"],
)
def test_data_on_another_grid_are_refused_before_any_compute(edit, match: str) -> None:  # type: ignore[no-untyped-def]
    model = _model("zero")
    ds = _data().chunk({"time": 1})
    poison = ds.map_blocks(lambda b: (_ for _ in ()).throw(AssertionError("computed")), template=ds)
    with pytest.raises(CompatibilityError, match=rf"climatology of 'sst'.*|{match}") as err:
        sparsediff.fill(edit(poison), model, steps=1)
    assert "another grid" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_subset_of_the_training_grid_fills_as_the_same_points_of_the_whole() -> None:
    model = _model("zero")
    ds = _data(3)
    whole = sparsediff.fill(ds, model, steps=2, invalid_along="time")
    part = sparsediff.fill(ds.isel(lat=slice(2, 12)), model, steps=2, invalid_along="time")
    np.testing.assert_array_equal(part["sst"].values, whole["sst"].isel(lat=slice(2, 12)).values)


def test_a_saved_model_keeps_the_climatology_coordinates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = sparsediff.load(_model("zero").save(tmp_path / "m"))
    ds = _data(4)
    canonical = sparsediff.fill(ds, model, steps=2, invalid_along="time")
    rolled = sparsediff.fill(
        ds.roll(lon=18, roll_coords=True), model, steps=2, invalid_along="time"
    )
    np.testing.assert_array_equal(
        rolled["sst"].values, canonical.roll(lon=18, roll_coords=True)["sst"].values
    )
    with pytest.raises(CompatibilityError, match="not on the grid"):
        sparsediff.fill(ds.assign_coords(lon=LON + 5.0), model, steps=1)
