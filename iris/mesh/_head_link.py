"""A mesh runtime's connection to its cluster's head, for cluster-wide names.

One CURVE DEALER socket (the cluster's credentials, not the mesh token) on the mesh I/O
loop. ``request(body)`` sends a ``REQUEST`` control message and returns a Future of the
head's ``REPLY`` body; a head that does not answer within ``io_timeout_s`` fails it with
``HeadUnreachable``. While the runtime holds names, a ``name.renew`` goes out every
``heartbeat_interval_s`` with a lease of ``heartbeat_timeout_s``: a runtime that dies or
loses the head stops renewing and the head drops its names when the lease ends. If the
head answers that it does not know the owner (its lease ran out during a pause, or the
head restarted), the names are registered again. Internal module.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any

import zmq

from iris._protocol import MsgType, decode_control, decode_frames, encode_control
from iris._transport import Credentials, connect_client, recv_frames
from iris.exceptions import IrisError, ProtocolError

if TYPE_CHECKING:
    from iris.mesh._net import MeshNode

__all__ = ["HeadLink", "HeadUnreachable"]

log = logging.getLogger("iris.mesh.names")


class HeadUnreachable(IrisError):
    """The cluster's head did not answer a name request in time."""


class HeadLink:
    """The connection to one head, living on a mesh node's I/O loop. Internal type.

    Args:
        node: the mesh node whose loop (and settings) the link uses.
        endpoint: the head, ``"tcp://host:port"``.
        creds: the cluster's credentials.
        owner: this runtime's owner id at the head.
        held: returns the names this runtime holds now, as ``{name: (node, pid)}``
            (called on the loop, for renewing and re-registering).
    """

    def __init__(self, node: MeshNode, endpoint: str, creds: Credentials, owner: str,
                 held: Callable[[], dict[str, tuple[str, int]]]) -> None:
        self.node = node
        self.endpoint = endpoint
        self.creds = creds
        self.owner = owner
        self._held = held
        self._sock: zmq.Socket[Any] | None = None
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._rids = itertools.count(1)
        self._ticking = False
        self.closed = False

    # -- any thread ------------------------------------------------------------------

    def request(self, body: dict[str, Any]) -> Future[dict[str, Any]]:
        """Send ``body`` (with its ``op``) to the head; the Future gets the reply body."""
        fut: Future[dict[str, Any]] = Future()
        self.node.loop.call_soon_threadsafe(partial(self._send, body, fut))
        return fut

    def holding(self) -> None:
        """The runtime holds a name now: make sure the lease is being renewed."""
        self.node.loop.call_soon_threadsafe(self._start_ticking)

    # -- loop thread -----------------------------------------------------------------

    def _socket(self) -> zmq.Socket[Any]:
        if self._sock is None:
            self._sock = connect_client(zmq.DEALER, self.creds, self.endpoint)
            self.node.loop.add_reader(self._sock, self._on_reply)
        return self._sock

    def _send(self, body: dict[str, Any], fut: Future[dict[str, Any]] | None) -> None:
        if self.closed or self.node.closed:
            if fut is not None:
                fut.set_exception(HeadUnreachable("the runtime's mesh is shut down"))
            return
        rid = next(self._rids)
        try:
            self._socket().send_multipart(encode_control(MsgType.REQUEST, body, rid),
                                          zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            if fut is not None:
                fut.set_exception(HeadUnreachable(f"cannot reach the head at "
                                                  f"{self.endpoint}: {exc}"))
            return
        if fut is not None:
            self._pending[rid] = fut
            self.node.loop.call_later(self.node.settings.io_timeout_s,
                                      partial(self._expire, rid))

    def _expire(self, rid: int) -> None:
        fut = self._pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_exception(HeadUnreachable(
                f"the head at {self.endpoint} did not answer within "
                f"{self.node.settings.io_timeout_s:g} s (is the cluster running, and this "
                f"process connected to it with the cluster's token?)"))

    def _on_reply(self) -> None:
        sock = self._sock
        while sock is not None:
            frames = recv_frames(sock)
            if frames is None:
                return
            try:
                for msg in decode_frames(frames):
                    if msg.type != MsgType.REPLY:
                        continue
                    body = decode_control(msg)
                    fut = self._pending.pop(msg.request_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(body)
            except ProtocolError as exc:
                log.warning("dropped a malformed reply from the head at %s: %s",
                            self.endpoint, exc)

    def _start_ticking(self) -> None:
        if not self._ticking and not self.closed:
            self._ticking = True
            self.node.loop.call_later(self.node.settings.heartbeat_interval_s, self._tick)

    def _tick(self) -> None:
        """Renew the lease while names are held; re-register them if the head forgot."""
        if self.closed or self.node.closed or not self._held():
            self._ticking = False
            return
        s = self.node.settings
        fut: Future[dict[str, Any]] = Future()
        fut.add_done_callback(self._renewed)
        self._send({"op": "name.renew", "owner": self.owner,
                    "lease_s": s.heartbeat_timeout_s}, fut)
        self.node.loop.call_later(s.heartbeat_interval_s, self._tick)

    def _renewed(self, fut: Future[dict[str, Any]]) -> None:
        if fut.exception() is not None or fut.result().get("known", True):
            return
        # The head dropped us (a pause longer than the lease, or a new head): register
        # again what we still hold. A name taken meanwhile stays with its new holder.
        lease = self.node.settings.heartbeat_timeout_s
        for name, (node, pid) in self._held().items():
            again: Future[dict[str, Any]] = Future()
            again.add_done_callback(partial(_report_reregister, name))
            self._send({"op": "name.register", "name": name, "node": node, "pid": pid,
                        "owner": self.owner, "lease_s": lease}, again)

    def close_on_loop(self) -> None:
        """Close the socket and fail pending requests (loop thread)."""
        self.closed = True
        error = HeadUnreachable("the runtime's mesh was shut down")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()
        if self._sock is not None:
            self.node.loop.remove_reader(self._sock)
            self._sock.close(linger=500)  # let a last name.drop leave
            self._sock = None


def _report_reregister(name: str, fut: Future[dict[str, Any]]) -> None:
    if fut.exception() is None and "error" in fut.result():
        log.warning("could not register the cluster-wide name %r again: %s", name,
                    fut.result()["error"])
