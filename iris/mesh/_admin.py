"""Runtime methods for naming, supervision, links, hot swap, timers and overflow.

A base class of ``Runtime`` (``_runtime``); every method delegates to the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from iris.mesh import _supervision
from iris.mesh._actor import Actor
from iris.mesh._behaviors import BehaviorHistory
from iris.mesh._kernel import check_callable
from iris.mesh._messages import SystemMessage
from iris.mesh._overflow import parse_policy
from iris.mesh._pids import check_pid

if TYPE_CHECKING:
    from iris.mesh._kernel import Kernel

__all__ = ["AdminAPI"]


class AdminAPI:
    """Registry, supervision, links, hot swap, timers and overflow. Internal base class."""

    if TYPE_CHECKING:
        _k: Kernel
        _actors: dict[int, Actor]

    def _live(self, pid: int) -> Actor:
        check_pid(pid)
        a = self._actors.get(pid)
        if a is None:
            raise ValueError(f"pid {pid} is not a live actor of this runtime")
        return a

    # -- names ---------------------------------------------------------------------------

    def register(self, name: str, pid: int) -> None:
        """Register ``name`` for a live actor; removed automatically when it dies.

        Raises:
            ValueError: ``pid`` is not alive, or ``name`` belongs to another actor.
        """
        with self._k.lock:
            self._live(pid)
            self._k.registry.register(name, pid)

    def unregister(self, name: str) -> None:
        """Remove a name (unknown names are ignored)."""
        self._k.registry.unregister(name)

    def whereis(self, name: str) -> int | None:
        """The PID registered under ``name``, or None."""
        return self._k.registry.whereis(name)

    def resolve(self, name: str) -> int | None:
        """Alias of ``whereis``."""
        return self._k.registry.whereis(name)

    # -- paths -----------------------------------------------------------------------------

    def register_path(self, path: str, pid: int) -> None:
        """Register a live actor at a ``/``-separated path (removed when it dies).

        Raises:
            ValueError: bad path, ``pid`` not alive, or the path belongs to another actor.
        """
        with self._k.lock:
            self._live(pid)
            self._k.registry.register_path(path, pid)

    def unregister_path(self, path: str) -> None:
        """Remove a path (unknown paths are ignored)."""
        self._k.registry.unregister_path(path)

    def whereis_path(self, path: str) -> int | None:
        """The PID registered at exactly ``path``, or None."""
        return self._k.registry.whereis_path(path)

    def list_children(self, prefix: str) -> list[tuple[str, int]]:
        """All ``(path, pid)`` registered below ``prefix`` (any depth), sorted by path."""
        return self._k.registry.list_children(prefix)

    def list_children_direct(self, prefix: str) -> list[tuple[str, int]]:
        """The ``(path, pid)`` registered exactly one level below ``prefix``."""
        return self._k.registry.list_children_direct(prefix)

    def watch_path(self, prefix: str) -> None:
        """Put the actors now registered directly below ``prefix`` under the global
        supervisor, watch-only (they are listed by ``child_pids``, never restarted)."""
        for _, pid in self._k.registry.list_children_direct(prefix):
            if pid in self._actors:
                self._k.supervisors.add(None, pid, None)

    # -- supervision -------------------------------------------------------------------------

    def child_pids(self) -> list[int]:
        """PIDs under the global supervisor, in start order."""
        return self._k.supervisors.children(None)

    def children_count(self) -> int:
        """How many actors the global supervisor has."""
        return len(self._k.supervisors.children(None))

    def watch(self, pid: int, strategy: str = "one_for_one") -> None:
        """Put ``pid`` under the global supervisor, watch-only (never restarted)."""
        _supervision.parse_strategy(strategy)
        self._k.supervisors.add(None, check_pid(pid), None)

    def supervise_with_factory(self, pid: int, factory: Callable[[], int], strategy: str,
                               *, restart: str = "permanent") -> None:
        """Supervise ``pid`` under the global supervisor; ``factory()`` makes a replacement.

        Args:
            pid: a live actor.
            factory: returns the PID of a freshly spawned replacement. Called only on a
                restart (not once at registration as in the original runtime).
            strategy: ``one_for_one``, ``one_for_all`` or ``rest_for_one`` (also the
                original's ``RestartOne``/``RestartAll``): what this child's exit does.
            restart: ``permanent`` (always), ``transient`` (after Crash or NodeDown only)
                or ``temporary`` (never).

        Raises:
            TypeError: ``factory`` is not callable.
            ValueError: bad strategy or restart type, or ``pid`` is not alive.
        """
        self.path_supervise_with_factory(None, pid, factory, strategy, restart=restart)

    def path_supervise_with_factory(self, path: str | None, pid: int,
                                    factory: Callable[[], int], strategy: str, *,
                                    restart: str = "permanent") -> None:
        """``supervise_with_factory`` under the supervisor of ``path`` (created if needed)."""
        check_callable(factory, "factory")
        self._k.supervisors.add(path, check_pid(pid), factory,
                                _supervision.parse_restart(restart),
                                _supervision.parse_strategy(strategy))

    def create_path_supervisor(self, path: str, max_restarts: int | None = None,
                               period_s: float | None = None) -> None:
        """Create the supervisor for ``path`` (idempotent).

        Args:
            path: a registry-style path such as ``"/svc/payment"``.
            max_restarts, period_s: its restart intensity (default: the runtime's).
        """
        self._k.supervisors.ensure(path, max_restarts, period_s)

    def remove_path_supervisor(self, path: str) -> None:
        """Remove the supervisor of ``path``; its children keep running, unsupervised."""
        self._k.supervisors.remove(path)

    def path_supervisor_watch(self, path: str, pid: int) -> None:
        """Put ``pid`` under the supervisor of ``path`` (created if needed), watch-only."""
        self._k.supervisors.add(path, check_pid(pid), None)

    def path_supervisor_children(self, path: str) -> list[int]:
        """PIDs supervised for ``path``, in start order; [] if it has no supervisor."""
        return self._k.supervisors.children(path)

    def supervisor_pid(self, path: str | None = None) -> int | None:
        """The PID of the global supervisor (or of the one for ``path``; None if none).
        Monitor it to hear when it gives up; supervise it to escalate."""
        return self._k.supervisors.pid_of(path)

    # -- links, monitors, system messages -------------------------------------------------

    def link(self, a: int, b: int) -> bool:
        """Link two actors: when one exits the other gets an EXIT system message.
        Nobody is killed by a link. False if either is not alive."""
        return self._k.link(check_pid(a), check_pid(b))

    def unlink(self, a: int, b: int) -> bool:
        """Remove a link; False if there was none."""
        return self._k.unlink(check_pid(a), check_pid(b))

    def monitor(self, watcher: int, pid: int) -> bool:
        """``watcher`` gets an EXIT system message when ``pid`` exits (and a HOT_SWAP
        when it is swapped). False if either is not alive."""
        return self._k.monitor(check_pid(watcher), check_pid(pid))

    def demonitor(self, watcher: int, pid: int) -> bool:
        """Cancel a monitor; False if there was none."""
        return self._k.demonitor(check_pid(watcher), check_pid(pid))

    def get_messages(self, pid: int) -> list[Any]:
        """What ``pid`` recorded, oldest first (a copy; still readable after it died).

        An observed actor records every message; any other push actor records the
        system messages sent to it (EXIT, HOT_SWAP), since its handler sees only user
        messages. Unknown PID: [].
        """
        return self._k.messages(pid)

    # -- hot swap --------------------------------------------------------------------------

    def hot_swap(self, pid: int, handler: Callable[[Any], Any]) -> int:
        """Replace a push actor's handler between two messages; returns the new version.

        The message being handled finishes on the old code; every later one, including
        those already queued, runs the new code; none is lost or handled twice. The actor
        and its monitors and links get a HOT_SWAP system message. For a pull actor only the
        message is sent (its ``recv`` returns it; metadata carries the new handler).

        Raises:
            TypeError: ``handler`` is not callable.
            ValueError: ``pid`` is not alive.
        """
        check_callable(handler, "handler")
        with self._k.lock:
            a = self._live(pid)
            if a.behaviors is None:
                a.behaviors = BehaviorHistory(a.code)
            version = a.behaviors.push(handler)
            self._apply_behavior(a, handler)
        self._announce_swap(a, version, handler)
        return version

    def behavior_version(self, pid: int) -> int:
        """The behavior version of a live actor: 1 at spawn, +1 per hot swap.

        Raises:
            ValueError: ``pid`` is not alive.
        """
        a = self._live(pid)
        return 1 if a.behaviors is None else a.behaviors.version

    def rollback_behavior(self, pid: int, steps: int = 1) -> int:
        """Go back ``steps`` versions (the spawn-time handler is version 1); returns the
        version now current.

        Raises:
            ValueError: ``pid`` not alive, or fewer earlier versions than ``steps``.
        """
        with self._k.lock:
            a = self._live(pid)
            history = a.behaviors if a.behaviors is not None else BehaviorHistory(a.code)
            version = history.rollback(steps)
            a.behaviors = history
            if steps == 0:
                return version
            self._apply_behavior(a, history.current)
        self._announce_swap(a, version, history.current)
        return version

    def _apply_behavior(self, a: Actor, handler: Callable[[Any], Any]) -> None:
        if a.mailbox is not None:
            return
        a.code = handler
        if a.handler is not None:
            a.handler = handler  # read by the scheduler before each message

    def _announce_swap(self, a: Actor, version: int, handler: Callable[[Any], Any]) -> None:
        notice = SystemMessage.hot_swap(a.pid, version)
        if a.mailbox is not None:
            notice = SystemMessage("HOT_SWAP", a.pid, a.pid, "",
                                   {"version": version, "handler": handler})
        self._k.notify(a.pid, notice)
        for watcher in sorted((a.monitors or set()) | (a.links or set())):
            self._k.notify(watcher, notice)

    # -- timers ------------------------------------------------------------------------------

    def send_after(self, pid: int, delay_ms: float, data: Any) -> int:
        """Send ``data`` to ``pid`` once, ``delay_ms`` milliseconds from now.

        Returns:
            A timer id for ``cancel_timer``. The timer dies with the actor.
        """
        return self._add_timer(pid, _millis(delay_ms, "delay_ms", allow_zero=True), data,
                               None)

    def send_interval(self, pid: int, interval_ms: float, data: Any) -> int:
        """Send ``data`` to ``pid`` every ``interval_ms`` milliseconds (first one after one
        interval) until cancelled or the actor dies. Returns a timer id."""
        interval = _millis(interval_ms, "interval_ms", allow_zero=False)
        return self._add_timer(pid, interval, data, interval)

    def cancel_timer(self, timer_id: int) -> bool:
        """Cancel a timer; False if unknown, already fired or already cancelled."""
        k = self._k
        if k._timers is None:
            return False
        cancelled = k._timers.cancel(timer_id)
        with k.lock:
            owner = k.timer_owner.pop(timer_id, None)
            a = None if owner is None else self._actors.get(owner)
            if a is not None and a.timers is not None:
                a.timers.discard(timer_id)
        return cancelled

    def _add_timer(self, pid: int, delay_s: float, data: Any,
                   interval_s: float | None) -> int:
        k = self._k
        k.check_open()

        def fire(timer_id: int) -> None:
            delivered = k.deliver(pid, data, block_ok=False)
            if interval_s is None or (not delivered and pid not in k.actors):
                self.cancel_timer(timer_id)

        with k.lock:
            a = self._live(pid)
            timer_id = k.timers.schedule(delay_s, fire, interval_s)
            if a.timers is None:
                a.timers = set()
            a.timers.add(timer_id)
            k.timer_owner[timer_id] = pid
        return timer_id

    # -- overflow --------------------------------------------------------------------------

    def set_overflow_policy(self, pid: int, policy: str, target: int | None = None, *,
                            timeout_s: float | None = None) -> None:
        """Choose what a full bounded mailbox does with a new message.

        Args:
            pid: an actor spawned with ``spawn_py_handler_bounded``.
            policy: ``dropnew``, ``dropold``, ``redirect``, ``spill`` or ``block``.
            target: the fallback PID for ``redirect`` and ``spill``.
            timeout_s: for ``block``/``spill``, the longest a sender waits (then ``send``
                returns False); None waits until there is room or the actor dies.

        Raises:
            ValueError: unknown policy, missing target, ``pid`` not alive or unbounded.
        """
        new = parse_policy(policy, None if target is None else check_pid(target, "target"),
                           timeout_s)
        a = self._live(pid)
        if a.overflow is None or a.space is None:
            raise ValueError(f"actor {pid} has an unbounded mailbox; overflow policies apply "
                             f"to actors spawned with spawn_py_handler_bounded")
        with a.space:
            a.overflow.policy, a.overflow.target = new.policy, new.target
            a.overflow.timeout_s = new.timeout_s
            a.space.notify_all()


def _millis(value: object, what: str, *, allow_zero: bool) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (
            value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what} must be a number {bound} (milliseconds), got {value!r}")
    return float(value) / 1000.0
