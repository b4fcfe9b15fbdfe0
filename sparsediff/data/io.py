"""Reading and writing gridded data: NetCDF, Zarr (v2 and v3) and NIfTI.

:func:`open` returns a CF-decoded :class:`xarray.Dataset` (dask-backed for
NetCDF and Zarr); :func:`write` writes one back, keeping attributes and
encodings, appending one line to the ``history`` attribute, and never leaving
a half-written file behind: the data go to a hidden temporary sibling that is
renamed into place only once it is complete.

NIfTI volumes become a Dataset with one variable on dims ``("z", "y", "x")``
(``("t", "z", "y", "x")`` for 4D images) with integer index coordinates; the
voxel-to-world affine is kept in ``ds.attrs["nifti_affine"]`` as a flat list of
16 floats so that it survives NetCDF and Zarr round trips.
"""

from __future__ import annotations

import builtins
import glob
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from numbers import Number
from pathlib import Path
from typing import Any, Literal

import dask
import dask.base
import dask.system
import dask.threaded
import numpy as np
import xarray as xr

from sparsediff.errors import InputError

__all__ = [
    "append_history",
    "nifti_dataset",
    "numeric_variables",
    "open",
    "validate_dims",
    "write",
]

PathLike = str | os.PathLike[str]
Chunks = Literal["auto"] | Mapping[str, int] | None
Format = Literal["netcdf", "zarr", "nifti"]

_NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_NIFTI_DIMS = ("x", "y", "z", "t")  # nibabel axis order i, j, k, l
_NIFTI_EXT_CODE = 6  # NIFTI_ECODE_COMMENT
_NIFTI_EXT_PREFIX = b"sparsediff-attrs:"

# Encoding keys kept per target format; everything else is dropped on write.
_CF_KEYS = {
    "_FillValue",
    "missing_value",
    "dtype",
    "scale_factor",
    "add_offset",
    "units",
    "calendar",
}
_NETCDF_KEYS = _CF_KEYS | {
    "zlib",
    "complevel",
    "shuffle",
    "fletcher32",
    "contiguous",
    "chunksizes",
    "compression",
    "szip_coding",
    "szip_pixels_per_block",
    "blosc_shuffle",
    "significant_digits",
    "quantize_mode",
    "least_significant_digit",
    "endian",
    "coordinates",
}
_ZARR_KEYS = _CF_KEYS | {
    "chunks",
    "compressors",
    "compressor",
    "filters",
    "serializer",
    "coordinates",
}


# --------------------------------------------------------------------------- helpers


def _format_of(path: Path) -> Format:
    """Return the format implied by the suffix of ``path``."""
    name = path.name.lower().rstrip("/")
    if name.endswith(_NETCDF_SUFFIXES):
        return "netcdf"
    if name.endswith(".zarr"):
        return "zarr"
    if name.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    raise InputError(
        f"unknown file type {str(path)!r}: expected a suffix among "
        f"{', '.join((*_NETCDF_SUFFIXES, '.zarr', *_NIFTI_SUFFIXES))}"
    )


def _package_version() -> str:
    try:
        return version("sparsediff")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def _history_line(message: str | None) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = " ".join((message or "write").split())  # exactly one line
    return f"{stamp} sparsediff {_package_version()}: {text}"


def append_history(existing: Any, message: str | None) -> str:
    """``existing`` history text plus one timestamped ``sparsediff`` line for ``message``."""
    line = _history_line(message)
    if existing is None:
        return line
    if isinstance(existing, bytes):
        existing = existing.decode("utf-8", "replace")
    existing = str(existing).rstrip("\n")
    return f"{existing}\n{line}" if existing else line


def _as_dataset(obj: xr.Dataset | xr.DataArray) -> xr.Dataset:
    """Return ``obj`` as a Dataset (a DataArray becomes its only variable)."""
    if isinstance(obj, xr.Dataset):
        return obj
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None else "data"
        return obj.to_dataset(name=name, promote_attrs=False)
    raise InputError(f"expected an xarray Dataset or DataArray, got {type(obj).__name__}")


def _dims_text(obj: xr.Dataset | xr.DataArray) -> str:
    sizes = dict(obj.sizes)
    return ", ".join(f"{d}={n}" for d, n in sizes.items()) or "(none)"


def validate_dims(
    obj: xr.Dataset | xr.DataArray, dims: Hashable | Iterable[Hashable]
) -> tuple[Hashable, ...]:
    """Check that every dim in ``dims`` exists in ``obj`` with a non-zero length.

    Parameters
    ----------
    obj
        Dataset or DataArray to check.
    dims
        One dim name or an iterable of dim names.

    Returns
    -------
    tuple
        The dims, as a tuple, in the order given.

    Raises
    ------
    InputError
        A dim is not in ``obj`` or has length zero; the message names the dim
        and lists the available dims with their lengths.
    """
    if isinstance(dims, str) or not isinstance(dims, Iterable):
        dims = (dims,)
    out = tuple(dims)
    sizes = dict(obj.sizes)
    what = f"variable {obj.name!r}" if isinstance(obj, xr.DataArray) else "the dataset"
    for d in out:
        if d not in sizes:
            raise InputError(f"dim {d!r} is not in {what}; available dims: {_dims_text(obj)}")
        if sizes[d] == 0:
            raise InputError(f"dim {d!r} of {what} has length 0; dims: {_dims_text(obj)}")
    return out


def _is_numeric(da: xr.DataArray) -> bool:
    return np.issubdtype(da.dtype, np.number)


def numeric_variables(
    ds: xr.Dataset | xr.DataArray, variables: str | Iterable[str] | None = None
) -> list[str]:
    """Return the data variables to work on.

    Parameters
    ----------
    ds
        The dataset (a DataArray counts as a dataset with one variable).
    variables
        Names to use. ``None`` selects every numeric data variable with at
        least two dims that is not a CF bounds, grid-mapping or flag variable.

    Returns
    -------
    list of str
        Variable names, in dataset order (or in the order given).

    Raises
    ------
    InputError
        A named variable is absent or not numeric, or no variable qualifies.
    """
    ds = _as_dataset(ds)
    names = [str(n) for n in ds.data_vars]
    if variables is not None:
        chosen = [variables] if isinstance(variables, str) else list(variables)
        if not chosen:
            raise InputError("empty list of variables")
        for name in chosen:
            if name not in ds.data_vars:
                raise InputError(
                    f"variable {name!r} is not in the dataset; data variables: "
                    f"{', '.join(names) or '(none)'}"
                )
            if not _is_numeric(ds[name]):
                raise InputError(
                    f"variable {name!r} is not numeric (dtype {ds[name].dtype}); "
                    "only numeric variables can be used"
                )
        return list(dict.fromkeys(chosen))
    auxiliary: set[str] = set()
    for var in ds.variables.values():
        for key in ("bounds", "grid_mapping", "climatology"):
            ref = var.attrs.get(key) or var.encoding.get(key)
            if isinstance(ref, str):
                auxiliary.update(ref.replace(":", " ").split())
    picked = [
        n
        for n in names
        if n not in auxiliary
        and _is_numeric(ds[n])
        and ds[n].ndim >= 2
        and "flag_meanings" not in ds[n].attrs
    ]
    if not picked:
        raise InputError(
            "no numeric data variable with at least 2 dims in the dataset; data variables: "
            f"{', '.join(f'{n}{ds[n].dims}' for n in names) or '(none)'}"
        )
    return picked


# --------------------------------------------------------------------------- open


def _expand_paths(path_or_paths: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(path_or_paths, (str, os.PathLike)):
        text = os.fspath(path_or_paths)
        if any(c in text for c in "*?[") and not Path(text).exists():
            found = sorted(glob.glob(os.path.expanduser(text)))
            if not found:
                raise InputError(f"no file matches {text!r}")
            return [Path(p) for p in found]
        return [Path(text).expanduser()]
    paths = [Path(os.fspath(p)).expanduser() for p in path_or_paths]
    if not paths:
        raise InputError("empty list of paths: nothing to open")
    return paths


def _zarr_layout(path: Path) -> tuple[int, bool]:
    """Return (zarr_format, consolidated) of the store at ``path``."""
    meta = path / "zarr.json"
    if meta.is_file():
        with builtins.open(meta, encoding="utf-8") as f:
            group = json.load(f)
        return 3, group.get("consolidated_metadata") is not None
    if (path / ".zgroup").is_file() or (path / ".zarray").is_file():
        return 2, (path / ".zmetadata").is_file()
    raise InputError(f"{str(path)!r} is not a Zarr store (no zarr.json or .zgroup in it)")


def _typed_fill_values(ds: xr.Dataset) -> xr.Dataset:
    """Give ``_FillValue`` encodings the on-disk dtype (Zarr v3 stores them as JSON numbers)."""
    for var in ds.variables.values():
        fill, dtype = var.encoding.get("_FillValue"), var.encoding.get("dtype")
        if isinstance(fill, int | float) and dtype is not None and np.dtype(dtype).kind in "iuf":
            try:
                with np.errstate(all="ignore"):
                    typed = np.dtype(dtype).type(fill)
            except (OverflowError, ValueError):
                continue
            if float(typed) == float(fill) or (np.isnan(typed) and np.isnan(fill)):
                var.encoding["_FillValue"] = typed
    return ds


def open(
    path_or_paths: PathLike | Sequence[PathLike],
    *,
    chunks: Chunks = "auto",
    variable_name: str = "image",
) -> xr.Dataset:
    """Open NetCDF, Zarr or NIfTI data as a CF-decoded :class:`xarray.Dataset`.

    Parameters
    ----------
    path_or_paths
        A path, a glob pattern or a list of paths. The format follows the
        suffix: ``.nc``/``.nc4``/``.netcdf`` (NetCDF; several files are
        combined by coordinates), ``.zarr`` (a Zarr v2 or v3 store, consolidated
        or not) or ``.nii``/``.nii.gz`` (NIfTI).
    chunks
        Dask chunks for NetCDF and Zarr: ``"auto"`` (default), a mapping
        ``{dim: size}``, or ``None`` for lazily-indexed NumPy arrays. NIfTI
        volumes are read into memory; a mapping chunks them afterwards.
    variable_name
        Name of the data variable of a NIfTI volume.

    Returns
    -------
    xarray.Dataset
        For NIfTI: one variable on dims ``("z", "y", "x")`` (``("t", "z", "y",
        "x")`` in 4D) with integer index coordinates and the affine in
        ``attrs["nifti_affine"]`` (16 floats, row-major).

    Raises
    ------
    InputError
        A missing file, an unknown suffix, an empty list of paths, mixed
        formats, or a file that cannot be read in its format.
    """
    paths = _expand_paths(path_or_paths)
    formats = {_format_of(p) for p in paths}
    if len(formats) > 1:
        raise InputError(
            f"cannot open files of different formats together: {', '.join(map(str, paths))}"
        )
    fmt = formats.pop()
    for p in paths:
        if not p.exists():
            raise InputError(f"file not found: {str(p)!r}")
    if fmt == "nifti":
        if len(paths) != 1:
            raise InputError("NIfTI volumes are opened one at a time")
        ds = _open_nifti(paths[0], variable_name)
        return ds.chunk(dict(chunks)) if isinstance(chunks, Mapping) else ds
    kwargs: dict[str, Any] = {"chunks": dict(chunks) if isinstance(chunks, Mapping) else chunks}
    try:
        with warnings.catch_warnings():
            # chunks chosen for the data variables often split the stored chunks of
            # small auxiliary variables (time bounds); that costs nothing worth a warning
            warnings.filterwarnings("ignore", message="The specified chunks separate")
            return _open_xarray(paths, fmt, kwargs)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files"
        raise InputError(f"cannot read {where!r} as {fmt}: {err}") from err


def _open_xarray(paths: list[Path], fmt: Format, kwargs: dict[str, Any]) -> xr.Dataset:
    """Open NetCDF or Zarr file(s) with xarray."""
    if fmt == "netcdf":
        if len(paths) == 1:
            return xr.open_dataset(paths[0], engine="netcdf4", **kwargs)
        return xr.open_mfdataset(paths, engine="netcdf4", combine="by_coords", **kwargs)
    layouts = {_zarr_layout(p) for p in paths}
    if len(paths) == 1:
        zarr_format, consolidated = layouts.pop()
        ds = xr.open_zarr(paths[0], consolidated=consolidated, zarr_format=zarr_format, **kwargs)
        ds.encoding["zarr_format"] = zarr_format
        return _typed_fill_values(ds)
    consolidated = all(c for _, c in layouts)
    return xr.open_mfdataset(
        paths, engine="zarr", combine="by_coords", consolidated=consolidated, **kwargs
    )


# --------------------------------------------------------------------------- NIfTI


def nifti_dataset(
    data_ijk: np.ndarray,
    affine: np.ndarray,
    *,
    variable_name: str = "image",
    attrs: Mapping[str, Any] | None = None,
    var_attrs: Mapping[str, Any] | None = None,
    encoding: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build the Dataset :func:`open` returns for a NIfTI volume.

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
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # nibabel raises many types for a bad file
        raise InputError(f"cannot read {str(path)!r} as NIfTI: {err}") from err
    hdr = img.header
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


def _json_ready(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    return value


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
    if not _is_numeric(da) and da.dtype != np.bool_:
        raise InputError(f"variable {name!r} is not numeric (dtype {da.dtype})")
    payload = {"attrs": _json_ready(dict(ds.attrs)), "var_attrs": _json_ready(dict(da.attrs))}
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
    hdr = img.header
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


# --------------------------------------------------------------------------- write


def _attr_ok_netcdf(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, str | bytes | Number | np.number):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim <= 1 and (value.dtype.kind in "iufSU")
    if isinstance(value, list | tuple):
        return all(isinstance(v, str) for v in value) or all(
            isinstance(v, Number | np.number) and not isinstance(v, bool | np.bool_) for v in value
        )
    return False


def _check_attrs(ds: xr.Dataset, fmt: Format) -> None:
    """Raise InputError for an attribute the target format cannot store."""
    owners: list[tuple[str, Mapping[Hashable, Any]]] = [("the dataset", ds.attrs)]
    owners += [(f"variable {str(n)!r}", v.attrs) for n, v in ds.variables.items()]
    for owner, attrs in owners:
        for key, value in attrs.items():
            if not isinstance(key, str) or not key:
                raise InputError(f"attribute name {key!r} of {owner} is not a non-empty string")
            if fmt == "netcdf":
                ok = _attr_ok_netcdf(value)
            else:
                try:
                    json.dumps(_json_ready(value))
                    ok = True
                except (TypeError, ValueError):
                    ok = False
            if not ok:
                raise InputError(
                    f"attribute {key!r} of {owner} has a value of type "
                    f"{type(value).__name__} that {fmt} cannot store"
                )


def _chunks_fit_dask(enc_chunks: Sequence[int], var: xr.Variable) -> bool:
    if len(enc_chunks) != var.ndim or any(int(c) <= 0 for c in enc_chunks):
        return False
    if var.chunks is None:
        return True
    for zc, dchunks in zip(enc_chunks, var.chunks):
        if any(c % int(zc) for c in dchunks[:-1]):
            return False
        if len(dchunks) > 1 and dchunks[-1] > dchunks[0]:
            return False
    return True


def _codecs_fit(value: Any, zarr_format: int, kind: str) -> bool:
    import numcodecs.abc
    from zarr.abc import codec as zcodec

    items = value if isinstance(value, list | tuple) else [value]
    if value is None:
        return True
    if zarr_format == 2:
        return kind in ("compressors", "compressor", "filters") and all(
            isinstance(c, numcodecs.abc.Codec) for c in items
        )
    wanted = {
        "compressors": zcodec.BytesBytesCodec,
        "filters": zcodec.ArrayArrayCodec,
        "serializer": zcodec.ArrayBytesCodec,
    }.get(kind)
    return wanted is not None and all(isinstance(c, wanted) for c in items)


def _zarr_encoding(var: xr.Variable, zarr_format: int) -> dict[str, Any]:
    enc = {k: v for k, v in var.encoding.items() if k in _ZARR_KEYS}
    if "chunks" not in enc and "chunksizes" in var.encoding:
        enc["chunks"] = var.encoding["chunksizes"]
    if enc.get("chunks") is not None:
        chunks = enc["chunks"]
        if not isinstance(chunks, Sequence) or not _chunks_fit_dask(chunks, var):
            del enc["chunks"]
        else:
            enc["chunks"] = tuple(int(c) for c in chunks)
    elif "chunks" in enc:
        del enc["chunks"]
    for key in ("compressors", "compressor", "filters", "serializer"):
        if key in enc and not _codecs_fit(enc[key], zarr_format, key):
            del enc[key]
    return enc


def _netcdf_encoding(var: xr.Variable) -> dict[str, Any]:
    enc = {k: v for k, v in var.encoding.items() if k in _NETCDF_KEYS}
    chunks = enc.get("chunksizes")
    if chunks is None and isinstance(var.encoding.get("chunks"), Sequence):
        chunks = var.encoding["chunks"]
    if chunks is not None:
        fits = len(chunks) == var.ndim and all(
            0 < int(c) <= max(n, 1) for c, n in zip(chunks, var.shape)
        )
        if fits and not enc.get("contiguous", False):
            enc["chunksizes"] = tuple(int(c) for c in chunks)
        else:
            enc.pop("chunksizes", None)
    if "dtype" in enc:
        try:
            dtype = np.dtype(enc["dtype"])
        except TypeError:
            dtype = None
        if dtype is not None and dtype.isnative and dtype.byteorder in "<>":
            enc["dtype"] = dtype.newbyteorder("=")
    if enc.get("contiguous") and var.ndim == 0:
        enc.pop("contiguous")
    return enc


def _regular_chunks(var: xr.Variable) -> dict[Hashable, int] | None:
    """Chunk sizes making ``var``'s dask chunks regular, or None if already regular."""
    if var.chunks is None:
        return None
    fix: dict[Hashable, int] = {}
    for dim, c in zip(var.dims, var.chunks):
        if len(c) > 1 and (len(set(c[:-1])) > 1 or c[-1] > c[0]):
            fix[dim] = max(c)
    return fix or None


def _prepare(ds: xr.Dataset, fmt: Format, zarr_format: int) -> xr.Dataset:
    """A shallow copy of ``ds`` with encodings fitted to the target format."""
    out = ds.copy(deep=False)
    if fmt == "zarr":
        fixes: dict[Hashable, int] = {}
        for var in out.variables.values():
            for dim, size in (_regular_chunks(var) or {}).items():
                fixes[dim] = max(size, fixes.get(dim, 0))
        if fixes:
            out = out.chunk(fixes)
    for var in out.variables.values():
        if fmt == "zarr":
            var.encoding = _zarr_encoding(var, zarr_format)
        elif fmt == "netcdf":
            var.encoding = _netcdf_encoding(var)
    _check_attrs(out, fmt)
    return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _replace(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``, replacing an existing ``target`` last."""
    exists = target.exists() or target.is_symlink()
    if not exists or (tmp.is_file() and not target.is_dir()):
        os.replace(tmp, target)
        return
    backup = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    os.replace(target, backup)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(backup, target)
        raise
    _remove(backup)


def write(
    ds: xr.Dataset | xr.DataArray,
    path: PathLike,
    *,
    mode: Literal["w", "w-"] = "w-",
    zarr_format: Literal[2, 3] | None = None,
    history: str | None = None,
    compute: bool = True,
) -> Path:
    """Write a Dataset (or DataArray) to NetCDF, Zarr or NIfTI, atomically.

    Parameters
    ----------
    ds
        The data. A DataArray is written as a Dataset with one variable.
    path
        Target path; the suffix picks the format as in :func:`open`.
        Missing parent directories are created.
    mode
        ``"w-"`` (default) refuses an existing ``path``; ``"w"`` replaces it,
        only once the new file is complete.
    zarr_format
        2 or 3 for Zarr; ``None`` keeps the format the data were read from
        (:func:`open` records it) or uses 3.
    history
        Text of the line appended to the ``history`` attribute (default
        ``"write"``). The line is ``"<UTC time> sparsediff <version>: <text>"``.
    compute
        Zarr only: ``False`` writes the store's metadata and non-dask
        variables and leaves dask-backed arrays to later region writes.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        Unknown suffix, existing target with ``mode="w-"``, a bad ``mode`` or
        ``zarr_format``, or an attribute the format cannot store. Nothing is
        written in these cases.

    Notes
    -----
    Attributes and CF encodings (``_FillValue``, ``dtype``,
    ``scale_factor``/``add_offset``, ``units``/``calendar``) are kept; chunk
    and compressor settings that do not fit the data or the target format are
    dropped. Data go to a hidden sibling (``.tmp-<id>-<name>``) that is
    renamed to ``path`` when complete; on any error it is removed and ``path``
    is left untouched.
    """
    data = _as_dataset(ds)
    target = Path(os.fspath(path)).expanduser()
    fmt = _format_of(target)
    if mode not in ("w", "w-"):
        raise InputError(f"mode must be 'w' or 'w-', got {mode!r}")
    if zarr_format not in (None, 2, 3):
        raise InputError(f"zarr_format must be 2, 3 or None, got {zarr_format!r}")
    if mode == "w-" and (target.exists() or target.is_symlink()):
        raise InputError(f"{str(target)!r} already exists; pass mode='w' to overwrite it")
    if not compute and fmt != "zarr":
        raise InputError("compute=False is only supported when writing Zarr")
    zfmt = int(zarr_format or data.encoding.get("zarr_format", 3))
    out = _prepare(data, fmt, zfmt)
    out.attrs = dict(data.attrs)
    out.attrs["history"] = append_history(data.attrs.get("history"), history)
    if fmt == "nifti":
        _prepare_nifti(out)  # validate before touching the disk

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{target.name}")
    # With the local threaded scheduler the write runs on a pool of our own, so that
    # after a failure we can wait for chunks still in flight before removing the temp.
    local = dask.base.get_scheduler() in (None, dask.threaded.get)
    pool = ThreadPoolExecutor(max_workers=dask.system.CPU_COUNT) if local else None
    run: dict[str, Any] = {"scheduler": "threads", "pool": pool} if pool is not None else {}
    try:
        if fmt == "netcdf":
            pending = out.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", compute=False)
            dask.compute(pending, **run)
        elif fmt == "zarr":
            pending = out.to_zarr(
                tmp, mode="w-", zarr_format=zfmt, consolidated=(zfmt == 2), compute=False
            )
            if compute:
                dask.compute(pending, **run)
        else:
            _write_nifti(out, tmp, run)
        if pool is not None:
            pool.shutdown(wait=True)
        _replace(tmp, target)
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        _remove(tmp)
        if pool is None:  # a distributed cluster may still finish a chunk or two
            for _ in range(3):
                time.sleep(0.2)
                _remove(tmp)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=False)
    return target
