"""Helpers for the actor-mesh tests: waiting with a deadline, collecting, thread checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

# Generous: only there to turn a deadlock into a failure, never to assert on speed.
TIMEOUT_S = 20.0


def wait_until(predicate: Callable[[], object], timeout_s: float = TIMEOUT_S,
               describe: Callable[[], object] | str = "") -> None:
    """Poll ``predicate`` until it is truthy; fail with what was seen after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.0005
    while not predicate():
        if time.monotonic() > deadline:
            seen = describe() if callable(describe) else describe
            pytest.fail(f"condition not met within {timeout_s} s; saw: {seen}")
        time.sleep(delay)  # polling a predicate with a deadline, not sleeping to wait
        delay = min(delay * 2, 0.02)


def mesh_threads() -> list[threading.Thread]:
    """Threads the mesh started that are still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("iris-mesh-")]


class Collector:
    """A thread-safe list with a condition: handlers append, tests wait for a count."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self._cond = threading.Condition()

    def __call__(self, item: object) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout_s: float = TIMEOUT_S) -> list[object]:
        """Wait until at least ``n`` items arrived; returns a copy of them."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.items) >= n, timeout_s):
                pytest.fail(f"expected {n} items within {timeout_s} s, got {self.items!r}")
            return list(self.items)
