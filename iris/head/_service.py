"""The head service: registry of nodes, workers and clients, and the events between them.

The head is the control plane and stays off the task path: clients (drivers, and workers
that submit nested tasks) learn the workers from it and then talk to them directly.

::

    client ── HELLO ──▶ head ── WELCOME {workers} ──▶ client
    node   ── HELLO / REGISTER_WORKER / WORKER_EXITED / PING ──▶ head
    head   ── EVENT {worker_added | worker_removed} ──▶ every client

Nodes hold a lease renewed by their PINGs; a node silent for ``node_ttl_s`` is declared
dead and its workers are removed (clients retry their tasks elsewhere). Clients ping too
(every ``heartbeat_s`` the WELCOME gives them): a client silent for ``client_ttl_s`` is
declared gone, as is one that says goodbye, and a worker's own client the moment its
worker is. The actors it made that are not detached go with it: their names here, and
their instances in the workers (every node is told, and tells its workers); and the
objects it owned are lost (every other client is told, and fails what it waits for)::

    head ── EVENT {client_gone, owner} ──▶ node ── EVENT ──▶ each of its workers
    head ── EVENT {client_gone, address} ──▶ every client
    client ── REQUEST {op: client.alive, address} ──▶ head ── REPLY {alive} (a client that
                                                      joined after that owner went asks)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import zmq

from iris._protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    Message,
    MsgType,
    decode_control,
    encode,
    encode_control,
)
from iris._transport import Credentials, Loop, bind_server, drain_router
from iris.exceptions import ProtocolError
from iris.head._actor_names import ActorNames, handle_actor_request
from iris.head._names import NameTable, handle_request
from iris.head._restarts import ActorRestarts

__all__ = ["DEFAULT_CLIENT_TTL_S", "HeadService"]

log = logging.getLogger("iris.head")

# A client silent this long (no heartbeat) is declared gone: long enough for a driver busy
# in code that holds the GIL, or paused in a debugger, to keep its actors.
DEFAULT_CLIENT_TTL_S = 30.0
_MAX_GONE = 10_000


@dataclass(slots=True)
class _Client:
    """A client as the head knows it."""

    seen: float  # when last heard from
    address: str  # its objects' owner id
    worker_id: str  # the worker it lives in ("" for a driver): its death is the client's
    # Whether its silence ends it: not for a worker's client, nor for the driver of an
    # embedded cluster (their processes' ends are seen otherwise, and a long call holding
    # the GIL must not be taken for a death).
    leased: bool


@dataclass(slots=True)
class _Node:
    node_id: str
    identity: bytes
    host: str
    last_seen: float


class HeadService:
    """The head's state and message handlers, run on a :class:`Loop` (internal type)."""

    def __init__(self, loop: Loop, creds: Credentials, endpoint: str, cluster_id: str,
                 node_ttl_s: float = 5.0, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 client_ttl_s: float = DEFAULT_CLIENT_TTL_S) -> None:
        self.loop = loop
        self.cluster_id = cluster_id
        self.node_ttl_s = node_ttl_s
        self.client_ttl_s = client_ttl_s
        self.max_frame = max_frame_bytes
        self.creds = creds
        self.router, self.endpoint = bind_server(zmq.ROUTER, creds, endpoint, max_frame_bytes)
        self.nodes: dict[str, _Node] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        self.clients: dict[bytes, _Client] = {}  # by their identity here
        # Clients given up lately, identity -> owner id (for a client that comes back, and
        # for client.alive): at most _MAX_GONE, the oldest forgotten first.
        self.gone: dict[bytes, str] = {}
        self.actor_names = ActorNames()  # Ray-style actors' cluster-wide names
        # Detached named actors the head makes again once their creators are gone.
        self.restarts = ActorRestarts(loop, creds, self.actor_names, self.workers,
                                      self._tell_nodes, max_frame_bytes, 3 * node_ttl_s)
        self.names = NameTable()  # cluster-wide actor names (iris.Runtime.register_global)
        self.dropped_frames = 0

    def start(self) -> None:
        """Begin serving on the loop."""
        self.loop.add_reader(self.router, self._on_router)
        self.loop.call_later(self._lease_check_s(), self._check_leases)

    def _lease_check_s(self) -> float:
        return min(self.node_ttl_s, self.client_ttl_s) / 2

    def close(self) -> None:
        """Tell nodes to stop, then close the socket."""
        self.restarts.close()
        for node in self.nodes.values():
            self._send(node.identity, encode(MsgType.SHUTDOWN))
        # Linger so that the SHUTDOWNs reach nodes on other machines: with linger 0 libzmq
        # drops what it has not sent yet. (It waits only if the process then terminates
        # the ZeroMQ context, as `iris start` does; the embedded daemon's os._exit does not.)
        self.router.close(linger=1000 if self.nodes else 0)

    # ------------------------------------------------------------------ I/O
    def _send(self, identity: bytes, frames: list[Any]) -> bool:
        try:
            self.router.send_multipart([identity, *frames])
            return True
        except zmq.ZMQError:  # peer gone (ROUTER_MANDATORY)
            return False

    def _broadcast(self, body: dict[str, Any]) -> None:
        frames = encode_control(MsgType.EVENT, body)
        for ident in list(self.clients):
            # A client we cannot reach now may be reconnecting: its heartbeats decide.
            self._send(ident, frames)

    def _on_router(self) -> None:
        drain_router(self.router, self.max_frame, self._handle, self._dropped)

    def _dropped(self, ident: bytes, exc: ProtocolError) -> None:
        self.dropped_frames += 1
        log.warning("dropped a malformed message from %r: %s", ident, exc)

    # ------------------------------------------------------------------ handlers
    def _handle(self, ident: bytes, m: Message) -> None:
        t = m.type
        if t == MsgType.PING:
            node = self._node_by_identity(ident)
            if node is not None:
                node.last_seen = time.monotonic()
            elif ident in self.clients:
                self.clients[ident].seen = time.monotonic()
            else:
                # A node we declared dead (it was cut off, or paused, for longer than its
                # lease) is back: ask it to register itself and its workers again.
                self._send(ident, encode_control(MsgType.EVENT, {"kind": "reregister"}))
            self._send(ident, encode(MsgType.PONG, request_id=m.request_id))
            return
        body = decode_control(m) if t in MsgType.CONTROL else None
        if body is None:
            raise ProtocolError(f"the head does not take message type 0x{t:02x}")
        if t == MsgType.HELLO:
            self._hello(ident, body, m.request_id)
        elif t == MsgType.REGISTER_WORKER:
            info = {k: body.get(k) for k in ("worker_id", "address", "local_address",
                                             "node_id", "host", "pid", "node_endpoint")}
            if not isinstance(info["worker_id"], str) or not isinstance(info["address"], str):
                raise ProtocolError("REGISTER_WORKER needs string worker_id and address")
            self.workers[info["worker_id"]] = info
            self._broadcast({"kind": "worker_added", "worker": info})
            self.restarts.worker_registered(info["worker_id"])
        elif t == MsgType.WORKER_EXITED:
            self._worker_gone(str(body.get("worker_id")), str(body.get("reason", "exited")))
        elif t == MsgType.REQUEST:
            self._request(ident, body, m.request_id)
        else:
            raise ProtocolError(f"the head does not take message type 0x{t:02x}")

    def _hello(self, ident: bytes, body: dict[str, Any], request_id: int) -> None:
        role = body.get("role")
        if role == "node":
            node_id = str(body.get("node_id"))
            self.nodes[node_id] = _Node(node_id, ident, str(body.get("host")), time.monotonic())
        elif role == "client":
            address = str(body.get("address", ""))
            worker_id = str(body.get("worker_id", ""))
            self.clients[ident] = _Client(time.monotonic(), address, worker_id,
                                          not worker_id and body.get("lease") is not False)
            if self.gone.pop(ident, None) is not None:
                # Given up while it lived (stopped, or cut off, past its timeout): it is
                # back. What went meanwhile stays gone; its new objects and actors count.
                log.warning("client %r, given up, is back", ident)
                self._tell_all({"kind": "client_back", "address": address,
                                "owner": ident.decode("utf-8", "replace")})
        else:
            raise ProtocolError(f"HELLO with unknown role {role!r} (known: 'client', 'node')")
        self._send(ident, encode_control(MsgType.WELCOME, {
            "cluster_id": self.cluster_id, "workers": list(self.workers.values()),
            "nodes": len(self.nodes), "heartbeat_s": self.client_ttl_s / 5}, request_id))

    def _client_gone(self, ident: bytes, why: str) -> None:
        """A client left or died: the actors it made that are not detached go too (their
        names here; their instances in the workers, which every node is told of)."""
        client = self.clients.pop(ident, None)
        if client is None:
            return
        address = client.address
        self.gone[ident] = address
        while len(self.gone) > _MAX_GONE:
            del self.gone[next(iter(self.gone))]
        names = self.actor_names.drop_owner(ident)
        log.info("client %r gone (%s); dropping its actors%s", ident, why,
                 f" (named {', '.join(names)})" if names else "")
        # Workers drop its actors; other clients fail what they wait for from it (the
        # objects it owned are lost).
        self._tell_all({"kind": "client_gone", "address": address,
                        "owner": ident.decode("utf-8", "replace")})

    def _tell_all(self, body: dict[str, Any]) -> None:
        """An event for every node (which passes it to its workers) and every client."""
        self._tell_nodes(body)
        self._broadcast(body)

    def _tell_nodes(self, body: dict[str, Any]) -> None:
        """An event for every node, which passes it to its workers."""
        event = encode_control(MsgType.EVENT, body)
        for node in self.nodes.values():
            self._send(node.identity, event)

    def _worker_gone(self, wid: str, reason: str, process_gone: bool = True) -> None:
        """A worker is gone: so are its actors, and, if its process is known to have
        ended (not only cut off with its node), the client inside it. A detached named
        actor with restarts left whose creator is gone is made again here (its creator,
        while it lives, does that itself)."""
        self.workers.pop(wid, None)

        def owner_alive(owner: bytes) -> bool:  # (a client living in that worker is not)
            client = self.clients.get(owner)
            return client is not None and not (process_gone and client.worker_id == wid)

        try:
            kept = self.restarts.worker_gone(wid, owner_alive, process_gone)
        except Exception:  # a restart must not stop the rest of this (or the lease checks)
            log.exception("restarting the actors of worker %s failed", wid)
            kept = set()
        self.actor_names.drop_worker(wid, keep=kept)
        self._broadcast({"kind": "worker_removed", "worker_id": wid, "reason": reason})
        if not process_gone or not wid:
            return
        for ident, client in list(self.clients.items()):
            if client.worker_id == wid:
                self._client_gone(ident, f"its worker {wid} is gone")

    def _request(self, ident: bytes, body: dict[str, Any], request_id: int) -> None:
        op = body.get("op")
        if op == "bye":
            self._client_gone(ident, "said goodbye")
            return
        if op == "status":
            reply: dict[str, Any] = {"cluster_id": self.cluster_id,
                                     "nodes": [n.node_id for n in self.nodes.values()],
                                     "workers": list(self.workers.values()),
                                     "clients": len(self.clients),
                                     "dropped_frames": self.dropped_frames,
                                     # `iris start --worker` sets its heartbeat from this.
                                     "node_ttl_s": self.node_ttl_s}
        elif op == "client.alive":  # is the owner at this address still with us?
            # Gone only if we saw it go: an owner we never knew (we were restarted since,
            # say) is not declared dead on our word.
            address = body.get("address")
            reply = {"alive": address not in self.gone.values() or any(
                c.address == address for c in self.clients.values())}
        elif op == "shutdown":
            reply = {"ok": True}
            self.loop.call_later(0.05, self.loop.stop)
        elif isinstance(op, str) and op.startswith("name."):
            reply = handle_request(self.names, op, body, time.monotonic())
        elif isinstance(op, str) and op.startswith("actor."):
            reply = handle_actor_request(self.actor_names, op, body, ident)
        else:
            reply = {"error": f"unknown request {op!r}"}
        self._send(ident, encode_control(MsgType.REPLY, reply, request_id))

    def _node_by_identity(self, ident: bytes) -> _Node | None:
        for node in self.nodes.values():
            if node.identity == ident:
                return node
        return None

    def _check_leases(self) -> None:
        now = time.monotonic()
        for node in list(self.nodes.values()):
            if now - node.last_seen > self.node_ttl_s:
                log.warning("node %s missed its heartbeats for %.1f s: declaring it dead",
                            node.node_id, now - node.last_seen)
                del self.nodes[node.node_id]
                for wid, info in list(self.workers.items()):
                    if info.get("node_id") == node.node_id:
                        # (its processes may live on, cut off: their clients are not
                        # declared gone for this; a node that comes back brings them)
                        self._worker_gone(wid, f"node {node.node_id} lost",
                                          process_gone=False)
        self.restarts.check(now)
        for ident, client in list(self.clients.items()):
            if client.leased and now - client.seen > self.client_ttl_s:
                log.warning("client %r missed its heartbeats for %.1f s: declaring it gone",
                            ident, now - client.seen)
                self._client_gone(ident, "missed its heartbeats")
        self.loop.call_later(self._lease_check_s(), self._check_leases)
