"""Fixtures for the offload tests: a private numba cache, a cluster, a subprocess runner."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import iris

REPO = Path(__file__).resolve().parents[2]

# Kernels compiled here are cached on disk (cache=True is the default): keep that cache in
# a private directory, not in tests/jit/__pycache__, so every run starts cold and clean.
if "NUMBA_CACHE_DIR" not in os.environ:
    _cache_dir = tempfile.mkdtemp(prefix="iris-jit-tests-numba-")
    os.environ["NUMBA_CACHE_DIR"] = _cache_dir
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
    if "numba" in sys.modules:  # imported by an earlier test module: tell its config too
        sys.modules["numba"].config.CACHE_DIR = _cache_dir


def run_python(args: list[str], env: dict[str, str] | None = None, timeout_s: float = 90,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` with the repository importable; fail with its output if it fails."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [full_env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, *args], env=full_env, cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout_s)
    assert proc.returncode == 0, (f"python {' '.join(args)} exited with {proc.returncode}\n"
                                  f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def offload_cluster() -> Iterator[iris.ClusterContext]:
    """An embedded cluster with 2 workers shared by one module; always shut down."""
    iris.shutdown()
    ctx = iris.init(num_workers=2)
    try:
        yield ctx
    finally:
        iris.shutdown()
