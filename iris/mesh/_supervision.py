"""Supervision decisions as a pure state machine (no threads, no clock of its own).

The runtime feeds a ``SupervisorState`` events -- a child exited, a restart succeeded or
failed -- with the current time, and carries out the actions it returns. Tests drive it
with a fake clock.

OTP vocabulary, as in Erlang's supervisor:

* strategy (per child here; it decides what the *exit of that child* does)
  ``one_for_one``  restart only the child that exited;
  ``one_for_all``  terminate every other child, then restart them all;
  ``rest_for_one`` terminate the children started after it, then restart it and them.
* restart type
  ``permanent``    always restarted;
  ``transient``    restarted only after an abnormal exit (Crash, NodeDown);
  ``temporary``    never restarted (also any child watched without a factory).
* intensity: more than ``max_restarts`` restarts within ``period_s`` seconds and the
  supervisor gives up: it terminates its children and exits itself (``Shutdown``).

A factory that raises or returns something that is not a live PID counts as a restart
(so a broken factory quickly exhausts the intensity instead of looping for ever).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from iris.mesh._messages import is_abnormal

__all__ = [
    "ONE_FOR_ALL",
    "ONE_FOR_ONE",
    "PERMANENT",
    "REST_FOR_ONE",
    "RESTART_TYPES",
    "STRATEGIES",
    "TEMPORARY",
    "TRANSIENT",
    "Action",
    "ChildSpec",
    "Restart",
    "Shutdown",
    "SupervisorState",
    "Terminate",
    "parse_restart",
    "parse_strategy",
]

ONE_FOR_ONE = "one_for_one"
ONE_FOR_ALL = "one_for_all"
REST_FOR_ONE = "rest_for_one"
STRATEGIES = (ONE_FOR_ONE, ONE_FOR_ALL, REST_FOR_ONE)

PERMANENT = "permanent"
TRANSIENT = "transient"
TEMPORARY = "temporary"
RESTART_TYPES = (PERMANENT, TRANSIENT, TEMPORARY)

# Spellings accepted for strategies: OTP's, and the original runtime's
# ("RestartOne"/"restart_one"/"one", "RestartAll"/"restart_all"/"all").
_STRATEGY_ALIASES = {
    "oneforone": ONE_FOR_ONE, "restartone": ONE_FOR_ONE, "one": ONE_FOR_ONE,
    "oneforall": ONE_FOR_ALL, "restartall": ONE_FOR_ALL, "all": ONE_FOR_ALL,
    "restforone": REST_FOR_ONE, "restartrest": REST_FOR_ONE, "rest": REST_FOR_ONE,
}


def parse_strategy(strategy: str) -> str:
    """Normalise a strategy name (any case; ``_``/``-`` ignored).

    Raises:
        ValueError: unknown strategy (the message lists the valid ones).
    """
    key = str(strategy).lower().replace("_", "").replace("-", "")
    try:
        return _STRATEGY_ALIASES[key]
    except KeyError:
        raise ValueError(f"unknown supervision strategy {strategy!r} (valid strategies: "
                         f"{list(STRATEGIES)}; 'RestartOne' and 'RestartAll' also work)"
                         ) from None


def parse_restart(restart: str) -> str:
    """Normalise a restart type.

    Raises:
        ValueError: not one of permanent, transient, temporary.
    """
    key = str(restart).lower()
    if key not in RESTART_TYPES:
        raise ValueError(f"unknown restart type {restart!r} (valid types: {list(RESTART_TYPES)})")
    return key


class Restart(NamedTuple):
    """Call the factory of child ``key`` and report with ``started``/``start_failed``."""

    key: int


class Terminate(NamedTuple):
    """Stop ``pid``; the supervisor has already forgotten it, so its exit is ignored."""

    pid: int


class Shutdown(NamedTuple):
    """Give up: stop ``pids`` (newest first) and exit the supervisor with ``reason``."""

    pids: tuple[int, ...]
    reason: str


Action = Restart | Terminate | Shutdown


@dataclass(slots=True)
class ChildSpec:
    """One supervised child. Internal type, not part of the public API.

    Attributes:
        key: stable id of the child slot (survives restarts; PIDs do not).
        pid: the current PID, or None while it is being restarted.
        factory: returns the PID of a fresh child; None for watch-only children.
        restart: permanent, transient or temporary.
        strategy: what this child's exit does to its siblings.
    """

    key: int
    pid: int | None
    factory: Callable[[], int] | None
    restart: str = PERMANENT
    strategy: str = ONE_FOR_ONE


@dataclass
class SupervisorState:
    """The children of one supervisor and its restart history.

    Example:
        >>> sup = SupervisorState(max_restarts=1, period_s=5.0)
        >>> key = sup.add(7, factory, PERMANENT, ONE_FOR_ONE)
        >>> sup.on_exit(7, "Crash", now=0.0)
        [Restart(key=1)]
    """

    max_restarts: int = 3
    period_s: float = 5.0
    children: list[ChildSpec] = field(default_factory=list)
    restarts: deque[float] = field(default_factory=deque)
    alive: bool = True
    _next_key: int = 1

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts!r}")
        if self.period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {self.period_s!r}")

    # -- membership ------------------------------------------------------------------

    def add(self, pid: int, factory: Callable[[], int] | None, restart: str = PERMANENT,
            strategy: str = ONE_FOR_ONE) -> int:
        """Supervise ``pid`` (replacing an earlier entry for it); returns the child key."""
        for child in self.children:
            if child.pid == pid:
                child.factory, child.restart, child.strategy = factory, restart, strategy
                return child.key
        key = self._next_key
        self._next_key += 1
        self.children.append(ChildSpec(key, pid, factory, restart, strategy))
        return key

    def remove_pid(self, pid: int) -> bool:
        """Stop supervising ``pid``; False if it was not a child."""
        for i, child in enumerate(self.children):
            if child.pid == pid:
                del self.children[i]
                return True
        return False

    def pids(self) -> list[int]:
        """PIDs of the children running now, in start order."""
        return [c.pid for c in self.children if c.pid is not None]

    def child(self, key: int) -> ChildSpec | None:
        """The child slot ``key``, or None."""
        for child in self.children:
            if child.key == key:
                return child
        return None

    # -- events ------------------------------------------------------------------------

    def on_exit(self, pid: int, reason: str, now: float) -> list[Action]:
        """A child exited with ``reason`` at time ``now``; returns what to do."""
        if not self.alive:
            return []
        index = next((i for i, c in enumerate(self.children) if c.pid == pid), None)
        if index is None:
            return []  # not ours, or terminated by us
        child = self.children[index]
        child.pid = None
        if not self._wants_restart(child, reason):
            del self.children[index]
            return []
        if not self._record_restart(now):
            return [self._give_up(f"restart intensity exceeded: more than "
                                  f"{self.max_restarts} restart(s) in {self.period_s} s")]
        if child.strategy == ONE_FOR_ONE:
            return [Restart(child.key)]
        group = self.children if child.strategy == ONE_FOR_ALL else self.children[index:]
        actions: list[Action] = [Terminate(c.pid) for c in reversed(group)
                                 if c.pid is not None]
        for c in group:
            c.pid = None
        # Siblings that are temporary (or have no factory) are not restarted: drop them.
        keep = [c for c in group if c is child or (c.factory is not None
                                                   and c.restart != TEMPORARY)]
        self.children = [c for c in self.children if c not in group or c in keep]
        actions.extend(Restart(c.key) for c in keep)
        return actions

    def started(self, key: int, pid: int) -> list[Action]:
        """Child ``key``'s factory returned ``pid``."""
        child = self.child(key)
        if child is not None:
            child.pid = pid
        return []

    def start_failed(self, key: int, now: float, error: str) -> list[Action]:
        """Child ``key``'s factory failed; retry while the intensity allows."""
        if not self.alive or self.child(key) is None:
            return []
        if not self._record_restart(now):
            return [self._give_up(f"restart intensity exceeded while restarting child "
                                  f"{key}: {error}")]
        return [Restart(key)]

    def shutdown(self, reason: str) -> Shutdown:
        """Give up now (the supervisor itself was stopped)."""
        return self._give_up(reason)

    # -- helpers -----------------------------------------------------------------------

    def _wants_restart(self, child: ChildSpec, reason: str) -> bool:
        if child.factory is None or child.restart == TEMPORARY:
            return False
        if child.restart == TRANSIENT:
            return is_abnormal(reason)
        return True

    def _record_restart(self, now: float) -> bool:
        """Count one restart at ``now``; False when that exceeds the intensity."""
        self.restarts.append(now)
        while self.restarts and self.restarts[0] <= now - self.period_s:
            self.restarts.popleft()
        return len(self.restarts) <= self.max_restarts

    def _give_up(self, reason: str) -> Shutdown:
        self.alive = False
        pids = tuple(c.pid for c in reversed(self.children) if c.pid is not None)
        self.children = []
        return Shutdown(pids, reason)
