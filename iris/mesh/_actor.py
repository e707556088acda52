"""The actor record: everything the runtime keeps about one live actor.

One ``Actor`` per PID. Hot fields (read for every message) come first; the rest are
``None`` until used so 100,000 idle actors stay small. Internal type, not part of the
public API.

State flags and who writes them (all under the runtime lock except where said):

* ``handler``   the function the scheduler calls; ``None`` means "run nothing" (dead,
                or a virtual actor that is dormant). Read without the lock per message.
* ``fast``      True when a plain ``send`` may append without the lock: alive, unbounded,
                active. Cleared before any other state change.
* ``scheduled`` True while the actor is in a run queue or running.
* ``running``   written by the scheduler thread around each turn (no lock).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from iris.mesh._scheduler import Deferred

if TYPE_CHECKING:
    import threading

    from iris.mesh._behaviors import BehaviorHistory
    from iris.mesh._mailbox import Mailbox
    from iris.mesh._overflow import Overflow
    from iris.mesh._scheduler import Scheduler

__all__ = ["Actor", "ACTIVE", "DORMANT", "KINDS"]

KINDS = ("push", "pull", "observed", "virtual", "supervisor", "proxy")
ACTIVE = "active"
DORMANT = "dormant"


class Actor:
    """Internal record of one actor."""

    __slots__ = (
        # hot
        "queue", "handler", "fast", "scheduled", "running", "budget", "sched", "processed",
        # identity and lifecycle
        "pid", "kind", "alive", "finished", "reason", "state",
        "code", "behaviors", "parent", "children", "links", "monitors", "timers", "log",
        # bounded mailboxes
        "capacity", "overflow", "space",
        # pull actors
        "mailbox", "thread",
        # virtual actors
        "idle_s", "last_active", "idle_timer",
        # remote proxies
        "remote",
        # the mesh listener has queued Deferred network frames to it (counted by queued())
        "deferred",
    )

    def __init__(self, pid: int, kind: str, budget: int = 100) -> None:
        self.queue: deque[Any] = deque()
        self.handler: Any = None
        self.fast = False
        self.scheduled = False
        self.running = False
        self.budget = budget
        self.sched: Scheduler | None = None
        self.processed = 0
        self.pid = pid
        self.kind = kind
        self.alive = True
        self.finished = False
        self.reason: str | None = None
        self.state = ACTIVE
        self.code: Any = None  # the current behavior, also while dormant or dead
        self.behaviors: BehaviorHistory | None = None
        self.parent: int | None = None
        self.children: set[int] | None = None
        self.links: set[int] | None = None
        self.monitors: set[int] | None = None
        self.timers: set[int] | None = None
        self.log: deque[Any] | None = None
        self.capacity: int | None = None
        self.overflow: Overflow | None = None
        self.space: threading.Condition | None = None
        self.mailbox: Mailbox | None = None
        self.thread: threading.Thread | None = None
        self.idle_s: float | None = None
        self.last_active = 0.0
        self.idle_timer: int | None = None
        self.remote: Any = None
        self.deferred = False

    def queued(self) -> int:
        """User messages waiting (for a pull actor, including its selective-receive stash)."""
        if self.mailbox is not None:
            return self.mailbox.queued()
        if self.deferred:  # a network frame not yet cut into messages counts them all
            return sum(m.count if m.__class__ is Deferred else 1 for m in list(self.queue))
        return len(self.queue)

    def __repr__(self) -> str:
        status = "alive" if self.alive else f"dead ({self.reason})"
        return f"<Actor {self.pid} {self.kind} {status}>"
