"""The actor kernel: the actor table, spawning, delivery and the scheduler hooks.

Everything the ``Runtime`` facade does goes through one ``Kernel``. Lifecycle (death,
links, monitors, children) lives in ``_lifecycle``, which this class extends.

Locking: one re-entrant lock (``self.lock``) guards the actor table and every state
transition of an actor (scheduled, alive, dormant/active, links, children). The hot path
of ``send`` takes no lock: it appends to the queue of an actor whose ``fast`` flag is set
and takes the lock only to schedule an idle actor (see ``_scheduler``). User code
(handlers, factories, matchers) is never called with the lock held.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

from iris.exceptions import ActorDiedError
from iris.mesh import _overflow
from iris.mesh._actor import ACTIVE, DORMANT, Actor
from iris.mesh._calls import Call, Reply, fail_call
from iris.mesh._lifecycle import LOG_LIMIT, Lifecycle
from iris.mesh._mailbox import Mailbox
from iris.mesh._messages import CRASH, NORMAL
from iris.mesh._overflow import Overflow
from iris.mesh._pids import PidAllocator
from iris.mesh._registry import Registry
from iris.mesh._scheduler import Scheduler, current_scheduler
from iris.mesh._supervisors import Supervisors
from iris.mesh._timers import TimerService

__all__ = ["Kernel", "check_budget", "check_callable"]



def check_callable(fn: object, what: str) -> None:
    """Raise TypeError naming ``what`` unless ``fn`` is callable."""
    if not callable(fn):
        raise TypeError(f"{what} must be callable, got {fn!r} of type {type(fn).__name__}")


def check_budget(budget: object) -> int:
    """Validate a reduction budget (messages per turn): an int >= 1."""
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ValueError(f"budget must be an int >= 1 (messages per turn), got {budget!r}")
    return budget


class Kernel(Lifecycle):
    """The state of one runtime. Internal type, not part of the public API.

    Args:
        scheduler_threads: threads running ordinary push actors.
        pool_size: threads running ``release_gil=True`` actors (started on first use).
        max_restarts, period_s: restart intensity of the global supervisor.
        clock: monotonic clock for supervision decisions.
    """

    def __init__(self, scheduler_threads: int = 1, pool_size: int = 4,
                 max_restarts: int = 3, period_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = threading.RLock()
        self.exit_cond = threading.Condition(self.lock)
        self.joiners = 0
        self.clock = clock
        self.actors: dict[int, Actor] = {}
        self.pids = PidAllocator()
        self.registry = Registry()
        self.recent_exits: OrderedDict[int, str] = OrderedDict()
        self.dead_logs: OrderedDict[int, deque[Any]] = OrderedDict()
        self.closed = False
        self.sched = Scheduler("sched", scheduler_threads, self)
        self._pool_size = pool_size
        self._pool: Scheduler | None = None
        self._timers: TimerService | None = None
        self.timer_owner: dict[int, int] = {}
        self.pull_threads: set[threading.Thread] = set()
        self.stats = {"spawned": 0, "exited": 0, "crashed": 0, "processed_dead": 0}
        self.supervisors = Supervisors(self, max_restarts, period_s)
        # Called as on_exit(pid, reason, metadata) after every death (the remote mesh).
        self.on_exit: Callable[[int, str, Any], None] | None = None

    # -- services started on first use ------------------------------------------------

    @property
    def pool(self) -> Scheduler:
        """The scheduler for ``release_gil=True`` actors."""
        if self._pool is None:
            with self.lock:
                if self._pool is None:
                    self._pool = Scheduler("pool", self._pool_size, self)
        return self._pool

    def set_pool_size(self, size: int) -> None:
        """Threads of the ``release_gil`` pool."""
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"pool_size must be an int >= 1, got {size!r}")
        self._pool_size = size
        if self._pool is not None:
            self._pool.resize(size)

    @property
    def timers(self) -> TimerService:
        """The timer thread's service."""
        if self._timers is None:
            with self.lock:
                if self._timers is None:
                    self._timers = TimerService()
        return self._timers

    def check_open(self) -> None:
        """Raise RuntimeError once the runtime is shut down."""
        if self.closed:
            raise RuntimeError("this iris.Runtime has been shut down; create a new one")

    # -- spawning ----------------------------------------------------------------------

    def _register(self, a: Actor, parent: int | None) -> int:
        with self.lock:
            self.check_open()
            if parent is not None:
                p = self.actors.get(parent)
                if p is None or not p.alive:
                    raise ValueError(f"parent pid {parent!r} is not a live actor")
                if p.children is None:
                    p.children = set()
                p.children.add(a.pid)
                a.parent = parent
            self.actors[a.pid] = a
            self.stats["spawned"] += 1
        return a.pid

    def spawn_push(self, handler: Callable[[Any], Any], budget: int = 100, *,
                   release_gil: bool = False, parent: int | None = None,
                   capacity: int | None = None, kind: str = "push",
                   idle_s: float | None = None, dormant: bool = False) -> int:
        """Create a push actor (also observed, virtual and supervisor actors)."""
        check_callable(handler, "handler")
        check_budget(budget)
        a = Actor(self.pids.next(), kind, budget)
        a.code = handler
        sched = self.pool if release_gil else self.sched
        a.sched = sched
        if capacity is not None:
            if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
                raise ValueError(f"capacity must be an int >= 0, got {capacity!r}")
            a.capacity = capacity
            a.overflow = Overflow()
            a.space = threading.Condition(threading.Lock())
        if idle_s is not None:
            a.idle_s = idle_s
        if dormant:
            a.state = DORMANT
        else:
            a.handler = handler
            a.fast = capacity is None
            a.last_active = time.monotonic()
        sched.start()
        pid = self._register(a, parent)
        if not dormant and idle_s is not None:
            self._arm_idle(a)
        return pid

    def spawn_pull(self, fn: Callable[[Mailbox], Any], *, parent: int | None = None) -> int:
        """Create a pull actor: ``fn(mailbox)`` runs on a thread of its own."""
        check_callable(fn, "mailbox handler")
        a = Actor(self.pids.next(), "pull")
        a.code = fn
        a.mailbox = Mailbox(a.pid)
        thread = threading.Thread(target=self._pull_main, args=(a,),
                                  name=f"iris-mesh-pull-{a.pid}", daemon=True)
        a.thread = thread
        pid = self._register(a, parent)
        with self.lock:
            self.pull_threads.add(thread)
        thread.start()
        return pid

    def spawn_observed(self, budget: int = 100, *, parent: int | None = None) -> int:
        """An actor that records every message it gets (user and system) for get_messages."""
        log: deque[Any] = deque(maxlen=LOG_LIMIT)
        pid = self.spawn_push(log.append, budget, parent=parent, kind="observed")
        self.actors[pid].log = log
        return pid

    def _pull_main(self, a: Actor) -> None:
        reason, meta = NORMAL, None
        try:
            a.code(a.mailbox)
        except SystemExit:
            pass
        except BaseException as error:  # noqa: BLE001 - reported as the actor's Crash
            reason, meta = CRASH, self.crash_metadata(error)
        finally:
            assert a.mailbox is not None
            a.mailbox.fail_pending(ActorDiedError(
                f"actor {a.pid} exited ({reason}) without answering the call"))
            self.terminate(a, reason, meta)
            with self.lock:
                a.finished = True
                self.pull_threads.discard(threading.current_thread())
                if self.joiners:
                    self.exit_cond.notify_all()

    # -- delivery ------------------------------------------------------------------------

    def wake(self, a: Actor) -> None:
        """Schedule ``a`` if it is not already (called after appending to its queue)."""
        with self.lock:
            if a.scheduled or not a.alive:
                return
            a.scheduled = True
        a.sched.enqueue(a)  # type: ignore[union-attr]

    def deliver(self, pid: int, data: Any, *, block_ok: bool = True) -> bool:
        """The general ``send``: every case the lock-free fast path does not cover."""
        a = self.actors.get(pid)
        if a is None or not a.alive or a.remote is not None:
            return self.deliver_remote(pid, data)  # dead, unknown, or a remote proxy
        if a.mailbox is not None:
            return a.mailbox.put(data)
        if a.state == DORMANT:
            self._activate(a)
        if a.capacity is not None:
            return self._deliver_bounded(a, data, block_ok)
        with self.lock:
            if not a.alive:
                return False
            a.queue.append(data)
        if not a.scheduled:
            self.wake(a)
        return True

    def deliver_remote(self, pid: int, data: Any) -> bool:
        """Delivery to a PID that is not a local actor, or is a remote proxy.

        False here; the cross-process mesh (``_remote``) replaces it on the instance.
        """
        return False

    def deliver_remote_many(self, pid: int, payloads: Iterable[Any]) -> int:
        """``deliver_many`` to a remote proxy PID: 0 here; the cross-process mesh
        (``_remote``) replaces it on the instance."""
        return 0

    def deliver_many(self, pid: int, payloads: Iterable[Any]) -> int:
        """Queue several messages; returns how many were accepted."""
        a = self.actors.get(pid)
        if a is not None and a.remote is not None:
            return self.deliver_remote_many(pid, payloads)  # a proxy: one network batch
        items = list(payloads)
        if a is None or not a.alive:
            return 0
        if a.mailbox is not None:
            return a.mailbox.put_many(items)
        if a.fast:
            a.queue.extend(items)
            if not a.scheduled:
                self.wake(a)
            return len(items)
        return sum(1 for m in items if self.deliver(pid, m))

    def call(self, pid: int, data: Any, timeout: float | None) -> Reply:
        """Send a request; the handler's return value answers it."""
        c = Call(data)
        reply = Reply(c.future, timeout, pid)
        a = self.actors.get(pid)
        if a is None or not a.alive:
            c.fail(ActorDiedError(f"cannot call actor {pid}: no live actor has that pid"))
            return reply
        if a.remote is not None:
            c.fail(TypeError(f"cannot call actor {pid}: it is a proxy for remote actor "
                             f"{a.remote!r}, and call() does not cross processes; use "
                             f"send() and have the remote actor answer with send_remote"))
            return reply
        if a.mailbox is not None:
            ok = a.mailbox.put(c)
        elif a.capacity is not None:
            ok = self._deliver_bounded(a, c, True)
        else:
            if a.state == DORMANT:
                self._activate(a)
            with self.lock:
                ok = a.alive
                if ok:
                    a.queue.append(c)
            if ok and not a.scheduled:
                self.wake(a)
        if not ok:
            c.fail(ActorDiedError(f"cannot call actor {pid}: it is dead or its bounded "
                                  f"mailbox refused the request"))
        return reply

    def _deliver_bounded(self, a: Actor, data: Any, block_ok: bool) -> bool:
        ov = a.overflow
        space = a.space
        assert ov is not None and space is not None and a.capacity is not None
        evicted: Any = None
        with space:
            if not a.alive:
                return False
            decision = _overflow.decide(len(a.queue), a.capacity, ov.policy)
            if decision == _overflow.ENQUEUE:
                a.queue.append(data)
            elif decision == _overflow.EVICT_THEN_ENQUEUE:
                evicted = a.queue.popleft()
                a.queue.append(data)
            elif decision == _overflow.REJECT:
                return False
        if decision in (_overflow.ENQUEUE, _overflow.EVICT_THEN_ENQUEUE):
            if evicted is not None:
                fail_call(evicted, ActorDiedError(
                    f"request to actor {a.pid} was evicted by the 'dropold' policy"))
            if not a.scheduled:
                self.wake(a)
            return True
        target = ov.target
        if decision == _overflow.REDIRECT:
            if target is None or target == a.pid:
                return False
            return self.deliver(target, data, block_ok=block_ok)
        if decision == _overflow.SPILL_THEN_WAIT and target is not None and target != a.pid:
            self.deliver(target, data, block_ok=False)
        if not block_ok:
            return False
        return self._wait_for_room(a, ov, space, data)

    def _wait_for_room(self, a: Actor, ov: Overflow, space: threading.Condition,
                       data: Any) -> bool:
        """Block the sender (GIL released) until ``a`` has room, it dies, or time is up."""
        sched = current_scheduler()
        if sched is not None:
            sched.begin_blocking()  # a stand-in thread keeps the other actors running
        try:
            deadline = None if ov.timeout_s is None else time.monotonic() + ov.timeout_s
            with space:
                ov.waiting += 1
                try:
                    while a.alive and len(a.queue) >= a.capacity:  # type: ignore[operator]
                        if deadline is None:
                            space.wait()
                        else:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                return False
                            space.wait(remaining)
                    if not a.alive:
                        return False
                    a.queue.append(data)
                finally:
                    ov.waiting -= 1
        finally:
            if sched is not None:
                sched.end_blocking()
        if not a.scheduled:
            self.wake(a)
        return True

    # -- virtual actors ------------------------------------------------------------------

    def _activate(self, a: Actor) -> None:
        with self.lock:
            if not a.alive or a.state != DORMANT:
                return
            a.state = ACTIVE
            a.handler = a.code
            a.fast = a.capacity is None
            a.last_active = time.monotonic()
        if a.idle_s is not None:
            self._arm_idle(a)

    def _arm_idle(self, a: Actor) -> None:
        assert a.idle_s is not None
        delay = max(0.0, a.last_active + a.idle_s - time.monotonic())
        pid = a.pid
        a.idle_timer = self.timers.schedule(delay, lambda _tid: self._idle_check(pid))

    def _idle_check(self, pid: int) -> None:
        a = self.actors.get(pid)
        if a is None or a.idle_s is None:
            return
        with self.lock:
            if not a.alive or a.state != ACTIVE:
                return
            busy = a.scheduled or a.running or bool(a.queue)
            idle_for = time.monotonic() - a.last_active
            if not busy and idle_for >= a.idle_s:
                # Dormant: a plain send now takes the slow path and activates it again.
                a.fast = False
                a.handler = None
                a.state = DORMANT
                a.idle_timer = None
                return
        self._arm_idle(a)

    # -- scheduler hooks -------------------------------------------------------------------

    def crashed(self, a: Actor, message: object, error: BaseException) -> None:
        """A handler raised: its actor exits (Normal for SystemExit, else Crash)."""
        if isinstance(error, SystemExit):
            if message.__class__ is Call:
                message.fail(ActorDiedError(  # type: ignore[attr-defined]
                    f"actor {a.pid} exited while handling the request"))
            self.terminate(a, NORMAL, None)
            return
        meta = self.crash_metadata(error)
        if message.__class__ is Call:
            from iris.exceptions import TaskError
            message.fail(TaskError.from_remote(  # type: ignore[attr-defined]
                error, meta["traceback"], where=f"actor {a.pid}"))
        self.terminate(a, CRASH, meta)

    def end_turn(self, a: Actor) -> None:
        """A turn ended with nothing (runnable) left: idle, dormant, or dead."""
        with self.lock:
            if not a.alive:
                a.scheduled = False
                if not a.finished:
                    a.finished = True
                    if self.joiners:
                        self.exit_cond.notify_all()
                return
            if a.handler is None and a.state == DORMANT and a.queue:
                # A send raced with deactivation: wake the actor up again.
                reactivate = True
            else:
                reactivate = False
                if not (a.queue and a.handler is not None):
                    a.scheduled = False
                    return
        if reactivate:
            a.scheduled = False
            self._activate(a)
            self.wake(a)
            return
        a.sched.enqueue(a)  # type: ignore[union-attr]

    def message_taken(self, a: Actor) -> None:
        """A bounded actor took a message: let one waiting sender in."""
        ov = a.overflow
        if ov is not None and ov.waiting:
            space = a.space
            assert space is not None
            with space:
                space.notify()
