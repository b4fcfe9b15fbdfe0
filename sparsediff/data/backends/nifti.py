"""NIfTI-1 volumes (``.nii``, ``.nii.gz``) through nibabel.

A volume becomes a Dataset with one variable on dims ``("z", "y", "x")``
(``("t", "z", "y", "x")`` for 4D images) with integer index coordinates; the
voxel-to-world affine is kept in ``ds.attrs["nifti_affine"]`` as a flat list of
16 floats so that it survives NetCDF and Zarr round trips. Dataset and variable
attributes are stored in a header extension, as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from sparsediff.data.backends.base import (
    Backend,
    OpenOptions,
    WriteOptions,
    check_attrs,
    json_ready,
    json_storable,
)
from sparsediff.data.selection import is_numeric
from sparsediff.errors import InputError

__all__ = ["NiftiBackend", "nifti_dataset"]

_NIFTI_DIMS = ("x", "y", "z", "t")  # nibabel axis order i, j, k, l
_NIFTI_EXT_CODE = 6  # NIFTI_ECODE_COMMENT
_NIFTI_EXT_PREFIX = b"sparsediff-attrs:"


def nifti_dataset(
    data_ijk: np.ndarray,
    affine: np.ndarray,
    *,
    variable_name: str = "image",
    attrs: Mapping[str, Any] | None = None,
    var_attrs: Mapping[str, Any] | None = None,
    encoding: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build the Dataset [`open`][open] returns for a NIfTI volume.

    Parameters
    ----------
    data_ijk
        Voxel array in NIfTI axis order ``(i, j, k[, t])``.
    affine
        4×4 voxel-to-world matrix.
    variable_name
        Name of the data variable.
    attrs, var_attrs, encoding
        Dataset attributes, variable attributes and variable encoding to set.

    Returns
    -------
    xarray.Dataset
        One variable on dims ``("z", "y", "x")`` (or ``("t", "z", "y", "x")``).
    """
    data_ijk = np.asarray(data_ijk)
    if data_ijk.ndim not in (2, 3, 4):
        raise InputError(f"NIfTI data must have 2 to 4 dims, got shape {data_ijk.shape}")
    dims = tuple(reversed(_NIFTI_DIMS[: data_ijk.ndim]))
    data = np.ascontiguousarray(data_ijk.transpose(tuple(reversed(range(data_ijk.ndim)))))
    coords = {d: np.arange(n, dtype=np.int64) for d, n in zip(dims, data.shape)}
    var = xr.Variable(dims, data, attrs=dict(var_attrs or {}))
    var.encoding = dict(encoding or {})
    out_attrs = dict(attrs or {})
    out_attrs["nifti_affine"] = [float(v) for v in np.asarray(affine, dtype=np.float64).ravel()]
    return xr.Dataset({variable_name: var}, coords=coords, attrs=out_attrs)


def _open_nifti(path: Path, variable_name: str) -> xr.Dataset:
    import nibabel as nib

    try:
        img: Any = nib.load(path)  # a Nifti1Image (nibabel's stubs say FileBasedImage)
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # nibabel raises many types for a bad file
        raise InputError(f"cannot read {str(path)!r} as NIfTI: {err}") from err
    hdr: Any = img.header
    raw_dtype = np.dtype(hdr.get_data_dtype())
    slope = float(getattr(img.dataobj, "slope", 1.0))
    inter = float(getattr(img.dataobj, "inter", 0.0))
    encoding: dict[str, Any] = {"dtype": raw_dtype}
    if (slope, inter) != (1.0, 0.0):
        encoding["scale_factor"] = slope
        encoding["add_offset"] = inter
    attrs: dict[str, Any] = {}
    var_attrs: dict[str, Any] = {}
    for ext in hdr.extensions:
        content = ext.get_content()
        if (
            ext.get_code() == _NIFTI_EXT_CODE
            and isinstance(content, bytes)
            and content.startswith(_NIFTI_EXT_PREFIX)
        ):
            saved = json.loads(content[len(_NIFTI_EXT_PREFIX) :].decode("utf-8"))
            attrs.update(saved.get("attrs", {}))
            var_attrs.update(saved.get("var_attrs", {}))
    spatial, temporal = hdr.get_xyzt_units()
    attrs.update(
        {
            "nifti_zooms": [float(z) for z in hdr.get_zooms()],
            "nifti_xyzt_units": [str(spatial), str(temporal)],
            "nifti_sform_code": int(hdr["sform_code"]),
            "nifti_qform_code": int(hdr["qform_code"]),
        }
    )
    descrip = bytes(hdr["descrip"]).rstrip(b"\x00").decode("utf-8", "replace")
    if descrip:
        attrs["nifti_descrip"] = descrip
    return nifti_dataset(
        data,
        img.affine,
        variable_name=variable_name,
        attrs=attrs,
        var_attrs=var_attrs,
        encoding=encoding,
    )


def _nifti_encode(arr: np.ndarray, enc: Mapping[str, Any]) -> tuple[np.ndarray, tuple | None]:
    """Return the array to store and (slope, inter) if it is stored scaled."""
    from nibabel.volumeutils import apply_read_scaling

    if arr.dtype == np.bool_:
        return arr.astype(np.uint8), None
    try:
        target = np.dtype(enc.get("dtype", arr.dtype))
    except TypeError:
        target = arr.dtype
    if arr.dtype.kind != "f" or target == arr.dtype:
        return arr, None
    if not np.isfinite(arr).all():
        return arr, None  # NaN cannot be stored in an integer volume
    if target.kind in "iu":
        slope = float(np.float32(enc.get("scale_factor", 1.0)))
        inter = float(np.float32(enc.get("add_offset", 0.0)))
        raw = np.round((arr.astype(np.float64) - inter) / slope)
        info = np.iinfo(target)
        if raw.min() < info.min or raw.max() > info.max:
            return arr, None
        raw = raw.astype(target)
        if (slope, inter) == (1.0, 0.0):
            return (raw, None) if np.array_equal(raw, arr) else (arr, None)
        if np.array_equal(apply_read_scaling(raw, slope, inter), arr):
            return raw, (slope, inter)
        return arr, None
    if target.kind == "f":
        cast = arr.astype(target)
        return (cast, None) if np.array_equal(cast, arr) else (arr, None)
    return arr, None


def _nifti_variable(ds: xr.Dataset) -> str:
    names = [str(n) for n in ds.data_vars]
    if len(names) == 1:
        return names[0]
    if "image" in names:
        return "image"
    raise InputError(
        "a NIfTI file holds one variable; the dataset has "
        f"{', '.join(names) or 'none'} (keep one, or name it 'image')"
    )


def _prepare_nifti(ds: xr.Dataset) -> tuple[xr.DataArray, tuple[str, ...], bytes]:
    name = _nifti_variable(ds)
    da = ds[name]
    order = _NIFTI_DIMS[: da.ndim]
    if da.ndim not in (2, 3, 4) or set(da.dims) != set(order):
        raise InputError(
            f"variable {name!r} has dims {da.dims}; a NIfTI volume needs dims "
            f"{tuple(reversed(_NIFTI_DIMS[:3]))} (or with 't' first for 4D)"
        )
    if not is_numeric(da) and da.dtype != np.bool_:
        raise InputError(f"variable {name!r} is not numeric (dtype {da.dtype})")
    payload = {"attrs": json_ready(dict(ds.attrs)), "var_attrs": json_ready(dict(da.attrs))}
    try:
        blob = _NIFTI_EXT_PREFIX + json.dumps(payload, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise InputError(f"attributes of {name!r} cannot be stored in a NIfTI file: {err}") from err
    if "nifti_affine" in ds.attrs:
        affine = np.asarray(ds.attrs["nifti_affine"], dtype=np.float64)
        if affine.size != 16 or not np.isfinite(affine).all():
            raise InputError("attribute 'nifti_affine' must hold 16 finite numbers")
    return da, order, blob


def _write_nifti(ds: xr.Dataset, target: Path, run: Mapping[str, Any]) -> None:
    import nibabel as nib

    da, order, blob = _prepare_nifti(ds)
    arr = np.asarray(da.transpose(*order).compute(**run).values)
    arr, scaling = _nifti_encode(arr, da.encoding)
    affine = (
        np.asarray(ds.attrs["nifti_affine"], dtype=np.float64).reshape(4, 4)
        if "nifti_affine" in ds.attrs
        else np.eye(4)
    )
    img = nib.Nifti1Image(arr, affine)
    hdr: Any = img.header
    hdr.set_data_dtype(arr.dtype)
    sform_code = int(ds.attrs.get("nifti_sform_code", 2))
    qform_code = int(ds.attrs.get("nifti_qform_code", 0))
    img.set_sform(affine, code=sform_code)
    if qform_code > 0:
        img.set_qform(affine, code=qform_code)
    else:
        img.set_qform(None)
    zooms = ds.attrs.get("nifti_zooms")
    if zooms is not None and len(zooms) == arr.ndim and arr.ndim > 3:
        hdr.set_zooms(tuple(hdr.get_zooms()[:3]) + tuple(float(z) for z in zooms[3:]))
    units = ds.attrs.get("nifti_xyzt_units")
    if units is not None and len(units) == 2:
        hdr.set_xyzt_units(*(u if u != "unknown" else None for u in units))
    descrip = str(ds.attrs.get("nifti_descrip", ""))[:79]
    hdr["descrip"] = descrip.encode("utf-8", "replace")
    if scaling is not None:
        hdr.set_slope_inter(*scaling)
    hdr.extensions.append(nib.nifti1.Nifti1Extension(_NIFTI_EXT_CODE, blob))
    nib.save(img, target)


class NiftiBackend(Backend):
    """One NIfTI-1 volume per file, read into memory."""

    name: ClassVar[str] = "nifti"
    suffixes: ClassVar[tuple[str, ...]] = (".nii.gz", ".nii")

    def open(self, paths: list[Path], options: OpenOptions) -> xr.Dataset:
        """Read the volume (chunked afterwards when ``chunks`` is a mapping)."""
        if len(paths) != 1:
            raise InputError("NIfTI volumes are opened one at a time")
        ds = _open_nifti(paths[0], options.variable_name)
        return ds.chunk(dict(options.chunks)) if isinstance(options.chunks, Mapping) else ds

    def prepare(self, ds: xr.Dataset, options: WriteOptions) -> xr.Dataset:
        """Check that ``ds`` is one volume whose attributes fit a JSON header extension."""
        out = ds.copy(deep=False)
        check_attrs(out, self.name, json_storable)
        _prepare_nifti(out)
        return out

    def write(self, ds: xr.Dataset, path: Path, options: WriteOptions) -> None:
        """Write the volume, its affine, zooms, units and attributes."""
        _write_nifti(ds, path, options.run)
