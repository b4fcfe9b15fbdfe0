"""Real and synthetic sample data, all available offline.

* OSTIA monthly sea-surface temperature (54×18×432, land NaN) from the
  ``iris-sample-data`` package;
* the MNI152 T1 brain template (197×233×189) shipped with ``nilearn``;
* Gaussian random fields with a set power spectrum, for tests with known answers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from sparsediff.data.backends.nifti import nifti_dataset
from sparsediff.data.io import open as open_data
from sparsediff.errors import InputError

__all__ = ["gaussian_random_field", "mni152", "mni152_invalid", "open_ostia", "ostia_path"]


def ostia_path() -> Path:
    """Path of ``ostia_monthly.nc`` in the ``iris-sample-data`` package.

    Returns
    -------
    pathlib.Path
        The NetCDF file.

    Raises
    ------
    InputError
        The package is not installed (``pip install iris-sample-data``).
    """
    spec = importlib.util.find_spec("iris_sample_data")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the OSTIA sample needs the iris-sample-data package: pip install iris-sample-data"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "sample_data" / "ostia_monthly.nc"
    if not path.is_file():
        raise InputError(
            f"{str(path)!r} is missing; reinstall it with: pip install iris-sample-data"
        )
    return path


def open_ostia(chunks: Mapping[str, int] | None = None) -> xr.Dataset:
    """Open the OSTIA monthly SST sample with just ``surface_temperature``.

    Parameters
    ----------
    chunks
        ``None`` (default) loads the 1.7 MB sample into memory; a mapping
        ``{dim: size}`` returns it dask-backed.

    Returns
    -------
    xarray.Dataset
        ``surface_temperature`` (float32, K) on (time, latitude, longitude);
        land is NaN at every time step. The file's bounds variables are not
        kept, nor the ``bounds`` attributes that name them.
    """
    ds = open_data(ostia_path(), chunks=dict(chunks) if chunks is not None else None)
    sst = ds["surface_temperature"]
    out = sst.to_dataset()
    out["surface_temperature"].attrs.pop("grid_mapping", None)
    for var in out.variables.values():  # no `bounds` naming a variable left behind
        for meta in (var.attrs, var.encoding):
            if "bounds" in meta and meta["bounds"] not in out.variables:
                del meta["bounds"]
    out.attrs = dict(ds.attrs)
    if chunks is None:
        out = out.load()
        ds.close()
    return out


def mni152(crop: int | Sequence[int] | Mapping[str, slice] | None = None) -> xr.Dataset:
    """The MNI152 T1 template as `sparsediff.open` returns a NIfTI volume.

    Parameters
    ----------
    crop
        ``None`` for the full 197×233×189 volume (dims z, y, x = 189, 233,
        197); an int ``n`` or a triple ``(nz, ny, nx)`` for a centred crop; or
        a mapping ``{dim: slice}``. The affine is shifted so that world
        coordinates stay right and index coordinates restart at 0.

    Returns
    -------
    xarray.Dataset
        Variable ``image`` (float32, 0 outside the brain) on (z, y, x) with
        ``attrs["nifti_affine"]``.
    """
    from nilearn.datasets import load_mni152_template

    img = load_mni152_template()
    data = np.asarray(np.asanyarray(img.dataobj), dtype=np.float32)
    ds = nifti_dataset(
        data,
        img.affine,
        attrs={"title": "MNI152 T1 template (nilearn)", "nifti_sform_code": 2},
        var_attrs={"long_name": "T1-weighted intensity"},
        encoding={"dtype": np.dtype(np.float32)},
    )
    if crop is None:
        return ds
    if isinstance(crop, Mapping):
        slices = {d: crop.get(d, slice(None)) for d in ("z", "y", "x")}
    else:
        sizes = (crop,) * 3 if isinstance(crop, int) else tuple(crop)
        if len(sizes) != 3 or any(int(n) <= 0 for n in sizes):
            raise InputError(f"crop must be a positive int or 3 positive ints, got {crop!r}")
        slices = {}
        for d, n in zip(("z", "y", "x"), sizes):
            full = ds.sizes[d]
            n = min(int(n), full)
            start = (full - n) // 2
            slices[d] = slice(start, start + n)
    for d, s in slices.items():
        start, _, step = s.indices(ds.sizes[d])
        if step != 1:
            raise InputError(f"crop slices must have step 1, got {s!r} for dim {d!r}")
    starts = [slices[d].indices(ds.sizes[d])[0] for d in ("x", "y", "z")]  # i, j, k
    cropped = ds.isel(slices)
    if any(n == 0 for n in cropped.sizes.values()):
        raise InputError(f"crop {crop!r} leaves an empty volume")
    affine = np.asarray(ds.attrs["nifti_affine"], dtype=np.float64).reshape(4, 4)
    shift = np.eye(4)
    shift[:3, 3] = starts
    out = nifti_dataset(
        cropped["image"].transpose("x", "y", "z").values,
        affine @ shift,
        attrs={k: v for k, v in ds.attrs.items() if k != "nifti_affine"},
        var_attrs=dict(ds["image"].attrs),
        encoding=dict(ds["image"].encoding),
    )
    return out


def mni152_invalid(ds: xr.Dataset) -> xr.DataArray:
    """Invalid mask of an [`mni152`][mni152] volume: ``True`` in the air around the brain.

    Zero-valued voxels connected to the outside are air; zero voxels enclosed
    by tissue stay valid.

    Parameters
    ----------
    ds
        A Dataset from [`mni152`][mni152] (variable ``image``).

    Returns
    -------
    xarray.DataArray
        Boolean on (z, y, x), ``True`` = invalid.
    """
    from scipy.ndimage import binary_fill_holes

    if "image" not in ds.data_vars:
        raise InputError("mni152_invalid needs a Dataset with the variable 'image'")
    image = ds["image"]
    inside = binary_fill_holes(np.asarray(image.values) != 0)
    return xr.DataArray(~inside, dims=image.dims, coords=image.coords, name="invalid")


def gaussian_random_field(shape: Sequence[int], *, slope: float = 3.0, seed: int = 0) -> np.ndarray:
    """A periodic Gaussian random field with isotropic power spectrum ``P(k) ∝ k^-slope``.

    Parameters
    ----------
    shape
        2 or 3 positive sizes.
    slope
        Spectral slope; larger is smoother.
    seed
        Seed of `numpy.random.default_rng`; same seed, same field.

    Returns
    -------
    numpy.ndarray
        float64 of ``shape``, mean exactly 0 and standard deviation exactly 1.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or any(n < 2 for n in shape):
        raise InputError(f"shape must be 2 or 3 sizes >= 2, got {shape}")
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfftn(rng.standard_normal(shape))
    freqs = [np.fft.fftfreq(n) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
    k2 = sum(
        np.square(f).reshape([-1 if i == j else 1 for j in range(len(shape))])
        for i, f in enumerate(freqs)
    )
    amplitude = np.zeros_like(k2)
    np.power(k2, -slope / 4.0, out=amplitude, where=k2 > 0)
    field = np.fft.irfftn(spectrum * amplitude, s=shape, axes=tuple(range(len(shape))))
    field -= field.mean()
    field /= field.std()
    return field
