"""Helpers for the tests of the scripts in ``pipelines/`` and ``benchmarks/``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ROOT / "pipelines"
BENCHMARKS = ROOT / "benchmarks"
CONFIGS = PIPELINES / "configs"


def load_script(path: Path, name: str) -> ModuleType:
    """Import a script as a module named ``name`` (registered, so pydantic resolves it)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_script(path: Path, *args: str, cwd: Path | None = None, timeout: int = 600) -> str:
    """Run a script in a fresh interpreter (one thread); assert it succeeds; return its stdout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
