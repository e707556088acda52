"""The mailbox a pull actor reads from its own thread: ``recv`` and ``selective_recv``.

::

    any thread: put(m) ─► queue ─┐        pull actor's thread
    runtime:  put_system(s) ─► system ─┼─► recv(timeout)  (system first, then stash, then queue)
                                  └── stash ◄─ selective_recv leaves non-matching ones here

Blocking happens on a ``threading.Condition``: the GIL is released while waiting. The stash
belongs to the receiving thread; messages a ``selective_recv`` passed over wait there in
their arrival order and come before anything newer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from iris.mesh._calls import Call
from iris.mesh._messages import SystemMessage

__all__ = ["Mailbox"]


class Mailbox:
    """A pull actor's mailbox; the actor's function receives it as its only argument.

    ``recv`` returns user messages (``bytes`` or any value sent in-process) and
    ``SystemMessage`` records (EXIT of a linked or monitored actor, HOT_SWAP); system
    messages come before queued user messages. Both receive methods return None on timeout
    and once the actor has been stopped (the function should then return).

    Example:
        >>> def worker(mailbox):
        ...     while (msg := mailbox.recv()) is not None:
        ...         print("got", msg)
        >>> pid = rt.spawn_with_mailbox(worker)
    """

    __slots__ = ("pid", "_cond", "_queue", "_system", "_stash", "_closed", "_waiting",
                 "_pending", "_unanswered")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Any] = deque()
        self._system: deque[Any] = deque()
        self._stash: deque[Any] = deque()
        self._closed = False
        self._waiting = False
        self._pending: Call | None = None
        self._unanswered: list[Call] = []

    # -- runtime side ----------------------------------------------------------------

    def put(self, message: Any) -> bool:
        """Queue a user message (or a Call); False once the mailbox is closed."""
        with self._cond:
            if self._closed:
                return False
            self._queue.append(message)
            if self._waiting:
                self._cond.notify()
        return True

    def put_many(self, messages: list[Any]) -> int:
        """Queue several user messages at once; returns how many were queued."""
        with self._cond:
            if self._closed:
                return 0
            self._queue.extend(messages)
            if self._waiting:
                self._cond.notify()
        return len(messages)

    def put_system(self, message: Any) -> bool:
        """Queue a system message, to be received before user messages."""
        with self._cond:
            if self._closed:
                return False
            self._system.append(message)
            if self._waiting:
                self._cond.notify()
        return True

    def close(self) -> list[Any]:
        """Close the mailbox (``recv`` returns None from now on); returns what was queued."""
        with self._cond:
            self._closed = True
            left = list(self._stash) + list(self._queue)
            self._stash.clear()
            self._queue.clear()
            self._system.clear()
            self._cond.notify_all()
        return left

    def queued(self) -> int:
        """User messages waiting, including those in the selective-receive stash."""
        return len(self._queue) + sum(1 for m in self._stash
                                      if m.__class__ is not SystemMessage)

    @property
    def closed(self) -> bool:
        """Whether the actor has been stopped."""
        return self._closed

    # -- actor side --------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Any:
        """Take the next message, waiting up to ``timeout`` seconds (None: no limit).

        Returns:
            The message, or None on timeout or when the actor has been stopped.
            ``timeout=0`` looks at the queue without waiting.
        """
        if self._system and not self._closed:
            return self._system.popleft()
        if self._stash and not self._closed:
            return self._deliver(self._stash.popleft())
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                if self._system:
                    return self._system.popleft()
                if self._queue:
                    message = self._queue.popleft()
                    break
                if not self._wait_locked(deadline):
                    return None
        return self._deliver(message)

    def selective_recv(self, matcher: Callable[[Any], Any],
                       timeout: float | None = None) -> Any:
        """Take the first message ``matcher`` accepts; the others stay queued, in order.

        Args:
            matcher: called with each candidate (user message or SystemMessage); a truthy
                result selects it. A matcher that raises counts as "no".
            timeout: seconds to wait for a match (None: no limit).

        Returns:
            The first matching message, or None on timeout or when stopped.
        """
        if not callable(matcher):
            raise TypeError(f"selective_recv matcher must be callable, got {matcher!r}")
        stash = self._stash
        for i, message in enumerate(stash):
            if _matches(matcher, message):
                del stash[i]
                return self._deliver(message)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                while not (self._system or self._queue):
                    if self._closed or not self._wait_locked(deadline):
                        return None
                if self._closed:
                    return None
                batch = list(self._system) + list(self._queue)
                self._system.clear()
                self._queue.clear()
            for i, message in enumerate(batch):
                if _matches(matcher, message):
                    stash.extend(batch[i + 1:])
                    return self._deliver(message)
                stash.append(message)

    def reply(self, value: Any) -> bool:
        """Answer the message just received if it came from ``call``; False otherwise.

        Calls a pull actor received and never answered fail with ActorDiedError when it
        exits.
        """
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        pending.reply(value)
        self._unanswered.remove(pending)
        return True

    def fail_pending(self, error: BaseException) -> None:
        """Fail the calls received but never answered (the actor is exiting). Internal."""
        self._pending = None
        unanswered, self._unanswered = self._unanswered, []
        for call in unanswered:
            call.fail(error)

    # -- helpers -----------------------------------------------------------------------

    def _wait_locked(self, deadline: float | None) -> bool:
        """Wait for a put; False when the deadline has passed."""
        if deadline is None:
            remaining = None
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
        self._waiting = True
        try:
            self._cond.wait(remaining)
        finally:
            self._waiting = False
        return True

    def _deliver(self, message: Any) -> Any:
        if message.__class__ is Call:
            self._pending = message
            if len(self._unanswered) >= 64:  # forget calls whose callers gave up
                self._unanswered = [c for c in self._unanswered if not c.future.done()]
            self._unanswered.append(message)
            return message.data
        if message.__class__ is not SystemMessage:
            self._pending = None  # reply() answers only the message just received
        return message

    def __repr__(self) -> str:
        return f"<Mailbox of actor {self.pid}{' closed' if self._closed else ''}>"


def _matches(matcher: Callable[[Any], Any], message: Any) -> bool:
    candidate = message.data if message.__class__ is Call else message
    try:
        return bool(matcher(candidate))
    except Exception:  # noqa: BLE001 - documented: a raising matcher means "no"
        return False
