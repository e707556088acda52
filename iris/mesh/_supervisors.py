"""The runtime's supervisors: the global one and one per path, carrying out decisions.

Each supervisor is a ``SupervisorState`` (the pure decisions, ``_supervision``) plus an
actor of kind ``"supervisor"`` so it has a PID: other actors can monitor or link it, and
another supervisor can supervise it (escalation). When a supervisor gives up (restart
intensity exceeded) it stops its children, newest first, and its actor exits with reason
Crash; a path supervisor is then removed, the global one is replaced by a fresh one.

::

    kernel: actor X died ──► Supervisors.on_exit(X, reason)
                                 state.on_exit(...) -> [Terminate, Restart, ...]
                                 carry out: stop(pid) / factory() / give up
                                 (user factories run here, on the thread that saw the exit,
                                  with no lock held)

Internal module.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from iris.mesh._messages import CRASH, KILLED
from iris.mesh._registry import normalize_path
from iris.mesh._supervision import (
    ONE_FOR_ONE,
    PERMANENT,
    TEMPORARY,
    Action,
    Restart,
    Shutdown,
    SupervisorState,
    Terminate,
)

if TYPE_CHECKING:
    from iris.mesh._kernel import Kernel

__all__ = ["Supervisors"]

GLOBAL: str | None = None


class _Supervisor:
    __slots__ = ("key", "state", "pid")

    def __init__(self, key: str | None, state: SupervisorState, pid: int) -> None:
        self.key = key
        self.state = state
        self.pid = pid


class Supervisors:
    """All supervisors of one runtime. Internal type.

    Args:
        kernel: the runtime's kernel.
        max_restarts, period_s: intensity of the global supervisor (and the default for
            path supervisors).
    """

    def __init__(self, kernel: Kernel, max_restarts: int, period_s: float) -> None:
        SupervisorState(max_restarts, period_s)  # validate early
        self._k = kernel
        self._lock = threading.RLock()
        self._defaults = (max_restarts, period_s)
        self._sups: dict[str | None, _Supervisor] = {}
        self._of_pid: dict[int, set[str | None]] = {}
        self._closed = False

    # -- table -----------------------------------------------------------------------------

    def ensure(self, path: str | None, max_restarts: int | None = None,
               period_s: float | None = None) -> _Supervisor:
        """The supervisor for ``path`` (None: the global one), created if missing."""
        key = None if path is None else normalize_path(path)
        sup = self._sups.get(key)
        if sup is not None:
            return sup
        state = SupervisorState(
            self._defaults[0] if max_restarts is None else max_restarts,
            self._defaults[1] if period_s is None else period_s)
        # Spawned without holding our lock: the kernel lock is always taken first.
        pid = self._k.spawn_push(_ignore, 1, kind="supervisor")
        with self._lock:
            sup = self._sups.get(key)
            if sup is None:
                sup = self._sups[key] = _Supervisor(key, state, pid)
                return sup
        self._k.stop(pid, KILLED)  # lost a race with another creator
        return sup

    def remove(self, path: str) -> bool:
        """Forget the supervisor of ``path``; its children keep running unsupervised."""
        key = normalize_path(path)
        with self._lock:
            sup = self._sups.pop(key, None)
            if sup is None:
                return False
            for pid in sup.state.pids():
                self._unindex(pid, key)
        self._k.stop(sup.pid, KILLED)
        return True

    def exists(self, path: str) -> bool:
        """Whether ``path`` has a supervisor."""
        return normalize_path(path) in self._sups

    def pid_of(self, path: str | None) -> int | None:
        """The PID of a supervisor, or None if there is none for ``path``."""
        key = None if path is None else normalize_path(path)
        if key is None:
            return self.ensure(None).pid
        sup = self._sups.get(key)
        return None if sup is None else sup.pid

    def children(self, path: str | None) -> list[int]:
        """PIDs supervised for ``path`` (None: global), in start order; [] if none."""
        key = None if path is None else normalize_path(path)
        with self._lock:
            sup = self._sups.get(key)
            return [] if sup is None else sup.state.pids()

    def add(self, path: str | None, pid: int, factory: Callable[[], int] | None,
            restart: str = PERMANENT, strategy: str = ONE_FOR_ONE) -> None:
        """Supervise ``pid`` (a factory of None means watch only: never restarted).

        Raises:
            ValueError: ``pid`` is not a live actor.
        """
        sup = self.ensure(path)
        with self._k.lock, self._lock:
            a = self._k.actors.get(pid)
            if a is None or not a.alive:
                raise ValueError(f"cannot supervise pid {pid!r}: it is not a live actor")
            sup.state.add(pid, factory, TEMPORARY if factory is None else restart, strategy)
            self._of_pid.setdefault(pid, set()).add(sup.key)

    # -- events ------------------------------------------------------------------------------

    def on_exit(self, pid: int, reason: str) -> bool:
        """Actor ``pid`` exited; returns whether any supervisor had it."""
        with self._lock:
            keys = self._of_pid.pop(pid, None)
            if not keys or self._closed:
                return bool(keys)
            work = []
            for key in keys:
                sup = self._sups.get(key)
                if sup is not None:
                    work.append((sup, sup.state.on_exit(pid, reason, self._k.clock())))
        for sup, actions in work:
            self._carry_out(sup, actions)
        return True

    def supervisor_exited(self, pid: int) -> None:
        """A supervisor's own actor died: its children go with it (OTP)."""
        with self._lock:
            sup = next((s for s in self._sups.values() if s.pid == pid), None)
            if sup is None:
                return
            shutdown = sup.state.shutdown(f"supervisor {pid} exited")
            del self._sups[sup.key]
        self._carry_out(sup, [shutdown])

    def close(self) -> None:
        """Stop reacting to exits (runtime shutdown)."""
        with self._lock:
            self._closed = True

    # -- carrying out --------------------------------------------------------------------------

    def _carry_out(self, sup: _Supervisor, actions: list[Action]) -> None:
        todo: deque[Action] = deque(actions)
        while todo:
            if self._closed:
                return
            action = todo.popleft()
            if isinstance(action, Terminate):
                self._unindex(action.pid, sup.key)
                self._k.stop(action.pid, KILLED, {"supervisor": sup.pid})
            elif isinstance(action, Restart):
                todo.extend(self._restart(sup, action.key))
            elif isinstance(action, Shutdown):
                self._give_up(sup, action)
                todo.clear()

    def _restart(self, sup: _Supervisor, key: int) -> list[Action]:
        child = sup.state.child(key)
        if child is None or child.factory is None:
            return []
        try:
            pid = child.factory()
            if not isinstance(pid, int) or isinstance(pid, bool):
                raise TypeError(f"restart factory returned {pid!r}, not a pid")
        except Exception as error:  # noqa: BLE001 - a failed restart counts toward intensity
            with self._lock:
                return sup.state.start_failed(key, self._k.clock(), repr(error))
        with self._k.lock, self._lock:
            alive = pid in self._k.actors
            if alive:
                sup.state.started(key, pid)
                self._of_pid.setdefault(pid, set()).add(sup.key)
        if alive:
            return []
        with self._lock:
            return sup.state.start_failed(key, self._k.clock(),
                                          f"restart factory returned pid {pid}, not alive")

    def _give_up(self, sup: _Supervisor, action: Shutdown) -> None:
        with self._lock:
            if self._sups.get(sup.key) is sup:
                del self._sups[sup.key]
        for pid in action.pids:
            self._unindex(pid, sup.key)
            self._k.stop(pid, KILLED, {"supervisor": sup.pid})
        self._k.stop(sup.pid, CRASH, {"error": action.reason})

    def _unindex(self, pid: int, key: str | None) -> None:
        with self._lock:
            keys = self._of_pid.get(pid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._of_pid[pid]


def _ignore(message: object) -> None:
    """A supervisor actor's handler: it takes no user messages."""
