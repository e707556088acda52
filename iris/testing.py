"""Helpers for testing code that uses iris: wait for conditions, check for leftovers.

Example:
    >>> from iris.testing import wait_until
    >>> wait_until(lambda: True, timeout_s=1)
    True
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["assert_cluster_gone", "live_children", "local_cluster", "shm_segments",
           "wait_until"]


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0,
               describe: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises:
        AssertionError: ``timeout_s`` passed first; the message names ``describe``.
    """
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


def live_children() -> list[Any]:
    """Live (non-zombie) descendant processes of this process, as ``psutil.Process``."""
    import psutil

    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def shm_segments(cluster_id: str) -> list[str]:
    """Names of the shared-memory segments a cluster has on this machine."""
    from iris._store import SHM_DIR

    return [n for n in os.listdir(SHM_DIR) if n.startswith(f"iris-{cluster_id}-")]


def assert_cluster_gone(cluster_id: str, timeout_s: float = 10.0) -> None:
    """Assert that every child process and shared-memory segment of a cluster is gone."""
    wait_until(lambda: not live_children(), timeout_s, "the cluster's processes to exit")
    left = shm_segments(cluster_id)
    assert not left, f"shared-memory segments left behind: {left}"


@contextlib.contextmanager
def local_cluster(num_workers: int = 2, **init_options: Any) -> Iterator[Any]:
    """Start a fresh embedded cluster; on exit shut it down and check nothing is left.

    Any cluster this process was connected to is shut down first.

    Example:
        >>> with local_cluster(num_workers=2) as ctx:      # doctest: +SKIP
        ...     assert iris.get(f.remote(1)) == 2
    """
    import iris

    iris.shutdown()
    ctx = iris.init(num_workers=num_workers, **init_options)
    try:
        yield ctx
    finally:
        iris.shutdown()
        assert_cluster_gone(ctx.cluster_id)
