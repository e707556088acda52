"""Actor death and what it sets off: children, links, monitors, supervisors, timers.

::

    terminate(a, reason)
      1. under the lock, mark ``a`` and all its descendants dead (handler None, out of the
         actor table, names and paths dropped); children get reason Killed
      2. outside the lock, deepest descendant first, parent last:
         cancel timers, fail queued calls, wake blocked senders,
         EXIT to links and monitors, tell the supervisors, wake ``join`` callers

Links are bidirectional and only *notify*: the survivor gets an EXIT system message
(like an Erlang process that traps exits); nobody is killed by a link. Monitors are
one-way. Internal module: ``Lifecycle`` is a base class of the kernel.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable

from iris.exceptions import ActorDiedError
from iris.mesh._calls import fail_call
from iris.mesh._messages import CRASH, KILLED, SystemMessage

if TYPE_CHECKING:
    from iris.mesh._actor import Actor
    from iris.mesh._registry import Registry
    from iris.mesh._supervisors import Supervisors
    from iris.mesh._timers import TimerService

__all__ = ["LOG_LIMIT", "Lifecycle"]

_log = logging.getLogger("iris.mesh")
# Dead actors whose exit reason and log are remembered (get_messages after death).
_RECENT = 4096
# Per-actor record of observed/system messages: enough for any test or debugging session,
# bounded so a long-lived observer cannot grow without limit.
LOG_LIMIT = 10_000


class _Death(NamedTuple):
    actor: Actor
    reason: str
    metadata: Any
    queued: list[Any]
    watchers: set[int]
    timers: set[int]


class Lifecycle:
    """Death, links and monitors; mixed into the kernel. Internal type."""

    if TYPE_CHECKING:
        lock: threading.RLock
        exit_cond: threading.Condition
        joiners: int
        actors: dict[int, Actor]
        registry: Registry
        recent_exits: OrderedDict[int, str]
        dead_logs: OrderedDict[int, deque[Any]]
        timer_owner: dict[int, int]
        stats: dict[str, int]
        supervisors: Supervisors
        _timers: TimerService | None
        on_exit: Callable[[int, str, Any], None] | None

    # -- death ---------------------------------------------------------------------------

    @staticmethod
    def crash_metadata(error: BaseException) -> dict[str, str]:
        """EXIT metadata for a Crash: the formatted traceback and the exception's repr."""
        return {"traceback": "".join(traceback.format_exception(error)),
                "exception": repr(error)}

    def stop(self, pid: int, reason: str = KILLED, metadata: Any = None) -> bool:
        """Stop ``pid`` now; False if it was not a live actor. Queued messages are dropped
        (queued calls fail with ActorDiedError); a handler already running finishes."""
        a = self.actors.get(pid)
        if a is None:
            return False
        return self.terminate(a, reason, metadata)

    def terminate(self, a: Actor, reason: str, metadata: Any) -> bool:
        """Kill ``a`` and its descendants; False if ``a`` was already dead."""
        deaths: list[_Death] = []
        stack: list[tuple[Actor, str, Any]] = [(a, reason, metadata)]
        with self.lock:
            while stack:
                actor, why, meta = stack.pop()
                death = self._mark_dead(actor, why, meta)
                if death is None:
                    continue
                deaths.append(death)
                for child_pid in sorted(actor.children or (), reverse=True):
                    child = self.actors.get(child_pid)
                    if child is not None:
                        stack.append((child, KILLED, {"parent": actor.pid}))
                actor.children = None
        for death in reversed(deaths):
            self._after_death(death)
        return bool(deaths)

    def _mark_dead(self, a: Actor, reason: str, metadata: Any) -> _Death | None:
        """Under the lock: take ``a`` out of service. Returns what is left to do."""
        if not a.alive:
            return None
        a.fast = False
        a.handler = None  # written before ``running`` is read: see _scheduler._run
        a.alive = False
        a.reason = reason
        if not a.running and a.mailbox is None:
            a.finished = True
        self.actors.pop(a.pid, None)
        self.recent_exits[a.pid] = reason
        if len(self.recent_exits) > _RECENT:
            self.recent_exits.popitem(last=False)
        if a.log is not None:
            self.dead_logs[a.pid] = a.log
            if len(self.dead_logs) > _RECENT:
                self.dead_logs.popitem(last=False)
        self.registry.drop_pid(a.pid)
        if a.parent is not None:
            parent = self.actors.get(a.parent)
            if parent is not None and parent.children is not None:
                parent.children.discard(a.pid)
        watchers: set[int] = set()
        for other_pid in a.links or ():
            other = self.actors.get(other_pid)
            if other is not None and other.links is not None:
                other.links.discard(a.pid)
            watchers.add(other_pid)
        watchers.update(a.monitors or ())
        a.links = a.monitors = None
        if a.mailbox is not None:
            queued = a.mailbox.close()
        else:
            queued = list(a.queue)
            a.queue.clear()
        timers = a.timers or set()
        a.timers = None
        if a.idle_timer is not None:
            timers.add(a.idle_timer)
            a.idle_timer = None
        self.stats["exited"] += 1
        self.stats["processed_dead"] += a.processed
        if reason == CRASH:
            self.stats["crashed"] += 1
        return _Death(a, reason, metadata, queued, watchers, timers)

    def _after_death(self, d: _Death) -> None:
        """Outside the lock: everything a death sets off."""
        a = d.actor
        if d.timers and self._timers is not None:
            for timer_id in d.timers:
                self._timers.cancel(timer_id)
                self.timer_owner.pop(timer_id, None)
        if d.queued:
            error = ActorDiedError(f"actor {a.pid} exited ({d.reason}) before answering")
            for message in d.queued:
                fail_call(message, error)
        if a.space is not None:
            with a.space:
                a.space.notify_all()
        notice = SystemMessage.exit(a.pid, d.reason, d.metadata)
        for watcher in sorted(d.watchers):
            self.notify(watcher, notice)
        if self.on_exit is not None:
            self.on_exit(a.pid, d.reason, d.metadata)
        supervised = self.supervisors.on_exit(a.pid, d.reason)
        if a.kind == "supervisor":
            self.supervisors.supervisor_exited(a.pid)
        if d.reason == CRASH and not d.watchers and not supervised:
            meta = d.metadata or {}
            _log.error("iris actor %s crashed and nobody watches it:\n%s", a.pid,
                       meta.get("traceback") or meta.get("error", ""))
        if a.finished and self.joiners:
            with self.lock:
                self.exit_cond.notify_all()

    def join(self, pid: int, timeout: float | None = None) -> bool:
        """Wait until ``pid`` has exited and its code has returned; False on timeout."""
        with self.lock:
            a = self.actors.get(pid)
            if a is None:
                return True
            deadline = None if timeout is None else time.monotonic() + timeout
            self.joiners += 1
            try:
                while not (not a.alive and a.finished):
                    if deadline is None:
                        self.exit_cond.wait()
                    else:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        self.exit_cond.wait(remaining)
            finally:
                self.joiners -= 1
        return True

    # -- system messages -------------------------------------------------------------------

    def notify(self, pid: int, message: SystemMessage) -> bool:
        """Give ``pid`` a system message: to ``recv`` of a pull actor, else to its log."""
        a = self.actors.get(pid)
        if a is None or not a.alive:
            return False
        if a.mailbox is not None:
            return a.mailbox.put_system(message)
        log = a.log
        if log is None:
            with self.lock:
                if a.log is None:
                    a.log = deque(maxlen=LOG_LIMIT)
                log = a.log
        log.append(message)
        return True

    def messages(self, pid: int) -> list[Any]:
        """A copy of what ``pid`` recorded (observed: everything; others: system messages)."""
        a = self.actors.get(pid)
        log = a.log if a is not None else self.dead_logs.get(pid)
        return list(log) if log is not None else []

    # -- links and monitors --------------------------------------------------------------

    def link(self, a_pid: int, b_pid: int) -> bool:
        """Link two live actors; False if either is not alive (or they are the same)."""
        with self.lock:
            a, b = self.actors.get(a_pid), self.actors.get(b_pid)
            if a is None or b is None or a is b or not (a.alive and b.alive):
                return False
            if a.links is None:
                a.links = set()
            if b.links is None:
                b.links = set()
            a.links.add(b_pid)
            b.links.add(a_pid)
            return True

    def unlink(self, a_pid: int, b_pid: int) -> bool:
        """Remove a link; False if there was none."""
        with self.lock:
            a, b = self.actors.get(a_pid), self.actors.get(b_pid)
            found = False
            if a is not None and a.links and b_pid in a.links:
                a.links.discard(b_pid)
                found = True
            if b is not None and b.links and a_pid in b.links:
                b.links.discard(a_pid)
                found = True
            return found

    def monitor(self, watcher: int, pid: int) -> bool:
        """``watcher`` gets an EXIT when ``pid`` exits; False if either is not alive."""
        with self.lock:
            w, a = self.actors.get(watcher), self.actors.get(pid)
            if w is None or a is None or not (w.alive and a.alive):
                return False
            if a.monitors is None:
                a.monitors = set()
            a.monitors.add(watcher)
            return True

    def demonitor(self, watcher: int, pid: int) -> bool:
        """Cancel a monitor; False if there was none."""
        with self.lock:
            a = self.actors.get(pid)
            if a is None or not a.monitors or watcher not in a.monitors:
                return False
            a.monitors.discard(watcher)
            return True
