"""Storage URLs go to xarray/fsspec unmangled: memory://, file://, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.data.urls import is_url, local_path
from sparsediff.errors import InputError


def _ds() -> xr.Dataset:
    a = np.arange(24, dtype="float32").reshape(2, 3, 4)
    a[0, 1, 1] = np.nan
    ds = xr.Dataset({"sst": (("time", "lat", "lon"), a, {"units": "K"})})
    return ds.assign_attrs(title="url test")


def test_memory_url_round_trip() -> None:
    url = "memory://bucket/sst.zarr"
    fs = fsspec.filesystem("memory")
    if fs.exists("/bucket/sst.zarr"):
        fs.rm("/bucket/sst.zarr", recursive=True)
    assert sparsediff.write(_ds(), url, history="url test") == url
    back = sparsediff.open(url)
    assert back["sst"].chunks is not None  # lazy, through fsspec
    np.testing.assert_array_equal(back["sst"].values, _ds()["sst"].values)
    assert back["sst"].attrs["units"] == "K"
    assert back.attrs["history"].endswith("url test")
    with pytest.raises(InputError, match="already exists"):
        sparsediff.write(_ds(), url)
    sparsediff.write(_ds() + 1, url, mode="w")
    assert float(sparsediff.open(url)["sst"].max()) == 24.0


def test_file_url_is_a_local_path(tmp_path: Path) -> None:
    url = (tmp_path / "a b.zarr").as_uri()  # file:///.../a%20b.zarr
    assert local_path(url) == tmp_path / "a b.zarr"
    sparsediff.write(_ds(), url)
    assert (tmp_path / "a b.zarr").is_dir()
    np.testing.assert_array_equal(sparsediff.open(url)["sst"].values, _ds()["sst"].values)
    nc = (tmp_path / "x.nc").as_uri()
    sparsediff.write(_ds(), nc)
    assert sparsediff.open(nc).attrs["title"] == "url test"


def test_urls_are_not_mangled_and_unsupported_ones_are_refused() -> None:
    assert is_url("s3://bucket/era5.zarr")
    assert not is_url("/data/era5.zarr")
    assert not is_url("C:/data/era5.zarr")
    with pytest.raises(InputError, match=r"'memory://nowhere/none\.zarr'"):
        sparsediff.open("memory://nowhere/none.zarr")
    with pytest.raises(InputError, match="only Zarr stores"):
        sparsediff.open("s3://bucket/era5.nc")
    with pytest.raises(InputError, match="only Zarr stores"):
        sparsediff.write(_ds(), "memory://bucket/out.nc")
