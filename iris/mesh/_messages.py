"""System messages and exit reasons: what the runtime tells actors about other actors.

User messages are whatever the sender passed to ``send`` (``bytes`` across machines, any
value inside one process). System messages are ``SystemMessage`` records: they never reach
a push actor's handler; a push actor finds them in ``Runtime.get_messages(pid)``, a pull
actor receives them from ``mailbox.recv()`` ahead of its queued user messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CRASH",
    "EXIT",
    "EXIT_REASONS",
    "HOT_SWAP",
    "KILLED",
    "NODE_DOWN",
    "NORMAL",
    "PING",
    "PONG",
    "SystemMessage",
    "is_abnormal",
]

# Message types (``SystemMessage.type_name``).
EXIT = "EXIT"
HOT_SWAP = "HOT_SWAP"
PING = "PING"
PONG = "PONG"

# Exit reasons (``SystemMessage.reason`` of an EXIT).
NORMAL = "Normal"      # the actor finished: a pull actor's function returned, a handler
                       # raised SystemExit, the runtime shut down.
KILLED = "Killed"      # someone asked it to stop: ``stop(pid)``, its parent exited, its
                       # supervisor shut it down.
CRASH = "Crash"        # its code raised; metadata["traceback"] has the traceback.
NODE_DOWN = "NodeDown"  # a remote actor whose node stopped answering heartbeats.
EXIT_REASONS = (NORMAL, KILLED, CRASH, NODE_DOWN)


def is_abnormal(reason: str) -> bool:
    """Whether ``reason`` makes a *transient* child restart (Crash and NodeDown do)."""
    return reason in (CRASH, NODE_DOWN)


@dataclass(frozen=True, slots=True)
class SystemMessage:
    """A notice from the runtime about an actor (EXIT, HOT_SWAP, PING, PONG).

    Attributes:
        type_name: ``"EXIT"``, ``"HOT_SWAP"``, ``"PING"`` or ``"PONG"``.
        from_pid: the actor the notice comes from (the one that exited or was swapped).
        target_pid: the actor the notice is about; for EXIT and HOT_SWAP the same as
            ``from_pid`` (the README prints it as "Actor {target_pid} has crashed").
        reason: for EXIT one of ``"Normal"``, ``"Killed"``, ``"Crash"``, ``"NodeDown"``;
            empty for other types.
        metadata: extra information or None: for a Crash a dict with ``"traceback"``
            (formatted text) and ``"exception"`` (its repr); for HOT_SWAP a dict with
            ``"version"``.

    Example:
        >>> for msg in rt.get_messages(watcher):
        ...     if isinstance(msg, SystemMessage) and msg.type_name == "EXIT":
        ...         print(msg.target_pid, msg.reason)
    """

    type_name: str
    from_pid: int | None = None
    target_pid: int | None = None
    reason: str = ""
    metadata: Any = None

    @classmethod
    def exit(cls, pid: int, reason: str, metadata: Any = None) -> SystemMessage:
        """An EXIT notice for ``pid``."""
        return cls(EXIT, pid, pid, reason, metadata)

    @classmethod
    def hot_swap(cls, pid: int, version: int) -> SystemMessage:
        """A HOT_SWAP notice: ``pid`` now runs behavior ``version``."""
        return cls(HOT_SWAP, pid, pid, "", {"version": version})
