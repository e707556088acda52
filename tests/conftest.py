"""Shared fixtures: a local cluster per module, and the checks that nothing leaks."""

from __future__ import annotations

from typing import Iterator

import pytest

import iris
from iris.testing import assert_cluster_gone


@pytest.fixture(scope="module")
def cluster() -> Iterator[iris.ClusterContext]:
    """An embedded cluster with 2 workers, shared by the tests of one module."""
    iris.shutdown()
    ctx = iris.init(num_workers=2)
    try:
        yield ctx
    finally:
        iris.shutdown()
        assert_cluster_gone(ctx.cluster_id)


@pytest.fixture
def fresh_cluster() -> Iterator[iris.ClusterContext]:
    """An embedded cluster with 2 workers for one test (for tests that break workers)."""
    iris.shutdown()
    ctx = iris.init(num_workers=2)
    try:
        yield ctx
    finally:
        iris.shutdown()
        assert_cluster_gone(ctx.cluster_id)
