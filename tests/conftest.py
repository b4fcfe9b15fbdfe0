"""Shared fixtures: real sample data and small factories that write test files.

One global setting: tests run torch (and the subprocesses they start) with
one thread per process. The suite runs under ``pytest -n 2`` on 2 cores, and
OpenMP threads of one process spinning against another process's make small
convolutions up to 50x slower (measured: a 16-channel 3x3 conv on 8x16x32
took 0.45 ms with 1 thread, 31 ms with 2 threads beside a busy core).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr


def pytest_configure(config: pytest.Config) -> None:
    """One thread per test process (see the module docstring)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ostia_path() -> Path:
    """Path of the OSTIA monthly SST sample (skips if iris-sample-data is absent)."""
    pytest.importorskip("iris_sample_data")
    from sparsediff.data.sample_data import ostia_path as find

    return find()


@pytest.fixture(scope="session")
def _ostia_full(ostia_path: Path) -> xr.Dataset:
    from sparsediff.data.sample_data import open_ostia

    return open_ostia()


@pytest.fixture
def ostia_full(_ostia_full: xr.Dataset) -> xr.Dataset:
    """The whole OSTIA sample (54×18×432) in memory, a fresh deep copy per test."""
    return _ostia_full.copy(deep=True)


@pytest.fixture
def ostia(_ostia_full: xr.Dataset) -> xr.Dataset:
    """A small OSTIA Dataset in memory: the first 12 months (12×18×432), land NaN."""
    return _ostia_full.isel(time=slice(0, 12)).copy(deep=True)


@pytest.fixture(scope="session")
def _mni_small() -> xr.Dataset:
    pytest.importorskip("nilearn")
    from sparsediff.data.sample_data import mni152

    # an off-centre 40×48×40 block: part head, part air
    return mni152(crop={"z": slice(60, 100), "y": slice(30, 78), "x": slice(30, 70)})


@pytest.fixture
def mni_small(_mni_small: xr.Dataset) -> xr.Dataset:
    """A 40×48×40 (z, y, x) crop of the MNI152 template (head and air), as from NIfTI."""
    return _mni_small.copy(deep=True)


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot create anything in.

    Root ignores permission bits, so as root it is a read-only directory of
    sysfs (skipped where there is none).
    """
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    for candidate in (Path("/sys/fs"), Path("/sys/kernel")):
        probe = candidate / ".sparsediff-probe"
        try:
            probe.open("x").close()
        except PermissionError:
            yield candidate
            return
        except OSError:
            continue
        probe.unlink()
    pytest.skip("running as root and no read-only directory was found")


@pytest.fixture
def tmp_netcdf(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``make(ds, name="data.nc", **to_netcdf_kwargs) -> Path`` (plain xarray)."""

    def make(ds: xr.Dataset, name: str = "data.nc", **kwargs: Any) -> Path:
        path = tmp_path / name
        ds.to_netcdf(path, engine="netcdf4", **kwargs)
        return path

    return make


@pytest.fixture
def tmp_zarr(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``make(ds, name="data.zarr", zarr_format=3, consolidated=False) -> Path``."""

    def make(
        ds: xr.Dataset,
        name: str = "data.zarr",
        zarr_format: int = 3,
        consolidated: bool = False,
        **kwargs: Any,
    ) -> Path:
        path = tmp_path / name
        ds.to_zarr(path, zarr_format=zarr_format, consolidated=consolidated, **kwargs)
        return path

    return make


@pytest.fixture
def synthetic() -> Callable[..., tuple[xr.Dataset, np.ndarray]]:
    """Factory of a gappy (time, y, x) field with known states.

    ``make(shape=(6, 32, 40), gap_fraction=0.2, seed=0, name="field")`` returns
    ``(ds, truth)``: ``ds[name]`` is float32 (a Gaussian random field + 280 per
    step), NaN on a fixed "land" disc at every step (truth 2 = INVALID) and at
    random "gap" points (truth 1 = GAP); truth 0 elsewhere (OBSERVED).
    """

    def make(
        shape: tuple[int, int, int] = (6, 32, 40),
        gap_fraction: float = 0.2,
        seed: int = 0,
        name: str = "field",
    ) -> tuple[xr.Dataset, np.ndarray]:
        from sparsediff.data.sample_data import gaussian_random_field

        nt, ny, nx = shape
        rng = np.random.default_rng(seed)
        values = np.stack(
            [gaussian_random_field((ny, nx), seed=seed + t) for t in range(nt)]
        ).astype(np.float32)
        values += np.float32(280.0)
        yy, xx = np.mgrid[0:ny, 0:nx]
        land = (yy - ny / 3) ** 2 + (xx - nx / 3) ** 2 < (min(ny, nx) / 5) ** 2
        gaps = (rng.random(shape) < gap_fraction) & ~land
        # keep every sea point observed at least once so it is a gap, not invalid
        gaps[0] &= False
        truth = np.zeros(shape, dtype=np.uint8)
        truth[gaps] = 1
        truth[:, land] = 2
        values[truth > 0] = np.nan
        ds = xr.Dataset(
            {name: (("time", "y", "x"), values, {"units": "K"})},
            coords={
                "time": np.arange(nt),
                "y": np.linspace(-10.0, 10.0, ny),
                "x": np.linspace(0.0, 30.0, nx),
            },
            attrs={"title": "synthetic test field"},
        )
        return ds, truth

    return make


@pytest.fixture
def count_computes() -> Callable[[], Any]:
    """``with count_computes() as n: ...`` then ``n()`` is the number of dask computes."""

    @contextmanager
    def counting() -> Iterator[Callable[[], int]]:
        from dask.callbacks import Callback

        starts: list[int] = []

        class _Counter(Callback):
            def _start(self, dsk: Any) -> None:
                starts.append(1)

        with _Counter():
            yield lambda: len(starts)

    return counting
