"""Tests of sparsediff.data.io: formats, round trips, atomic writes, errors."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import dask.array as da
import nibabel as nib
import numpy as np
import pytest
import xarray as xr

import sparsediff
from sparsediff.data.io import numeric_variables, open, validate_dims, write
from sparsediff.errors import InputError

HISTORY_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ sparsediff \S+: .+$")


def history_lines(ds: xr.Dataset) -> list[str]:
    text = ds.attrs.get("history", "")
    return text.split("\n") if text else []


def assert_bit_identical(a: xr.DataArray, b: xr.DataArray) -> None:
    """Same dtype and the same bytes (NaN payloads included)."""
    x, y = np.asarray(a.values), np.asarray(b.values)
    assert x.dtype == y.dtype
    assert x.shape == y.shape
    assert x.tobytes() == y.tobytes()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_netcdf_zarr_netcdf_round_trip(ostia_path: Path, tmp_path: Path, zarr_format: int) -> None:
    src = open(ostia_path)
    z = write(src, tmp_path / "sst.zarr", zarr_format=zarr_format, history="to zarr")
    from_z = open(z)
    assert from_z.encoding["zarr_format"] == zarr_format
    nc = write(from_z, tmp_path / "sst.nc", history="back to netcdf")
    back = open(nc)
    for ds in (from_z, back):
        assert set(ds.variables) == set(src.variables)
        for name in src.variables:
            assert ds[name].attrs == src[name].attrs, name
        assert_bit_identical(ds["surface_temperature"], src["surface_temperature"])
        xr.testing.assert_identical(ds["time_bnds"], src["time_bnds"])
        enc, ref = ds["surface_temperature"].encoding, src["surface_temperature"].encoding
        assert enc["dtype"] == ref["dtype"] == np.float32
        assert enc["_FillValue"] == ref["_FillValue"]
        assert type(enc["_FillValue"]) is type(ref["_FillValue"])
        # xarray may shorten "hours since 1970-01-01 00:00:00" to the same epoch
        assert ds["time"].encoding["units"].startswith("hours since 1970-01-01")
        assert ds["time"].encoding["calendar"] == src["time"].encoding["calendar"]
    assert {k: v for k, v in back.attrs.items() if k != "history"} == src.attrs
    assert history_lines(from_z)[-1].endswith("sparsediff " + sparsediff.__version__ + ": to zarr")
    assert len(history_lines(from_z)) == 1
    assert len(history_lines(back)) == 2
    assert all(HISTORY_LINE.match(line) for line in history_lines(back))
    # the raw file on disk carries the original fill value where land is
    raw = xr.open_dataset(nc, mask_and_scale=False, decode_times=False)
    ref = xr.open_dataset(ostia_path, mask_and_scale=False, decode_times=False)
    assert np.count_nonzero(raw["surface_temperature"].values == np.float32(1e20)) > 0
    assert_bit_identical(raw["surface_temperature"], ref["surface_temperature"])
    assert_bit_identical(raw["time"], ref["time"])
    raw.close()
    ref.close()


def packed_dataset() -> xr.Dataset:
    rng = np.random.default_rng(1)
    values = 280.0 + rng.normal(size=(4, 6, 7)).round(2)
    values[0, 0, :3] = np.nan
    return xr.Dataset(
        {"t": (("time", "y", "x"), values, {"units": "K", "long_name": "temperature"})},
        coords={"time": np.arange(4), "y": np.arange(6.0), "x": np.arange(7.0)},
        attrs={"history": "2001-01-01 created\n2002-02-02 edited", "institution": "test"},
    )


PACKING = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 280.0, "_FillValue": -32768}


def test_packed_int16_survives_netcdf_zarr2_zarr3_netcdf(tmp_netcdf, tmp_path: Path) -> None:
    first = tmp_netcdf(packed_dataset(), encoding={"t": PACKING})
    path = first
    for i, target in enumerate(["a.zarr", "b.zarr", "c.nc", "d.nii.gz"][:3]):
        fmt = {0: 2, 1: 3}.get(i)
        path = write(open(path), tmp_path / target, zarr_format=fmt)
        reread = open(path)
        enc = reread["t"].encoding
        assert np.dtype(enc["dtype"]) == np.int16
        assert enc["scale_factor"] == pytest.approx(0.01, rel=0, abs=0)
        assert enc["add_offset"] == 280.0
        assert enc["_FillValue"] == -32768
        assert len(history_lines(reread)) == 3 + i  # two old lines + one per write
    raw_first = xr.open_dataset(first, mask_and_scale=False)["t"].values
    raw_last = xr.open_dataset(path, mask_and_scale=False)["t"].values
    assert raw_last.dtype == np.int16
    np.testing.assert_array_equal(raw_last, raw_first)
    assert_bit_identical(open(path)["t"], open(first)["t"])


def test_nifti_round_trip_through_netcdf_and_zarr(mni_small: xr.Dataset, tmp_path: Path) -> None:
    affine = np.asarray(mni_small.attrs["nifti_affine"]).reshape(4, 4)
    p1 = write(mni_small, tmp_path / "a.nii.gz")
    img = nib.load(p1)
    assert img.shape == (40, 48, 40)  # (x, y, z) = (i, j, k)
    np.testing.assert_array_equal(img.affine, affine)
    a = open(p1)
    assert a["image"].dims == ("z", "y", "x")
    assert_bit_identical(a["image"], mni_small["image"])
    p2 = write(a, tmp_path / "b.nc")
    p3 = write(open(p2), tmp_path / "c.zarr", zarr_format=3)
    p4 = write(open(p3), tmp_path / "d.nii")
    d = open(p4)
    assert_bit_identical(d["image"], mni_small["image"])
    assert d.attrs["nifti_affine"] == mni_small.attrs["nifti_affine"]
    np.testing.assert_array_equal(nib.load(p4).affine, affine)
    assert d.attrs["title"] == mni_small.attrs["title"]
    assert d["image"].attrs == mni_small["image"].attrs
    assert len(history_lines(d)) == 4
    np.testing.assert_array_equal(d["z"].values, np.arange(40))


def test_nifti_axes_map_to_zyx(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # (i, j, k)
    affine = np.array([[2.0, 0, 0, -3], [0, 3.0, 0, 5], [0, 0, 4.0, 7], [0, 0, 0, 1]])
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    ds = open(path, variable_name="vol")
    assert ds["vol"].dims == ("z", "y", "x")
    assert dict(ds.sizes) == {"z": 6, "y": 5, "x": 4}
    assert ds["vol"].dtype == np.int16
    assert int(ds["vol"].sel(z=5, y=1, x=3)) == data[3, 1, 5]
    assert ds.attrs["nifti_affine"] == [float(v) for v in affine.ravel()]
    assert ds.attrs["nifti_zooms"] == [2.0, 3.0, 4.0]
    out = write(ds, tmp_path / "w.nii.gz")
    img = nib.load(out)
    assert img.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), data)
    np.testing.assert_array_equal(img.affine, affine)


def test_nifti_scaled_int16_keeps_raw_values_and_scaling(tmp_path: Path) -> None:
    raw = np.arange(-30, 30, dtype=np.int16).reshape(3, 4, 5)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(0.5, 10.0)
    path = tmp_path / "s.nii"
    nib.save(img, path)
    ds = open(path)
    assert ds["image"].encoding["scale_factor"] == 0.5
    np.testing.assert_array_equal(ds["image"].transpose("x", "y", "z").values, raw * 0.5 + 10)
    again = nib.load(write(ds, tmp_path / "t.nii"))
    assert again.get_data_dtype() == np.int16
    assert (again.dataobj.slope, again.dataobj.inter) == (0.5, 10.0)
    np.testing.assert_array_equal(again.dataobj.get_unscaled(), raw)


def test_history_gets_one_line_per_write(tmp_path: Path) -> None:
    ds = packed_dataset()
    p = write(ds, tmp_path / "h.nc", history="a\nmultiline   note")
    lines = history_lines(open(p))
    assert lines[:2] == ["2001-01-01 created", "2002-02-02 edited"]
    assert len(lines) == 3
    assert HISTORY_LINE.match(lines[2])
    assert lines[2].endswith(": a multiline note")
    assert ds.attrs["history"] == "2001-01-01 created\n2002-02-02 edited"  # input untouched
    p2 = write(open(p), tmp_path / "h2.nc")
    assert history_lines(open(p2))[-1].endswith(": write")
    assert len(history_lines(open(p2))) == 4


def test_write_dataarray(tmp_path: Path) -> None:
    da_ = packed_dataset()["t"]
    back = open(write(da_, tmp_path / "t.zarr"))
    assert list(back.data_vars) == ["t"]
    assert back["t"].attrs == da_.attrs
    np.testing.assert_array_equal(back["t"].values, da_.values)


def test_open_is_lazy_and_multi_file(ostia_path: Path, ostia: xr.Dataset, tmp_path: Path) -> None:
    ds = open(ostia_path)
    assert isinstance(ds["surface_temperature"].data, da.Array)
    ds_z = open(write(ostia, tmp_path / "o.zarr"))
    assert isinstance(ds_z["surface_temperature"].data, da.Array)
    parts = [ostia.isel(time=slice(0, 5)), ostia.isel(time=slice(5, None))]
    paths = [write(p, tmp_path / f"part{i}.nc") for i, p in enumerate(parts)]
    for spec in (paths, str(tmp_path / "part*.nc")):
        both = open(spec)
        assert isinstance(both["surface_temperature"].data, da.Array)
        assert_bit_identical(both["surface_temperature"], ostia["surface_temperature"])


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
@pytest.mark.parametrize(("zarr_format", "consolidated"), [(2, False), (2, True), (3, True)])
def test_open_zarr_layouts_without_warnings(
    ostia: xr.Dataset, tmp_zarr, zarr_format: int, consolidated: bool
) -> None:
    path = tmp_zarr(ostia, zarr_format=zarr_format, consolidated=consolidated)
    ds = open(path)
    assert ds.encoding["zarr_format"] == zarr_format
    assert_bit_identical(ds["surface_temperature"], ostia["surface_temperature"])


def test_chunk_encoding_that_no_longer_fits_is_dropped(ostia: xr.Dataset, tmp_path: Path) -> None:
    src = open(write(ostia, tmp_path / "a.zarr", zarr_format=3))
    src["surface_temperature"].encoding["chunks"] = (4, 18, 432)
    rechunked = src.chunk({"time": 6})
    out = open(write(rechunked, tmp_path / "b.zarr"))
    assert out["surface_temperature"].encoding["chunks"] == (6, 18, 432)
    kept = open(write(src.chunk({"time": 8}), tmp_path / "c.zarr"))
    assert kept["surface_temperature"].encoding["chunks"] == (4, 18, 432)
    irregular = src.chunk({"time": (5, 3, 4)})
    odd = open(write(irregular, tmp_path / "d.zarr"))
    assert_bit_identical(odd["surface_temperature"], ostia["surface_temperature"])


# --------------------------------------------------------------------------- atomic writes


def failing_dataset() -> xr.Dataset:
    """16 slow chunks, the third of which fails: other chunks are in flight when it does."""

    def boom(block: np.ndarray, block_info=None) -> np.ndarray:
        time.sleep(0.01)
        if block_info[None]["chunk-location"][0] == 2:
            raise RuntimeError("chunk 2 failed on purpose")
        return block

    zeros = da.zeros((16, 8, 8), chunks=(1, 8, 8), dtype=np.float32)
    data = da.map_blocks(boom, zeros, dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))
    return xr.Dataset({"v": (("time", "y", "x"), data)}, coords={"time": np.arange(16)})


@pytest.mark.parametrize("suffix", [".nc", ".zarr", ".nii.gz"])
def test_failing_chunk_leaves_nothing(tmp_path: Path, suffix: str) -> None:
    ds = failing_dataset()
    if suffix == ".nii.gz":
        ds = ds.rename({"time": "z", "y": "y", "x": "x"})
    target = tmp_path / f"out{suffix}"
    with pytest.raises(RuntimeError, match="chunk 2 failed"):
        write(ds, target)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_failing_overwrite_keeps_the_old_target(tmp_path: Path, suffix: str) -> None:
    old = packed_dataset()
    target = write(old, tmp_path / f"out{suffix}")
    with pytest.raises(RuntimeError):
        write(failing_dataset(), target, mode="w")
    assert listing(tmp_path) == [target.name]
    np.testing.assert_array_equal(open(target)["t"].values, old["t"].values)


@pytest.mark.parametrize("suffix", [".nc", ".zarr", ".nii"])
def test_mode_w_dash_refuses_and_w_replaces(tmp_path: Path, suffix: str) -> None:
    first = xr.Dataset({"image": (("z", "y", "x"), np.zeros((2, 3, 4), np.float32))})
    second = first + 1
    target = write(first, tmp_path / f"v{suffix}")
    with pytest.raises(InputError, match="already exists"):
        write(second, target)
    np.testing.assert_array_equal(open(target)["image"].values, 0)
    write(second, target, mode="w")
    np.testing.assert_array_equal(open(target)["image"].values, 1)
    assert listing(tmp_path) == [target.name]


@pytest.mark.parametrize("suffix", [".nc", ".zarr", ".nii.gz"])
def test_unencodable_attr_is_an_input_error(tmp_path: Path, suffix: str) -> None:
    ds = xr.Dataset({"image": (("z", "y", "x"), np.zeros((2, 3, 4)))})
    ds["image"].attrs["bad"] = object()
    with pytest.raises(InputError, match=r"'bad'.*variable 'image'"):
        write(ds, tmp_path / f"v{suffix}")
    assert listing(tmp_path) == []


def test_netcdf_rejects_dict_attr(tmp_path: Path) -> None:
    ds = packed_dataset()
    ds.attrs["meta"] = {"a": 1}
    with pytest.raises(InputError, match="'meta' of the dataset"):
        write(ds, tmp_path / "x.nc")
    assert listing(tmp_path) == []
    assert open(write(ds, tmp_path / "x.zarr")).attrs["meta"] == {"a": 1}


# --------------------------------------------------------------------------- errors


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"file not found: .*missing.nc"):
        open(tmp_path / "missing.nc")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(InputError, match=r"unknown file type .*data.csv"):
        open(tmp_path / "data.csv")
    with pytest.raises(InputError, match="empty list of paths"):
        open([])
    with pytest.raises(InputError, match="no file matches"):
        open(str(tmp_path / "nothing*.nc"))
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(InputError, match="not a Zarr store"):
        open(tmp_path / "empty.zarr")
    (tmp_path / "junk.nc").write_text("not netcdf")
    with pytest.raises(InputError, match=r"cannot read .*junk.nc"):
        open(tmp_path / "junk.nc")


def test_write_errors_write_nothing(tmp_path: Path) -> None:
    ds = packed_dataset()
    with pytest.raises(InputError, match="unknown file type"):
        write(ds, tmp_path / "x.csv")
    with pytest.raises(InputError, match="mode"):
        write(ds, tmp_path / "x.nc", mode="a")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="NIfTI volume needs dims"):
        write(ds, tmp_path / "x.nii")
    with pytest.raises(InputError, match="compute=False"):
        write(ds, tmp_path / "x.nc", compute=False)
    assert listing(tmp_path) == []


def test_compute_false_zarr_writes_metadata_for_region_writes(tmp_path: Path) -> None:
    ds = packed_dataset().chunk({"time": 1})
    target = write(ds, tmp_path / "r.zarr", compute=False)
    assert listing(tmp_path) == ["r.zarr"]
    for t in range(ds.sizes["time"]):
        part = ds.isel(time=[t]).drop_vars(["y", "x"])
        part.to_zarr(target, region={"time": slice(t, t + 1)}, consolidated=False)
    np.testing.assert_array_equal(open(target)["t"].values, ds["t"].values)


def test_validate_dims(ostia: xr.Dataset) -> None:
    assert validate_dims(ostia, "time") == ("time",)
    assert validate_dims(ostia, ["latitude", "longitude"]) == ("latitude", "longitude")
    with pytest.raises(InputError, match=r"dim 'lat' is not in the dataset; .*latitude=18"):
        validate_dims(ostia, ["lat"])
    empty = ostia.isel(time=slice(0, 0))
    with pytest.raises(InputError, match="dim 'time' of the dataset has length 0"):
        validate_dims(empty, "time")


def test_numeric_variables(ostia_path: Path) -> None:
    ds = open(ostia_path)
    # the grid mapping (0-d int) and the datetime bounds are not data to fill
    assert numeric_variables(ds) == ["surface_temperature"]
    assert numeric_variables(ds, "surface_temperature") == ["surface_temperature"]
    with pytest.raises(InputError, match=r"'sst' is not in the dataset.*surface_temperature"):
        numeric_variables(ds, ["sst"])
    with pytest.raises(InputError, match="'time_bnds' is not numeric"):
        numeric_variables(ds, ["time_bnds"])
    with pytest.raises(InputError, match="no numeric data variable"):
        numeric_variables(ds[["time_bnds"]])


# --------------------------------------------------------------------------- backends


def test_backend_for_picks_by_suffix() -> None:
    from sparsediff.data.backends import BACKENDS, backend_for

    assert [b.name for b in BACKENDS] == ["netcdf", "zarr", "nifti"]
    for name, want in [("a.nc", "netcdf"), ("A.NC4", "netcdf"), ("b.zarr", "zarr")]:
        assert backend_for(Path(name)).name == want
    assert backend_for(Path("c.nii.gz")).name == "nifti"
    with pytest.raises(InputError, match=r"unknown file type 'd.grib'.*\.nc, .*\.zarr"):
        backend_for(Path("d.grib"))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_written_zarr_opens_cleanly_with_plain_xarray(
    ostia: xr.Dataset, tmp_path: Path, zarr_format: int
) -> None:
    """Stores we write carry consolidated metadata: ecosystem defaults open them silently."""
    path = write(ostia, tmp_path / "o.zarr", zarr_format=zarr_format)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = xr.open_zarr(path)
        assert_bit_identical(plain["surface_temperature"], ostia["surface_temperature"])
        lazy = write(ostia.chunk({"time": 4}), tmp_path / "r.zarr", compute=False)
        xr.open_zarr(lazy)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_coordinates_get_no_fill_value(ostia_path: Path, tmp_path: Path, suffix: str) -> None:
    out = write(open(ostia_path), tmp_path / f"o{suffix}")
    raw = xr.open_dataset(out, mask_and_scale=False, decode_times=False)
    for name in ("time", "latitude", "longitude", "time_bnds"):
        assert "_FillValue" not in raw[name].attrs, name
    assert "_FillValue" in raw["surface_temperature"].attrs
    raw.close()


def test_write_into_a_read_only_directory_is_one_clear_error(readonly_dir: Path) -> None:
    with pytest.raises(InputError, match="not writable"):
        write(packed_dataset(), readonly_dir / "sub" / "x.nc")
    with pytest.raises(InputError, match="not writable"):
        write(packed_dataset(), readonly_dir / "x.zarr")
