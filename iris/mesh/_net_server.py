"""The listening side of a mesh node: the ROUTER that serves this runtime's actors.

A frame of equal messages to one push actor (the usual flood, see
``_net_wire.uniform_frame``) goes into the actor's queue whole, as one ``Deferred`` item
that its scheduler thread cuts into messages when it gets to it. Other frames are parsed
into runs (consecutive messages to one actor) and control messages; a run goes into its
actor's queue with one ``extend`` and one wake-up. 0x01
resolves are answered from the registry, 0x02 pings with 0x03, and ``monitor`` /
``demonitor`` requests record which peers to tell when a local actor exits. A malformed
frame is logged, counted in ``frames_dropped`` and dropped whole. Internal module
(``ListenerMixin`` is a base class of ``_net.MeshNode``).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import zmq

from iris._protocol import (
    Message,
    MsgType,
    decode_control,
    decode_mesh_resolve,
    encode,
    encode_mesh_resolve,
)
from iris._transport import bind_server
from iris.exceptions import ProtocolError
from iris.mesh._messages import NORMAL
from iris.mesh._net_config import display_address
from iris.mesh._net_wire import (
    BATCH_TARGET_BYTES,
    control_bytes,
    jsonable,
    message_bytes,
    parse_runs,
    run_datas,
    uniform_frame,
)
from iris.mesh._scheduler import Deferred

if TYPE_CHECKING:
    from iris._transport import Credentials, Loop
    from iris.mesh._kernel import Kernel
    from iris.mesh._net_config import NetSettings

__all__ = ["ListenerMixin", "READ_BURST"]

log = logging.getLogger("iris.mesh.net")

_PONG = MsgType.PONG
# Multipart messages read per readiness callback (up to 8 batches of ~512 KiB, some tens of
# ms of work), so one flooding peer cannot starve the heartbeats and timers of the same
# loop; the poller reports the socket again at once.
READ_BURST = 8


class ListenerMixin:
    """The ROUTER side of ``MeshNode``. Internal base class."""

    if TYPE_CHECKING:
        k: Kernel
        creds: Credentials
        settings: NetSettings
        loop: Loop
        router: zmq.Socket[Any] | None
        address: str | None
        closed: bool
        watchers: dict[int, set[bytes]]
        stats: dict[str, int]

        def _call(self, fn: Any, timeout_s: float) -> Any: ...

    def listen(self, endpoint: str) -> str:
        """Bind the ROUTER on ``endpoint`` (canonical form); returns the bound endpoint."""
        max_bytes = self._max_frame_bytes()

        def bind() -> str:
            if self.router is not None:
                raise RuntimeError(f"this runtime already listens on "
                                   f"{display_address(self.address or '')!r}")
            sock, bound = bind_server(zmq.ROUTER, self.creds, endpoint, max_bytes)
            self.router = sock
            self.address = bound
            self.loop.add_reader(sock, self._on_router)
            return bound

        try:
            return str(self._call(bind, 10.0))
        except zmq.ZMQError as exc:
            _close_unbound_socket(exc)
            raise OSError(exc.errno, f"cannot listen on {display_address(endpoint)!r}: "
                                     f"{exc.strerror}") from None

    def _max_frame_bytes(self) -> int:
        return self.settings.max_payload_bytes + BATCH_TARGET_BYTES + 4096

    def _on_router(self) -> None:
        sock = self.router
        if sock is None:
            return
        max_bytes = self._max_frame_bytes()
        recv = sock.recv_multipart
        for _ in range(READ_BURST):
            try:
                # bytes, copied once out of ZeroMQ's buffer: parse_runs wants bytes anyway
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            ident = frames[0]
            if len(frames) < 2:
                self._dropped("a message with no frames after the peer identity", ident)
                continue
            for frame in frames[1:]:
                if len(frame) <= max_bytes:
                    u = uniform_frame(frame)
                    if u is not None and self._defer(frame, *u):
                        continue
                try:
                    items = parse_runs(frame, max_bytes)
                except ProtocolError as exc:
                    self._dropped(str(exc), ident)
                    continue
                self.stats["frames_in"] += 1
                self._serve(ident, items)

    def _defer(self, frame: bytes, pid: int, step: int, k: int) -> bool:
        """Queue a uniform frame (``k`` messages to ``pid``) to its actor as one
        ``Deferred`` item, cut into messages by the actor's scheduler thread; False (the
        caller parses it) unless ``pid`` is a live, unbounded, active push actor."""
        k_ = self.k
        a = k_.actors.get(pid)
        if a is None or not a.fast:
            return False
        a.deferred = True
        a.queue.append(Deferred(partial(run_datas, frame, step, k), k))
        if not a.scheduled:
            k_.wake(a)
        stats = self.stats
        stats["frames_in"] += 1
        stats["messages_in"] += k
        return True

    def _dropped(self, why: str, ident: bytes) -> None:
        self.stats["frames_dropped"] += 1
        log.warning("dropped a malformed mesh frame from peer %s: %s", bytes(ident).hex(), why)

    def _serve(self, ident: bytes, items: list[Any]) -> None:
        """Act on what one batch frame from a peer carries (I/O thread)."""
        k = self.k
        actors = k.actors
        delivered = dropped = 0
        for item in items:
            if item.__class__ is tuple:
                pid, datas = item
                a = actors.get(pid)
                if a is not None and a.fast:
                    a.queue.extend(datas)
                    if not a.scheduled:
                        k.wake(a)
                    delivered += len(datas)
                    continue
                deliver = k.deliver
                for data in datas:
                    # block_ok=False: a full "block" mailbox must not stall the I/O thread
                    # (and with it every heartbeat): the message is dropped instead.
                    if deliver(pid, data, block_ok=False):
                        delivered += 1
                    else:
                        dropped += 1
                continue
            try:
                self._serve_control(ident, item)
            except ProtocolError as exc:
                self._dropped(str(exc), ident)
        stats = self.stats
        stats["messages_in"] += delivered
        if dropped:
            stats["messages_dropped"] += dropped

    def _serve_control(self, ident: bytes, msg: Message) -> None:
        t = msg.type
        if t == MsgType.PING:
            self._reply(ident, message_bytes(encode(_PONG, request_id=msg.request_id)))
        elif t == MsgType.MESH_RESOLVE and not msg.flags & 1:
            name = decode_mesh_resolve(msg)
            assert isinstance(name, str)
            reg = self.k.registry
            pid = reg.whereis(name)
            if pid is None and name.startswith("/"):
                pid = reg.whereis_path(name)
            self._reply(ident, message_bytes(encode_mesh_resolve(
                pid=pid or 0, request_id=msg.request_id)))
        elif t == MsgType.REQUEST:
            body = decode_control(msg)
            op, pid = body.get("op"), body.get("pid")
            if not isinstance(pid, int) or isinstance(pid, bool):
                raise ProtocolError(f"mesh control {op!r} needs an integer pid, got {pid!r}")
            if op == "monitor":
                self._remote_monitor(ident, pid)
            elif op == "demonitor":
                idents = self.watchers.get(pid)
                if idents is not None:
                    idents.discard(ident)
                    if not idents:
                        self.watchers.pop(pid, None)
            else:
                raise ProtocolError(f"unknown mesh control op {op!r}")
        else:
            raise ProtocolError(f"unexpected message type 0x{t:02x} on a mesh listener")

    def _remote_monitor(self, ident: bytes, pid: int) -> None:
        k = self.k
        with k.lock:
            alive = pid in k.actors
            if alive:
                self.watchers.setdefault(pid, set()).add(ident)
        if not alive:  # already gone: say so at once, with its reason if still known
            reason = k.recent_exits.get(pid, NORMAL)
            self._reply(ident, control_bytes("exit", {
                "pid": pid, "reason": reason, "metadata": {"noproc": True}}))

    def local_exit(self, pid: int, reason: str, metadata: Any) -> None:
        """A local actor died (any thread): tell the nodes that monitor it."""
        if pid in self.watchers and not self.closed:
            self.loop.call_soon_threadsafe(partial(self._send_exit, pid, reason, metadata))

    def _send_exit(self, pid: int, reason: str, metadata: Any) -> None:
        idents = self.watchers.pop(pid, None)
        if not idents:
            return
        notice = control_bytes("exit", {"pid": pid, "reason": reason,
                                        "metadata": jsonable(metadata)})
        for ident in idents:
            self._reply(ident, notice)

    def _reply(self, ident: bytes, frame: bytes) -> None:
        sock = self.router
        if sock is None:
            return
        try:
            sock.send_multipart([ident, frame], zmq.NOBLOCK)
        except zmq.ZMQError:  # the peer is gone (ROUTER_MANDATORY): forget its monitors
            for pid in [p for p, ids in self.watchers.items() if ident in ids]:
                ids = self.watchers[pid]
                ids.discard(ident)
                if not ids:
                    del self.watchers[pid]



def _close_unbound_socket(exc: BaseException) -> None:
    """Close the socket ``bind_server`` made before its bind failed.

    ``bind_server`` does not close it on failure, so it would be left for the garbage
    collector (a ResourceWarning); it is still reachable from the traceback's frames.
    """
    tb = exc.__traceback__
    while tb is not None:
        sock = tb.tb_frame.f_locals.get("sock")
        if isinstance(sock, zmq.Socket) and not sock.closed:
            sock.close(0)
        tb = tb.tb_next
