"""``iris.Runtime``: the public face of the actor mesh (spawning, sending, lifecycle).

The registry, supervision, hot swap, timers and overflow methods come from
``_admin.AdminAPI``; both delegate to one ``Kernel``. The hot ``send`` path is written out
here, without a call into the kernel, because it runs once per message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from iris.mesh._admin import AdminAPI
from iris.mesh._calls import Reply
from iris.mesh._global_names import GlobalNamesAPI
from iris.mesh._kernel import Kernel, check_budget, check_callable
from iris.mesh._mailbox import Mailbox
from iris.mesh._messages import KILLED
from iris.mesh._pids import check_pid
from iris.mesh._remote import RemoteAPI

__all__ = ["Runtime"]


class Runtime(AdminAPI, RemoteAPI, GlobalNamesAPI):
    """An actor system in this process: push actors, pull actors, PIDs and messages.

    Push actors (``spawn``) are a handler called once per message on a scheduler thread,
    at most ``budget`` messages per turn. Pull actors (``spawn_with_mailbox``) are a function
    running on a thread of its own, reading ``mailbox.recv()``. Both are addressed by an
    ``int`` PID. Several runtimes may live in one process; each is independent.

    Args:
        scheduler_threads: threads running push actors (default 1; more only helps when
            handlers release the GIL).
        pool_size: threads running ``release_gil=True`` actors (started on first use).
        max_restarts: restart intensity of the global supervisor: at most this many
            restarts within ``restart_period_s`` seconds.
        restart_period_s: the window of that intensity.
        token: the mesh token for ``listen``/``send_remote``/... (CURVE credentials); by
            default ``$IRIS_TOKEN``, else a per-user token file (see ``docs/mesh.md``).

    Example:
        >>> with iris.Runtime() as rt:
        ...     pid = rt.spawn(lambda msg: msg.upper())
        ...     rt.call(pid, b"hi").result()
        b'HI'
    """

    def __init__(self, *, scheduler_threads: int = 1, pool_size: int = 4,
                 max_restarts: int = 3, restart_period_s: float = 5.0,
                 token: str | None = None) -> None:
        self._k = Kernel(scheduler_threads, pool_size, max_restarts, restart_period_s)
        self._actors = self._k.actors
        self._remote_init(token)
        self._global_init()

    @property
    def _inner(self) -> Runtime:
        """The original runtime's ``rt._inner`` (its compiled core) is this object here."""
        return self

    # -- spawning ----------------------------------------------------------------------

    def spawn(self, handler: Callable[[Any], Any], budget: int = 100,
              release_gil: bool = False) -> int:
        """Spawn a push actor: ``handler(msg)`` runs once per message, in order.

        Args:
            handler: called with each user message; its return value answers ``call``.
                If it raises, the actor stops with reason Crash (SystemExit: Normal).
            budget: messages handled per turn before other actors get the thread.
            release_gil: run the handler on the pool threads instead of the scheduler
                thread (for handlers that block or release the GIL); still one message
                at a time, in order.

        Returns:
            The new actor's PID.
        """
        return self._k.spawn_push(handler, budget, release_gil=release_gil)

    def spawn_py_handler(self, handler: Callable[[Any], Any], budget: int = 100,
                         release_gil: bool | None = None) -> int:
        """Alias of ``spawn`` kept from the original runtime."""
        return self.spawn(handler, budget, bool(release_gil))

    def spawn_with_mailbox(self, fn: Callable[[Mailbox], Any], budget: int = 100) -> int:
        """Spawn a pull actor: ``fn(mailbox)`` runs once on a thread of its own.

        The actor lives until ``fn`` returns (reason Normal) or raises (Crash). After
        ``stop`` its ``recv()`` returns None and ``fn`` should return. ``budget`` is
        accepted for compatibility and unused.
        """
        check_budget(budget)
        return self._k.spawn_pull(fn)

    def spawn_py_handler_bounded(self, handler: Callable[[Any], Any], budget: int = 100,
                                 capacity: int = 100, release_gil: bool = False) -> int:
        """Spawn a push actor whose mailbox holds at most ``capacity`` queued messages.

        A send that finds it full follows the overflow policy (default ``dropnew``:
        ``send`` returns False); change it with ``set_overflow_policy``. The message being
        handled does not count against the capacity.
        """
        return self._k.spawn_push(handler, budget, release_gil=release_gil,
                                  capacity=capacity)

    def spawn_virtual(self, handler: Callable[[Any], Any], budget: int = 100,
                      idle_timeout_ms: int | None = None) -> int:
        """Reserve a PID for a push actor that activates on its first message.

        With ``idle_timeout_ms`` the actor deactivates after that long without messages
        and activates again on the next one (same PID, same handler). ``stop`` works
        before activation too. A dormant actor is alive (``is_alive`` is True).
        """
        idle_s = None
        if idle_timeout_ms is not None:
            if not isinstance(idle_timeout_ms, (int, float)) or idle_timeout_ms <= 0:
                raise ValueError(f"idle_timeout_ms must be > 0 or None, got {idle_timeout_ms!r}")
            idle_s = idle_timeout_ms / 1000.0
        return self._k.spawn_push(handler, budget, kind="virtual", idle_s=idle_s,
                                  dormant=True)

    def spawn_virtual_py_handler(self, handler: Callable[[Any], Any], budget: int = 100,
                                 idle_timeout_ms: int | None = None) -> int:
        """Alias of ``spawn_virtual`` kept from the original runtime."""
        return self.spawn_virtual(handler, budget, idle_timeout_ms)

    def spawn_child(self, parent: int, handler: Callable[[Any], Any], budget: int = 100,
                    release_gil: bool = False) -> int:
        """Spawn a push actor that is stopped (reason Killed) when ``parent`` exits.

        Grandchildren go too. Raises ValueError if ``parent`` is not alive.
        """
        return self._k.spawn_push(handler, budget, release_gil=release_gil,
                                  parent=check_pid(parent, "parent"))

    def spawn_child_py_handler(self, parent: int, handler: Callable[[Any], Any],
                               budget: int = 100, release_gil: bool | None = None) -> int:
        """Alias of ``spawn_child`` kept from the original runtime."""
        return self.spawn_child(parent, handler, budget, bool(release_gil))

    def spawn_child_with_mailbox(self, parent: int, fn: Callable[[Mailbox], Any],
                                 budget: int = 100) -> int:
        """Spawn a pull actor that is stopped when ``parent`` exits (its recv returns None)."""
        check_budget(budget)
        return self._k.spawn_pull(fn, parent=check_pid(parent, "parent"))

    def spawn_child_pool(self, parent: int, handler: Callable[[Any], Any] | None = None,
                         workers: int = 4, budget: int = 100,
                         release_gil: bool = False) -> list[int]:
        """Spawn ``workers`` child push actors sharing ``handler``; returns their PIDs.

        The caller spreads work over them (round robin, for instance); all die with
        ``parent``. Without a handler each worker calls the callables sent to it
        (``rt.call(worker, fn)`` returns ``fn()``) and ignores anything else.
        """
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"a child pool needs workers >= 1, got {workers!r}")
        fn = _run_callable if handler is None else handler
        check_callable(fn, "handler")
        return [self.spawn_child(parent, fn, budget, release_gil) for _ in range(workers)]

    def spawn_observed_handler(self, budget: int = 100) -> int:
        """Spawn an actor that records every message it gets; read them with get_messages."""
        return self._k.spawn_observed(budget)

    def spawn_with_path_observed(self, budget: int, path: str) -> int:
        """Spawn an observed actor and register it at ``path``."""
        pid = self._k.spawn_observed(budget)
        try:
            self.register_path(path, pid)
        except BaseException:
            self._k.stop(pid)
            raise
        return pid

    # -- messages ---------------------------------------------------------------------

    def send(self, pid: int, data: Any) -> bool:
        """Queue ``data`` for ``pid``; never raises for a bad PID.

        Returns:
            True if queued; False if ``pid`` is unknown or dead or a bounded mailbox
            dropped the message. Messages from one sender to one actor keep their order.
        """
        a = self._actors.get(pid)
        if a is not None:
            if a.fast:
                a.queue.append(data)
                if not a.scheduled:
                    self._k.wake(a)
                return True
            if a.remote is not None:  # a proxy: straight to the network
                return self._deliver_remote(pid, data)
        return self._k.deliver(pid, data)

    def send_named(self, name: str, data: Any) -> bool:
        """``send`` to the actor registered under ``name``; False if there is none."""
        pid = self._k.registry.whereis(name)
        return False if pid is None else self.send(pid, data)

    def send_many(self, pid: int, payloads: Iterable[Any]) -> int:
        """Queue several messages in order; returns how many were accepted.

        To a proxy PID (``resolve_remote``) the messages go to the network as one batch,
        checked like ``send_remote_many`` (all or none are accepted).
        """
        return self._k.deliver_many(pid, payloads)

    def call(self, pid: int, data: Any, timeout: float | None = 5.0) -> Reply:
        """Send a request; the handler's return value is the answer.

        Returns:
            A ``Reply``: ``await`` it in a coroutine, or call ``.result()`` to block. A pull
            actor answers with ``mailbox.reply(value)`` after receiving the request.
        """
        return self._k.call(pid, data, timeout)

    # -- lifecycle -----------------------------------------------------------------------

    def stop(self, pid: int) -> bool:
        """Stop an actor now (reason Killed) and its children; queued messages are dropped
        and queued calls fail. A handler already running finishes. False if not alive."""
        return self._k.stop(pid, KILLED)

    def join(self, pid: int, timeout: float | None = None) -> bool:
        """Wait until ``pid`` has exited and its code returned; False on timeout."""
        return self._k.join(pid, timeout)

    def is_alive(self, pid: int) -> bool:
        """Whether ``pid`` is a live actor here (a dormant virtual actor is alive)."""
        return pid in self._actors

    def mailbox_size(self, pid: int) -> int | None:
        """User messages queued for ``pid`` (not the one being handled); None if not alive."""
        a = self._actors.get(pid)
        return None if a is None else a.queued()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop every actor (reason Killed, no restarts) and every thread this runtime
        started. Idempotent. A pull actor that ignores ``recv() is None`` may outlive it."""
        k = self._k
        with k.lock:
            if k.closed:
                return
            k.closed = True
        deadline = time.monotonic() + timeout_s
        k.supervisors.close()
        self._remote_close()
        if k._timers is not None:
            k._timers.close(timeout_s)
        for a in sorted(k.actors.values(), key=lambda x: x.pid):
            k.terminate(a, KILLED, {"shutdown": True})
        k.sched.close(max(0.0, deadline - time.monotonic()))
        if k._pool is not None:
            k._pool.close(max(0.0, deadline - time.monotonic()))
        me = threading.current_thread()
        for thread in list(k.pull_threads):
            if thread is not me:
                thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- introspection -------------------------------------------------------------------

    def list_actors(self) -> list[int]:
        """PIDs of every live actor, ascending."""
        return sorted(self._actors)

    def actor_info(self, pid: int) -> dict[str, Any] | None:
        """A snapshot of one actor as a dict, or None if it is not alive.

        Keys: pid, kind, state ("active"/"dormant"), budget, mailbox_size, capacity,
        overflow_policy, parent, children, links, monitors, names, paths, version,
        messages_processed, release_gil.
        """
        a = self._actors.get(pid)
        if a is None:
            return None
        names, paths = self._k.registry.names_of(pid)
        return {
            "pid": pid, "kind": a.kind, "state": a.state, "budget": a.budget,
            "mailbox_size": a.queued(), "capacity": a.capacity,
            "overflow_policy": None if a.overflow is None else a.overflow.policy,
            "parent": a.parent, "children": sorted(a.children or ()),
            "links": sorted(a.links or ()), "monitors": sorted(a.monitors or ()),
            "names": names, "paths": paths,
            "version": 1 if a.behaviors is None else a.behaviors.version,
            "messages_processed": a.processed,
            "release_gil": a.sched is self._k._pool and a.sched is not None,
        }

    def metrics(self) -> dict[str, int]:
        """Counters of this runtime: actor_count, active_actors, messages_processed,
        messages_queued, spawned, exited, crashed, timers_pending, threads."""
        k = self._k
        actors = list(self._actors.values())
        pool_threads = 0 if k._pool is None else k._pool.thread_count()
        return {
            "actor_count": len(actors),
            "active_actors": sum(1 for a in actors if a.scheduled or a.running),
            "messages_processed": k.stats["processed_dead"] + sum(a.processed for a in actors),
            "messages_queued": sum(a.queued() for a in actors),
            "spawned": k.stats["spawned"],
            "exited": k.stats["exited"],
            "crashed": k.stats["crashed"],
            "timers_pending": 0 if k._timers is None else k._timers.pending(),
            "threads": k.sched.thread_count() + pool_threads + len(k.pull_threads),
        }

    def __repr__(self) -> str:
        state = "shut down" if self._k.closed else f"{len(self._actors)} actors"
        return f"<iris.Runtime {state}>"


def _run_callable(message: Any) -> Any:
    """Default handler of a child pool: call callables, ignore anything else."""
    return message() if callable(message) else None


def spawn_child_pool(rt: Runtime, parent: int, size: int | None = None,
                     handler: Callable[[Any], Any] | None = None, *,
                     workers: int | None = None, budget: int = 100,
                     release_gil: bool = False) -> list[int]:
    """Spawn a pool of child workers of ``parent``, as the README writes it.

    ``iris.spawn_child_pool(rt, parent, size=4)`` is ``rt.spawn_child_pool(parent,
    handler, workers=4)``; without a handler the workers call the callables sent to them.

    Example:
        >>> workers = iris.spawn_child_pool(rt, parent, size=4)
    """
    count = workers if workers is not None else (size if size is not None else 4)
    return rt.spawn_child_pool(parent, handler, count, budget, release_gil)
