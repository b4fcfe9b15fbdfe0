"""One writer per output (sparsediff.lock): a second run refuses, naming the holder.

The holder is a real second process (a run in progress), so the kernel's lock is what is
tested, not this process's bookkeeping.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import sparsediff
from sparsediff.cli import main
from sparsediff.errors import InputError
from sparsediff.filling.store import fill_to_zarr
from sparsediff.lock import hold, lock_path
from tests.filling.conftest import make_model

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import sys
from sparsediff.lock import hold
with hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def _holder(target: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of ``target`` until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if proc.poll() is None:
            proc.communicate("", timeout=30)


def _data() -> xr.Dataset:
    rng = np.random.default_rng(0)
    v = rng.normal(20.0, 5.0, (3, 10, 12)).astype("float32")
    v[rng.random(v.shape) < 0.3] = np.nan
    return xr.Dataset({"v": (("time", "y", "x"), v)}, coords={"time": np.arange(3)})


def test_a_second_process_is_refused_with_the_holders_pid_and_host(tmp_path: Path) -> None:
    target = tmp_path / "out.nc"
    with _holder(target) as proc:
        with pytest.raises(InputError) as err, hold(target):
            pass
        text = str(err.value)
        assert f"pid {proc.pid} on host {socket.gethostname()} since " in text
        assert "out.nc is being written by another run" in text
        assert "\n" not in text
    with hold(target) as path:  # released when the holder ended
        assert path == lock_path(target)
        assert path.exists()
        with hold(target):  # re-entrant within one process
            pass
        assert path.exists()
    assert not lock_path(target).exists()  # nothing left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    target = tmp_path / "out.zarr"
    with _holder(target) as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert lock_path(target).exists()  # its file is left, but not its lock
        with hold(target):
            assert f"pid {os.getpid()} " in lock_path(target).read_text()


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_cli_fill_to_a_target_being_written_refuses_and_writes_nothing(
    tmp_path: Path, suffix: str
) -> None:
    make_model(["v"], ["y", "x"], [8, 8], mean=20.0, std=5.0).save(tmp_path / "model")
    sparsediff.write(_data(), tmp_path / "in.nc")
    out = tmp_path / f"out{suffix}"
    args = ["fill", str(tmp_path / "model"), str(tmp_path / "in.nc"), str(out)]
    with _holder(out) as proc:
        before = sorted(p.name for p in tmp_path.iterdir())
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        assert lines[0].startswith("error: "), res.stderr
        assert f"is being written by another run (pid {proc.pid} on host" in lines[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    res = CliRunner().invoke(main, args)  # the holder is gone: this one runs
    assert res.exit_code == 0, res.output
    assert out.exists()
    assert not lock_path(out).exists()


def test_api_writers_hold_the_lock_too(tmp_path: Path) -> None:
    model = make_model(["v"], ["y", "x"], [8, 8], mean=20.0, std=5.0)
    with _holder(tmp_path / "a.zarr"), pytest.raises(InputError, match="another run"):
        fill_to_zarr(_data(), model, tmp_path / "a.zarr", progress=False)
    with _holder(tmp_path / "b.nc"), pytest.raises(InputError, match="another run"):
        sparsediff.write(_data(), tmp_path / "b.nc")
    assert not (tmp_path / "a.zarr").exists()
    assert not (tmp_path / "b.nc").exists()
