"""Shared fixtures: a local cluster per module, and the checks that nothing leaks."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterator

import psutil
import pytest

import iris


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0,
               describe: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``describe`` if the
    deadline passes. Tests wait with this (or an Event), never with a bare sleep."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {describe}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def children() -> list[psutil.Process]:
    """Live (non-zombie) descendants of this test process."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def shm_segments(cluster_id: str) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"iris-{cluster_id}-")]


def assert_cluster_gone(cluster_id: str) -> None:
    """Every process and shared-memory segment of the cluster is gone."""
    wait_until(lambda: not children(), 10, "the cluster's processes to exit")
    assert shm_segments(cluster_id) == []


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
