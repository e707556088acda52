"""Timers: one thread per runtime with a heap of due times.

::

    send_after / send_interval / idle checks ─► heap[(due, id)] ─► timer thread
                                                 wakes at the earliest due time (Condition,
                                                 GIL released) and runs the callback

Callbacks run on the timer thread and must not block (the runtime's timer sends never
wait for room in a full mailbox). Cancelling is O(1): the entry is forgotten and its heap
slot skipped when it comes up. Internal module.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["TimerService"]

_log = logging.getLogger("iris.mesh")


class _Entry:
    __slots__ = ("fn", "interval_s", "due")

    def __init__(self, fn: Callable[[int], object], interval_s: float | None,
                 due: float) -> None:
        self.fn = fn
        self.interval_s = interval_s
        self.due = due


class TimerService:
    """Runs callbacks after a delay, once or repeatedly. Internal type.

    Args:
        clock: the monotonic clock (a fake one in tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int]] = []
        self._entries: dict[int, _Entry] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._closed = False

    def schedule(self, delay_s: float, fn: Callable[[int], object],
                 interval_s: float | None = None) -> int:
        """Run ``fn(timer_id)`` after ``delay_s`` seconds, then every ``interval_s`` if given.

        Returns:
            The timer id (unique within this runtime, starting at 1).
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("the runtime has been shut down; no new timers")
            timer_id = next(self._ids)
            due = self._clock() + max(0.0, delay_s)
            self._entries[timer_id] = _Entry(fn, interval_s, due)
            heapq.heappush(self._heap, (due, timer_id))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="iris-mesh-timers",
                                                daemon=True)
                self._thread.start()
            elif self._heap[0][1] == timer_id:
                self._cond.notify()
        return timer_id

    def cancel(self, timer_id: int) -> bool:
        """Cancel a timer; False if it is unknown, already fired (one-shot) or cancelled."""
        with self._cond:
            return self._entries.pop(timer_id, None) is not None

    def pending(self) -> int:
        """Timers not yet fired or cancelled."""
        return len(self._entries)

    def close(self, timeout_s: float = 5.0) -> None:
        """Cancel everything and stop the thread."""
        with self._cond:
            self._closed = True
            self._entries.clear()
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _loop(self) -> None:
        while True:
            with self._cond:
                fn = None
                while fn is None:
                    if self._closed:
                        return
                    if not self._heap:
                        self._cond.wait()
                        continue
                    due, timer_id = self._heap[0]
                    now = self._clock()
                    if due > now:
                        self._cond.wait(due - now)
                        continue
                    heapq.heappop(self._heap)
                    entry = self._entries.get(timer_id)
                    if entry is None or entry.due != due:
                        continue  # cancelled
                    if entry.interval_s is None:
                        del self._entries[timer_id]
                    else:
                        entry.due = due + entry.interval_s
                        if entry.due < now:  # fell behind: skip missed ticks
                            entry.due = now + entry.interval_s
                        heapq.heappush(self._heap, (entry.due, timer_id))
                    fn = entry.fn
            try:
                fn(timer_id)
            except Exception:  # noqa: BLE001 - a timer callback must not kill the thread
                _log.exception("iris mesh timer %s callback failed", timer_id)
