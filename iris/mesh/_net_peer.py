"""Mesh node basics shared by the listener and the peer side: node states, ``Peer`` (what
a runtime knows about one remote node), ``NodeUnreachable`` and ``blocking_wait``.
Internal module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import zmq

from iris.exceptions import IrisError
from iris.mesh._scheduler import current_scheduler

__all__ = ["CONNECTING", "DOWN", "UP", "NodeUnreachable", "Peer", "blocking_wait"]

CONNECTING, UP, DOWN = "connecting", "up", "down"


def blocking_wait(wait: Callable[[float], Any], timeout_s: float) -> Any:
    """``wait(timeout_s)``; on a scheduler thread a stand-in thread first takes over, so
    the other actors keep running while a handler waits for the network."""
    sched = current_scheduler()
    if sched is None:
        return wait(timeout_s)
    sched.begin_blocking()
    try:
        return wait(timeout_s)
    finally:
        sched.end_blocking()


class NodeUnreachable(IrisError):
    """A mesh node did not answer, refused us, or went down (internal: resolve reports
    it as None and a log line, send_remote as False)."""



class Peer:
    """What this runtime knows about one remote node. Internal type.

    ``outbox`` is a list of bytes in pairs: ``header, data`` for a user message, ``frame,
    b""`` for a control message. Senders on any thread add a pair with one ``extend`` (one
    step under the GIL, so a pair is never split); the I/O thread takes the first ``n``
    items with one slice and one ``del`` (appends that race with it land after them).
    """

    __slots__ = ("address", "state", "outbox", "flush_pending", "flush", "flush_soon", "data",
                 "hb", "monitors", "last_seen", "last_ping", "down_at", "reason", "ready",
                 "waiters", "gen")

    def __init__(self, address: str) -> None:
        self.address = address
        self.state = DOWN
        self.outbox: list[bytes] = []
        self.flush_pending = False
        self.flush: Callable[[], None] = _nothing  # the node's flush of this peer
        # the node loop's call_soon_threadsafe
        self.flush_soon: Callable[[Callable[[], None]], None] = _nothing1
        self.data: zmq.Socket[Any] | None = None
        self.hb: zmq.Socket[Any] | None = None
        self.monitors: list[zmq.Socket[Any]] = []
        self.last_seen = self.last_ping = 0.0
        self.down_at = float("-inf")  # never tried: the first use connects
        self.reason = "never contacted"
        self.ready = threading.Event()
        self.waiters: list[Callable[[bool], None]] = []
        self.gen = 0


def _nothing() -> None:
    return None


def _nothing1(fn: Callable[[], None]) -> None:
    return None
