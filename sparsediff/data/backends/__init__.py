"""Storage backends, one module per format behind one interface ([`Backend`][Backend]).

=========  ===============================  ===============================
backend    suffixes                         module
=========  ===============================  ===============================
netcdf     ``.nc``, ``.nc4``, ``.netcdf``   [`netcdf`][sparsediff.data.backends.netcdf]
zarr       ``.zarr``                        [`zarr`][sparsediff.data.backends.zarr]
nifti      ``.nii``, ``.nii.gz``            [`nifti`][sparsediff.data.backends.nifti]
=========  ===============================  ===============================

[`backend_for`][backend_for] picks the backend of a path by its suffix. Adding a format
is one module with a [`Backend`][Backend] subclass and one line in
`BACKENDS`.
"""

from __future__ import annotations

from pathlib import Path

from sparsediff.data.backends.base import Backend, OpenOptions, WriteOptions
from sparsediff.data.backends.netcdf import NetCDFBackend
from sparsediff.data.backends.nifti import NiftiBackend
from sparsediff.data.backends.zarr import ZarrBackend
from sparsediff.errors import InputError

__all__ = ["BACKENDS", "Backend", "OpenOptions", "WriteOptions", "backend_for"]

#: Every backend, in the order their suffixes are tried.
BACKENDS: tuple[Backend, ...] = (NetCDFBackend(), ZarrBackend(), NiftiBackend())


def backend_for(path: Path) -> Backend:
    """The backend of ``path``, by its suffix.

    Raises
    ------
    InputError
        No backend claims the suffix; the message lists the known ones.
    """
    for backend in BACKENDS:
        if backend.detect(path):
            return backend
    known = ", ".join(s for b in BACKENDS for s in b.suffixes)
    raise InputError(f"unknown file type {str(path)!r}: expected a suffix among {known}")
