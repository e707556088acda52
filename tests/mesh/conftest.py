"""Fixtures for the actor-mesh tests: a Runtime that is always shut down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _mesh_testing import Collector, mesh_threads, wait_until

import iris
from iris.mesh import Runtime


@pytest.fixture
def rt() -> Iterator[Runtime]:
    """A fresh Runtime, shut down after the test; the test fails if threads are left."""
    before = set(mesh_threads())
    runtime = iris.Runtime()
    try:
        yield runtime
    finally:
        runtime.shutdown()
    wait_until(lambda: not (set(mesh_threads()) - before), 10.0,
               lambda: set(mesh_threads()) - before)


@pytest.fixture
def collector() -> Collector:
    """A fresh Collector."""
    return Collector()
