"""PIDs: how the runtime names actors.

A PID is a positive ``int``. Each runtime hands them out from a counter that never goes
back, so a dead actor's PID is never reused for another actor (the original runtime reused
slab slots with a generation number for the same guarantee). 0 is never a PID; on the wire
it means "not found". Internal module.
"""

from __future__ import annotations

import itertools

__all__ = ["PidAllocator", "check_pid"]


class PidAllocator:
    """Hands out PIDs 1, 2, 3, ... (thread-safe: ``itertools.count`` is atomic under the GIL)."""

    def __init__(self, start: int = 1) -> None:
        self._counter = itertools.count(start)

    def next(self) -> int:
        """A PID never handed out before by this allocator."""
        return next(self._counter)


def check_pid(pid: object, what: str = "pid") -> int:
    """Validate a PID argument.

    Raises:
        TypeError: ``pid`` is not an ``int`` (``bool`` is refused too).
    """
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise TypeError(f"{what} must be an int, got {pid!r}")
    return pid
