"""Hot code swap: an actor's behavior versions, kept for rollback.

Version 1 is the handler the actor was spawned with; every ``hot_swap`` adds a version and
``rollback_behavior`` goes back. Unlike the original runtime, the spawn-time handler is
part of the history, so one swap followed by one rollback returns to it. Pure data; the
runtime applies the current handler between two messages (see ``_kernel.hot_swap``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["MAX_VERSIONS", "BehaviorHistory"]

# Enough for any interactive rollback; bounded so a loop of swaps cannot grow memory.
MAX_VERSIONS = 64


class BehaviorHistory:
    """The versions of one actor's handler, newest last.

    Internal type, not part of the public API.
    """

    __slots__ = ("_versions",)

    def __init__(self, handler: Callable[..., Any]) -> None:
        self._versions: list[tuple[int, Callable[..., Any]]] = [(1, handler)]

    @property
    def version(self) -> int:
        """The number of the current version (1 for the spawn-time handler)."""
        return self._versions[-1][0]

    @property
    def current(self) -> Callable[..., Any]:
        """The handler that runs now."""
        return self._versions[-1][1]

    def push(self, handler: Callable[..., Any]) -> int:
        """Add ``handler`` as the newest version; returns its number."""
        version = self.version + 1
        self._versions.append((version, handler))
        if len(self._versions) > MAX_VERSIONS:
            del self._versions[0]
        return version

    def rollback(self, steps: int) -> int:
        """Drop the newest ``steps`` versions; returns the number of the one now current.

        Raises:
            ValueError: ``steps`` is negative or not fewer than the versions kept.
        """
        if steps < 0:
            raise ValueError(f"rollback steps must be >= 0, got {steps!r}")
        if steps >= len(self._versions):
            raise ValueError(
                f"cannot roll back {steps} step(s): only {len(self._versions) - 1} earlier "
                f"version(s) kept (current version {self.version})")
        if steps:
            del self._versions[-steps:]
        return self.version

    def __len__(self) -> int:
        return len(self._versions)
