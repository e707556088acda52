"""The scheduler: threads that run push actors' handlers, a budget of messages per turn.

::

    senders (any thread)                     scheduler thread(s)
    send(pid, m) ─► actor.queue.append(m)    loop: a = runq.popleft()
        └ if not actor.scheduled:                   run up to a.budget messages of a
             actor.scheduled = True                 still has messages? runq.append(a)
             runq.append(actor) ─────────────►      else a.scheduled = False
             wake an idle thread                    (re-checked under the lock)

An actor is in the run queue at most once (``scheduled``), so its messages are handled one
at a time, in order. ``budget`` (the "reductions" of the original) bounds a turn: a flooded
actor goes to the back of the run queue after ``budget`` messages, so it cannot starve the
others. There is no preemption inside a handler.

A scheduler thread that must block (a push actor sending to a full mailbox with the
``block`` policy) calls ``begin_blocking``: a stand-in thread is started so the remaining
actors keep running; the surplus thread retires once things are idle again.

Internal module.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from iris.mesh._calls import Call

if TYPE_CHECKING:
    from iris.mesh._actor import Actor

__all__ = ["Deferred", "Scheduler", "TurnHooks", "current_scheduler"]

_tls = threading.local()
_ids = itertools.count(1)


class Deferred:
    """``count`` messages queued as one item, cut out only when the actor gets to them.

    The mesh listener queues a whole network frame to one actor this way (validated, not
    yet cut into messages): its thread does not make a Python object per message, and the
    scheduler thread makes each one just before handling it (in cache, on its own core).
    ``expand()`` returns the messages, in order; the scheduler puts them at the front of
    the queue. Internal type.
    """

    __slots__ = ("expand", "count")

    def __init__(self, expand: Callable[[], list[Any]], count: int) -> None:
        self.expand = expand
        self.count = count


def current_scheduler() -> Scheduler | None:
    """The scheduler whose thread is running this code, or None on any other thread."""
    return getattr(_tls, "scheduler", None)


class TurnHooks(Protocol):
    """What the scheduler asks of the actor kernel. Internal."""

    def crashed(self, actor: Actor, message: object, error: BaseException) -> None:
        """The handler raised ``error`` while handling ``message``."""

    def end_turn(self, actor: Actor) -> None:
        """The actor's turn ended with an empty queue or a None handler."""

    def message_taken(self, actor: Actor) -> None:
        """A bounded actor took a message off its queue (room for a waiting sender)."""


class Scheduler:
    """A run queue served by ``threads`` threads. Internal type.

    Args:
        name: thread name prefix (``iris-mesh-<name>-N``).
        threads: number of threads serving the queue.
        hooks: the kernel's callbacks.
    """

    def __init__(self, name: str, threads: int, hooks: TurnHooks) -> None:
        if threads < 1:
            raise ValueError(f"a scheduler needs at least one thread, got {threads!r}")
        self.name = name
        self.runq: deque[Actor] = deque()
        self._hooks = hooks
        self._target = threads
        self._cond = threading.Condition(threading.Lock())
        self._idle = 0
        self._blocked = 0
        self._threads: list[threading.Thread] = []
        self._live = 0
        self._closed = False
        self._started = False

    # -- thread management -------------------------------------------------------------

    def start(self) -> None:
        """Start the threads (idempotent; called on first use)."""
        if self._started:
            return
        with self._cond:
            if self._started or self._closed:
                return
            self._started = True
            for _ in range(self._target):
                self._spawn_thread_locked()

    def _spawn_thread_locked(self) -> None:
        t = threading.Thread(target=self._loop, name=f"iris-mesh-{self.name}-{next(_ids)}",
                             daemon=True)
        self._threads.append(t)
        self._live += 1
        t.start()

    def resize(self, threads: int) -> None:
        """Change the number of threads (takes effect for threads started from now)."""
        if threads < 1:
            raise ValueError(f"a scheduler needs at least one thread, got {threads!r}")
        with self._cond:
            self._target = threads
            if self._started:
                while self._live - self._blocked < self._target:
                    self._spawn_thread_locked()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop every thread and wait for them (up to ``timeout_s`` in all)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout_s
        me = threading.current_thread()
        for t in threads:
            if t is not me:
                t.join(max(0.0, deadline - time.monotonic()))

    def thread_count(self) -> int:
        """Threads alive now (including stand-ins for blocked ones)."""
        return self._live

    # -- scheduling ----------------------------------------------------------------------

    def enqueue(self, actor: Actor) -> None:
        """Put an actor (already marked ``scheduled``) on the run queue and wake a thread."""
        self.runq.append(actor)
        if self._idle:
            with self._cond:
                self._cond.notify()

    def begin_blocking(self) -> None:
        """The calling scheduler thread is about to block: start a stand-in thread."""
        with self._cond:
            self._blocked += 1
            if not self._closed and self._live - self._blocked < self._target:
                self._spawn_thread_locked()

    def end_blocking(self) -> None:
        """The calling scheduler thread is back from blocking."""
        with self._cond:
            self._blocked -= 1

    def _wait_for_work(self) -> bool:
        """Sleep until the run queue has work; False when this thread should exit."""
        with self._cond:
            while not self.runq:
                if self._closed or self._live - self._blocked > self._target:
                    self._live -= 1
                    return False
                self._idle += 1
                self._cond.wait()
                self._idle -= 1
            return True

    def _loop(self) -> None:
        _tls.scheduler = self
        runq = self.runq
        run = self._run
        try:
            while True:
                try:
                    actor = runq.popleft()
                except IndexError:
                    if not self._wait_for_work():
                        return
                    continue
                if self._closed:
                    actor.scheduled = False  # shutting down: run nothing more
                    continue
                run(actor)
        finally:
            _tls.scheduler = None

    def _run(self, a: Actor) -> None:
        """One turn: up to ``a.budget`` messages, then back of the queue or idle."""
        a.running = True
        q = a.queue
        n = budget = a.budget
        bounded = a.capacity is not None
        m: object = None
        popleft = q.popleft
        call = Call
        deferred = Deferred
        try:
            if bounded:
                taken = self._hooks.message_taken
                while n:
                    h = a.handler
                    if h is None or not q:
                        break
                    m = popleft()
                    if m.__class__ is deferred:
                        q.extendleft(reversed(m.expand()))  # type: ignore[attr-defined]
                        continue
                    taken(a)
                    if m.__class__ is call:
                        m.reply(h(m.data))  # type: ignore[attr-defined]
                    else:
                        h(m)
                    n -= 1
            else:
                # ``handler`` is read again for every message: a hot swap or a stop takes
                # effect from the next one.
                while n and q:
                    h = a.handler
                    if h is None:
                        break
                    m = popleft()
                    if m.__class__ is call:
                        m.reply(h(m.data))  # type: ignore[attr-defined]
                    elif m.__class__ is deferred:
                        q.extendleft(reversed(m.expand()))  # type: ignore[attr-defined]
                        continue
                    else:
                        h(m)
                    n -= 1
        except BaseException as error:  # noqa: BLE001 - a handler's failure ends its actor
            a.processed += budget - n
            a.running = False
            self._hooks.crashed(a, m, error)
            self._hooks.end_turn(a)
            return
        a.processed += budget - n
        if a.idle_s is not None:
            a.last_active = time.monotonic()
        a.running = False
        # Order matters: ``running`` is cleared before ``handler`` is read, and ``stop``
        # writes ``handler`` before it reads ``running`` (see _kernel.stop).
        if q and a.handler is not None:
            self.runq.append(a)
        else:
            self._hooks.end_turn(a)
