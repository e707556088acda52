"""Fixtures for the offload tests: a private numba disk cache and an embedded cluster."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

import pytest

import iris
from iris.testing import local_cluster

# Kernels compiled here are cached on disk (cache=True is the default): keep that cache in
# a private directory, not in tests/jit/__pycache__, so every run starts cold and clean.
if "NUMBA_CACHE_DIR" not in os.environ:
    _cache_dir = tempfile.mkdtemp(prefix="iris-jit-tests-numba-")
    os.environ["NUMBA_CACHE_DIR"] = _cache_dir
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
    if "numba" in sys.modules:  # imported by an earlier test module: tell its config too
        sys.modules["numba"].config.CACHE_DIR = _cache_dir


@pytest.fixture(scope="module")
def offload_cluster() -> Iterator[iris.ClusterContext]:
    """An embedded cluster with 2 workers shared by one module; always shut down."""
    with local_cluster(num_workers=2) as ctx:
        yield ctx
