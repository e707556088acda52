"""The mesh node: one I/O thread per Runtime serving its listener and talking to peers.

::

    any thread                          I/O thread "iris-mesh-net" (a transport.Loop)
    send_remote / send(proxy)
      └ peer.outbox.extend((hdr, data))  flush: take the outbox with one slice, one
        wake the loop (once per batch) ─►  b"".join per frame ─► DEALER "data" ─► ROUTER
    resolve_remote ─► Future ──────────►  0x01 request (request id) ──────► remote ROUTER
                      Future ◄──────────  0x01 reply ◄───────────────────── (same socket)
    heartbeat tick ─────────────────────► 0x02 on DEALER "hb"; 0x03 back
    remote ROUTER (listen) ─────────────► parse batch ─► deliver to local actors,
                                          answer 0x01/0x02, record remote monitors
    events thread "iris-mesh-net-events": proxies exit (remote EXIT, NodeDown) there, so
    a supervisor's factory that calls resolve_remote never runs on the I/O thread.

Per peer node there are two CURVE client sockets: "data" (user messages, resolve,
monitor requests, EXIT notices back) and "hb" (heartbeats only), so a ping never queues
behind a backlog of user messages on either side (the remote ROUTER fair-queues its
connections). A peer is CONNECTING (first ping sent), UP (answered), or DOWN. It goes
DOWN when the first ping gets no answer within ``io_timeout_s``, the connection is
refused or its CURVE handshake fails, the connection drops (Erlang's rule: a lost
connection is a node down, since a new connection may reach a new incarnation whose PIDs
mean other actors), or nothing was heard for ``heartbeat_timeout_s``. DOWN closes the
sockets, drops what was still queued, fails pending requests, and tells the runtime,
whose proxies for that node exit with reason NodeDown. The listening side (ROUTER) is
``_net_server.ListenerMixin``. Internal module.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from iris._protocol import (
    MsgType,
    decode_control,
    decode_mesh_resolve,
    encode,
    encode_mesh_resolve,
)
from iris._transport import Credentials, Loop, connect_client, recv_frames
from iris.exceptions import ProtocolError
from iris.mesh._messages import EXIT_REASONS, KILLED
from iris.mesh._net_config import NetSettings, display_address
from iris.mesh._net_peer import CONNECTING, DOWN, UP, NodeUnreachable, Peer, blocking_wait
from iris.mesh._net_server import READ_BURST, ListenerMixin
from iris.mesh._net_wire import (
    frames_of,
    message_bytes,
    outbox_items,
    parse_frame,
    send_header,
)

if TYPE_CHECKING:
    from iris.mesh._kernel import Kernel

__all__ = ["CONNECTING", "DOWN", "UP", "MeshNode", "NodeUnreachable", "Peer", "blocking_wait"]

log = logging.getLogger("iris.mesh.net")

_PING = message_bytes(encode(MsgType.PING))
_PONG = MsgType.PONG
_MONITOR_EVENTS = (zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED
                   | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                   | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class MeshNode(ListenerMixin):
    """The network side of one Runtime. Internal type.

    Args:
        kernel: the runtime's kernel (local delivery, names, the actor table).
        creds: CURVE credentials of every socket.
        settings: timeouts and limits (replaceable at any time: ``settings`` is read live).
        on_remote_exit: ``(address, remote_pid, reason, metadata)``, on the events thread.
        on_node_down: ``(address, reason)``, on the events thread.
    """

    def __init__(self, kernel: Kernel, creds: Credentials, settings: NetSettings,
                 on_remote_exit: Callable[[str, int, str, Any], None],
                 on_node_down: Callable[[str, str], None]) -> None:
        self.k = kernel
        self.creds = creds
        self.settings = settings
        self._on_remote_exit = on_remote_exit
        self._on_node_down = on_node_down
        self.loop = Loop()
        self.lock = threading.Lock()
        self.peers: dict[str, Peer] = {}
        self.router: zmq.Socket[Any] | None = None
        self.address: str | None = None
        self.closed = False
        self._pending: dict[int, tuple[Peer, Future[int]]] = {}
        self._rids = itertools.count(1)
        # remote monitors of local actors: local pid -> ROUTER identities to tell
        self.watchers: dict[int, set[bytes]] = {}
        self.stats = {"messages_in": 0, "messages_out": 0, "frames_in": 0, "frames_out": 0,
                      "frames_dropped": 0, "messages_dropped": 0}
        self._events: SimpleQueue[Callable[[], None] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="iris-mesh-net", daemon=True)
        self._events_thread = threading.Thread(target=self._events_main,
                                               name="iris-mesh-net-events", daemon=True)
        self._thread.start()
        self._events_thread.start()
        self.loop.call_soon_threadsafe(self._tick)

    # -- threads -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.loop.run()
        finally:
            self.loop.close()

    def _events_main(self) -> None:
        while True:
            fn = self._events.get()
            if fn is None:
                return
            try:
                fn()
            except Exception:
                log.exception("mesh event handler %r failed", fn)

    def _post(self, fn: Callable[[], None]) -> None:
        self._events.put(fn)

    def on_loop_thread(self) -> bool:
        """Whether the caller is the I/O thread (which must never wait for itself)."""
        return threading.current_thread() is self._thread

    def _call(self, fn: Callable[[], Any], timeout_s: float) -> Any:
        """Run ``fn`` on the I/O thread and return its result (or raise its error)."""
        fut: Future[Any] = Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(timeout_s)

    # -- listening -----------------------------------------------------------------------

    # -- peers: state ------------------------------------------------------------------

    def peer(self, address: str) -> Peer:
        """The record of the node at ``address`` (canonical), created if new."""
        p = self.peers.get(address)
        if p is None:
            with self.lock:
                p = self.peers.get(address)
                if p is None:
                    p = self.peers[address] = Peer(address)
                    p.flush = partial(self._flush, p)
                    p.flush_soon = self.loop.call_soon_threadsafe
        return p

    def state(self, address: str) -> str:
        """CONNECTING, UP or DOWN (DOWN also for a node never contacted)."""
        p = self.peers.get(address)
        return DOWN if p is None else p.state

    def _begin_connect_locked(self, p: Peer) -> None:
        p.state = CONNECTING
        p.outbox.clear()  # a send that raced with the last DOWN must not reach a new node
        p.ready = threading.Event()
        p.gen += 1
        self.loop.call_soon_threadsafe(partial(self._connect, p, p.gen))

    def ensure_up(self, address: str, *, force: bool = False) -> bool:
        """Connect to the node if needed and wait (bounded by io_timeout_s); True if UP.

        A node found down less than ``retry_after_s`` ago answers False at once unless
        ``force`` (``is_node_up`` forces a fresh probe).
        """
        if self.closed:
            return False
        p = self.peer(address)
        with self.lock:
            if p.state is UP:
                return True
            if p.state is DOWN:
                if not force and time.monotonic() - p.down_at < self.settings.retry_after_s:
                    return False
                self._begin_connect_locked(p)
            ready = p.ready
        if self.on_loop_thread():
            raise RuntimeError("a blocking mesh call cannot run on the mesh I/O thread")
        # The I/O thread settles the state within io_timeout_s; the margin guards only
        # against a stuck loop.
        blocking_wait(ready.wait, self.settings.io_timeout_s + 5.0)
        return p.state is UP

    def _connect(self, p: Peer, gen: int) -> None:
        if p.gen != gen or p.state is not CONNECTING or self.closed:
            return
        try:
            p.data = connect_client(zmq.DEALER, self.creds, p.address)
            p.hb = connect_client(zmq.DEALER, self.creds, p.address)
        except zmq.ZMQError as exc:
            self._down(p, f"cannot connect: {exc}")
            return
        for sock in (p.data, p.hb):
            mon = sock.get_monitor_socket(_MONITOR_EVENTS)
            p.monitors.append(mon)
            self.loop.add_reader(mon, partial(self._on_monitor, p, mon, gen))
            self.loop.add_reader(sock, partial(self._on_peer, p, sock, gen))
        p.last_ping = time.monotonic()
        p.hb.send(_PING, zmq.NOBLOCK)
        self.loop.call_later(self.settings.io_timeout_s, partial(self._probe_expired, p, gen))

    def _probe_expired(self, p: Peer, gen: int) -> None:
        if p.gen == gen and p.state is CONNECTING:
            self._down(p, f"no answer within {self.settings.io_timeout_s:g} s")

    def _on_monitor(self, p: Peer, mon: zmq.Socket[Any], gen: int) -> None:
        while True:
            try:
                event = recv_monitor_message(mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            if p.gen != gen or p.state is DOWN:
                continue
            ev = event["event"]
            if ev == zmq.EVENT_DISCONNECTED:
                self._down(p, "the connection was lost")
            elif ev == zmq.EVENT_CONNECT_RETRIED and p.state is CONNECTING:
                self._down(p, "connection refused")
            elif ev in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                        zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                self._down(p, "the CURVE handshake failed: the node does not accept our "
                              "credentials (is it using another mesh token?)")

    def _up(self, p: Peer) -> None:
        with self.lock:
            p.state = UP
            waiters, p.waiters = p.waiters, []
        p.ready.set()
        for cb in waiters:
            cb(True)
        if p.outbox:
            self._flush(p)

    def _down(self, p: Peer, reason: str) -> None:
        """Loop thread: declare the node down and tear its connection down."""
        with self.lock:
            was = p.state
            if was is DOWN:
                return
            p.state = DOWN
            p.down_at = time.monotonic()
            p.reason = reason
            p.outbox.clear()
            waiters, p.waiters = p.waiters, []
        self._close_sockets(p)
        error = NodeUnreachable(f"mesh node {display_address(p.address)!r} is down: {reason}")
        for rid in [r for r, (q, _) in self._pending.items() if q is p]:
            _, fut = self._pending.pop(rid)
            if not fut.done():
                fut.set_exception(error)
        p.ready.set()
        for cb in waiters:
            cb(False)
        if was is UP:
            log.warning("mesh node %s is down: %s", display_address(p.address), reason)
        else:
            log.info("mesh node %s is unreachable: %s", display_address(p.address), reason)
        self._post(partial(self._on_node_down, p.address, reason))

    def _close_sockets(self, p: Peer) -> None:
        for sock in (p.data, p.hb):
            if sock is None:
                continue
            self.loop.remove_reader(sock)
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
            sock.close(0)
        for mon in p.monitors:
            self.loop.remove_reader(mon)
            mon.close(0)
        p.data = p.hb = None
        p.monitors = []

    # -- peers: traffic ------------------------------------------------------------------

    def send(self, address: str, pid: int, data: bytes) -> bool:
        """Queue a user message for ``pid`` on the node at ``address`` (any thread).

        True once handed to the node's connection (not a delivery receipt); False if the
        node is unreachable (after at most ``io_timeout_s`` on first contact).
        ``RemoteAPI.send_remote`` inlines the UP case of this, with cached headers.
        """
        p = self.peers.get(address)
        if p is None or p.state is not UP:
            if not self.ensure_up(address):
                return False
            p = self.peers[address]
        p.outbox.extend((send_header(pid, len(data)), data))
        if not p.flush_pending:
            p.flush_pending = True
            p.flush_soon(p.flush)
        return True

    def send_many(self, address: str, pid: int, datas: list[bytes], lens: list[int]) -> bool:
        """Queue the user messages ``datas`` (of lengths ``lens``) for ``pid`` at once, in
        order, with one ``list.extend`` (any thread); like ``send`` otherwise."""
        p = self.peers.get(address)
        if p is None or p.state is not UP:
            if not self.ensure_up(address):
                return False
            p = self.peers[address]
        p.outbox.extend(outbox_items(pid, datas, lens))  # one step under the GIL
        if not p.flush_pending:
            p.flush_pending = True
            p.flush_soon(p.flush)
        return True

    def send_control(self, address: str, frame: bytes) -> bool:
        """Queue an encoded control message for a node that is UP (no connecting)."""
        p = self.peers.get(address)
        if p is None or p.state is not UP or self.closed:
            return False
        p.outbox.extend((frame, b""))
        if not p.flush_pending:
            p.flush_pending = True
            p.flush_soon(p.flush)
        return True

    def _flush(self, p: Peer) -> None:
        """Loop thread: everything queued for ``p`` goes out, in frames of ~512 KiB."""
        p.flush_pending = False
        sock = p.data
        if p.state is not UP or sock is None:
            return
        out = p.outbox
        n = len(out)
        if not n:
            return
        items = out[:n]  # one step each under the GIL; later appends stay queued
        del out[:n]
        send = sock.send
        frames = 0
        for frame in frames_of(items):
            try:
                send(frame, zmq.NOBLOCK, copy=len(frame) < 65536)
            except zmq.ZMQError as exc:
                self._down(p, f"send failed: {exc}")
                return
            frames += 1
        self.stats["messages_out"] += n >> 1
        self.stats["frames_out"] += frames

    def _on_peer(self, p: Peer, sock: zmq.Socket[Any], gen: int) -> None:
        """Loop thread: frames from a node we connected to (pongs, replies, EXIT notices)."""
        max_bytes = self._max_frame_bytes()
        for _ in range(READ_BURST):
            if p.gen != gen or p.state is DOWN:
                return
            frames = recv_frames(sock)
            if frames is None:
                return
            p.last_seen = time.monotonic()
            for frame in frames:
                try:
                    for item in parse_frame(frame, max_bytes):
                        self._from_peer(p, item)
                except ProtocolError as exc:
                    self.stats["frames_dropped"] += 1
                    log.warning("dropped a malformed mesh frame from %s: %s",
                                display_address(p.address), exc)
            if p.state is CONNECTING:
                self._up(p)

    def _from_peer(self, p: Peer, item: Any) -> None:
        if item.__class__ is tuple:
            raise ProtocolError("a node sent a user message on a client connection")
        t = item.type
        if t == _PONG:
            return
        if t == MsgType.MESH_RESOLVE and item.flags & 1:
            pid = decode_mesh_resolve(item)
            entry = self._pending.pop(item.request_id, None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(int(pid))
            return
        if t == MsgType.REQUEST:
            body = decode_control(item)
            notice_pid, reason = body.get("pid"), body.get("reason")
            if body.get("op") != "exit" or not isinstance(notice_pid, int) \
                    or reason not in EXIT_REASONS:
                raise ProtocolError(f"bad mesh notice {body!r}")
            self._post(partial(self._on_remote_exit, p.address, notice_pid, str(reason),
                               body.get("metadata")))
            return
        raise ProtocolError(f"unexpected message type 0x{t:02x} from a mesh node")

    # -- requests ----------------------------------------------------------------------

    def resolve(self, address: str, name: str) -> Future[int]:
        """Ask the node at ``address`` for ``name``; the Future gets its PID (0: none).

        Never blocks: connecting, if needed, happens on the I/O thread. The Future fails
        with NodeUnreachable, or TimeoutError after ``io_timeout_s``.
        """
        fut: Future[int] = Future()
        frame_of = partial(encode_mesh_resolve, name)
        self.loop.call_soon_threadsafe(partial(self._start_request, address, frame_of, fut))
        return fut

    def _start_request(self, address: str, frame_of: Callable[..., list[Any]],
                       fut: Future[int]) -> None:
        if self.closed:
            fut.set_exception(NodeUnreachable("the runtime's mesh is shut down"))
            return
        p = self.peer(address)

        def go(ok: bool) -> None:
            if not ok:
                fut.set_exception(NodeUnreachable(
                    f"mesh node {display_address(address)!r} is unreachable: {p.reason}"))
                return
            rid = next(self._rids)
            self._pending[rid] = (p, fut)
            self.send_control(address, message_bytes(frame_of(request_id=rid)))
            self.loop.call_later(self.settings.io_timeout_s, partial(self._expire, rid))

        with self.lock:
            state: str | None = p.state
            if state is DOWN:
                if time.monotonic() - p.down_at < self.settings.retry_after_s:
                    state = None  # failed recently: fail at once
                else:
                    self._begin_connect_locked(p)
                    state = CONNECTING
            if state is CONNECTING:
                p.waiters.append(go)
                return
        go(state is UP)

    def _expire(self, rid: int) -> None:
        entry = self._pending.pop(rid, None)
        if entry is not None and not entry[1].done():
            entry[1].set_exception(TimeoutError(
                f"mesh node {display_address(entry[0].address)!r} did not answer within "
                f"{self.settings.io_timeout_s:g} s"))

    # -- heartbeats ----------------------------------------------------------------------

    def _tick(self) -> None:
        if self.closed:
            return
        s = self.settings
        now = time.monotonic()
        for p in list(self.peers.values()):
            if p.state is not UP:
                continue
            silent = now - p.last_seen
            if silent > s.heartbeat_timeout_s:
                self._down(p, f"no heartbeat answer for {silent:.1f} s "
                              f"(heartbeat_timeout_s={s.heartbeat_timeout_s:g})")
            elif now - p.last_ping >= s.heartbeat_interval_s and p.hb is not None:
                p.last_ping = now
                try:
                    p.hb.send(_PING, zmq.NOBLOCK)
                except zmq.ZMQError as exc:
                    self._down(p, f"heartbeat send failed: {exc}")
        self.loop.call_later(min(s.heartbeat_interval_s, s.heartbeat_timeout_s / 10), self._tick)

    # -- shutdown ----------------------------------------------------------------------

    def close(self, timeout_s: float = 5.0) -> None:
        """Tell remote monitors our actors are gone (Killed), close every socket, stop the
        threads. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._thread.is_alive() and not self.on_loop_thread():
            self.loop.call_soon_threadsafe(self._close_on_loop)
            self._thread.join(timeout_s)
        self._events.put(None)
        if threading.current_thread() is not self._events_thread:
            self._events_thread.join(timeout_s)

    def _close_on_loop(self) -> None:
        for pid in list(self.watchers):
            self._send_exit(pid, KILLED, {"shutdown": True})
        if self.router is not None:
            self.loop.remove_reader(self.router)
            # Give the EXIT notices just queued a moment to leave (the context outlives us).
            self.router.close(linger=200)
            self.router = None
            self.address = None
        for p in list(self.peers.values()):
            with self.lock:
                p.state = DOWN
                p.reason = "the runtime was shut down"
                p.outbox.clear()
                waiters, p.waiters = p.waiters, []
            self._close_sockets(p)
            p.ready.set()
            for cb in waiters:
                cb(False)
        error = NodeUnreachable("the runtime's mesh was shut down")
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()
        self.loop.stop()

    def statistics(self) -> dict[str, Any]:
        """Counters and the state of every known node."""
        return {"listening": display_address(self.address) if self.address else None,
                "nodes": {display_address(a): p.state for a, p in list(self.peers.items())},
                **self.stats}


