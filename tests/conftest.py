"""Shared fixtures: a local cluster per module or per test, checked for leftovers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import iris
from iris.testing import local_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[iris.ClusterContext]:
    """An embedded cluster with 2 workers, shared by the tests of one module."""
    with local_cluster(num_workers=2) as ctx:
        yield ctx


@pytest.fixture
def fresh_cluster() -> Iterator[iris.ClusterContext]:
    """An embedded cluster with 2 workers for one test (for tests that break workers)."""
    with local_cluster(num_workers=2) as ctx:
        yield ctx
