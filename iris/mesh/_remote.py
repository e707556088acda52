"""Runtime methods for the cross-process mesh: listen, resolve_remote, send_remote, ...

A remote actor is reached through a *proxy*: a local PID (``>= 2**62``, so it never
collides with a local actor's) standing for ``(node address, remote pid)``. It sits in the
actor table like any actor, so ``send``, ``is_alive``, ``link``, ``monitor``, ``stop``,
``register`` and supervisors work with it; ``send`` hands its messages straight to the
network (the kernel's ``deliver_remote`` hook, no scheduler hop). Each proxy monitors its
remote actor, and exits with that actor's reason (Normal, Killed, Crash) or with NodeDown
when the node stops answering, so local monitors and links hear about it as EXIT.

The network itself (the I/O thread, sockets, heartbeats) is ``_net.MeshNode``, started on
first use; a runtime that never touches the network starts nothing and pays nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from iris.mesh._actor import Actor
from iris.mesh._messages import NODE_DOWN, SystemMessage
from iris.mesh._net import UP, MeshNode, NodeUnreachable, Peer, blocking_wait
from iris.mesh._net_config import (
    NetSettings,
    canonical_address,
    display_address,
    load_credentials,
)
from iris.mesh._net_wire import control_bytes, send_header
from iris.mesh._pids import check_pid

if TYPE_CHECKING:
    from iris.mesh._kernel import Kernel

__all__ = ["PROXY_PID_BASE", "RemoteAPI"]

log = logging.getLogger("iris.mesh.net")

# Proxy PIDs: 2**62 + (24 random bits << 32) + n. Local PIDs count up from 1, so the two
# never meet; the random part keeps one runtime's proxies apart from another's when a
# node hands out a proxy of its own.
PROXY_PID_BASE = 1 << 62
_ADDR_CACHE_LIMIT = 1024
_PID_LIMIT = 1 << 64
_HEADER_CACHE_LIMIT = 1 << 16


class RemoteAPI:
    """Cross-process methods of ``Runtime``. Internal base class."""

    if TYPE_CHECKING:
        _k: Kernel
        _actors: dict[int, Actor]
        _global_by_pid: dict[int, set[str]]

        def _global_close(self) -> None: ...
        def _global_exit(self, pid: int) -> None: ...

    def _remote_init(self, token: str | None = None) -> None:
        self._net_token = token
        self._net: MeshNode | None = None
        self._net_settings = NetSettings()
        self._net_lock = threading.Lock()
        self._proxies: dict[int, tuple[str, int]] = {}
        self._proxy_of: dict[tuple[str, int], int] = {}
        self._proxy_ids = itertools.count(PROXY_PID_BASE | (secrets.randbits(24) << 32) | 1)
        self._addresses: dict[str, str] = {}
        # send_remote's fast path: the address as the caller wrote it -> that node's Peer
        # (used only while the peer is UP), and the payload limit.
        self._peer_of: dict[str, Peer] = {}
        # ... and the packed 0x00 header per data length, then remote pid (two int-keyed
        # lookups beat one tuple-keyed one), for pids below PROXY_PID_BASE and lengths
        # within max_payload_bytes: a hit needs no more checks.
        self._headers: dict[int, dict[int, bytes]] = {}
        self._header_count = 0
        self._net_limit = self._net_settings.max_payload_bytes

    def _remote_close(self) -> None:
        if self._net is not None:
            self._global_close()
            self._net.close()

    def _node(self, token: str | None = None) -> MeshNode:
        """The mesh node, started on first use with this runtime's credentials."""
        node = self._net
        if node is not None:
            if node.closed:
                self._k.check_open()  # raises: the runtime is shut down
            if token is not None and token.strip() != node.creds.token:
                raise ValueError("this runtime's mesh already runs with another token; "
                                 "pass the token to Runtime(token=...) instead")
            return node
        with self._net_lock:
            if self._net is None:
                self._k.check_open()
                creds = load_credentials(token if token is not None else self._net_token)
                k = self._k
                node = MeshNode(k, creds, self._net_settings, self._on_remote_exit,
                                self._on_node_down)
                k.deliver_remote = self._deliver_remote  # type: ignore[method-assign]
                k.deliver_remote_many = self._deliver_remote_many  # type: ignore[method-assign]
                k.on_exit = self._on_actor_exit
                self._net = node
            return self._net

    def _address(self, address: str) -> str:
        canon = self._addresses.get(address)
        if canon is None:
            canon = canonical_address(address)
            if len(self._addresses) >= _ADDR_CACHE_LIMIT:
                self._addresses.clear()
            self._addresses[address] = canon
        return canon

    # -- public --------------------------------------------------------------------------

    def listen(self, address: str, token: str | None = None) -> str:
        """Serve this runtime's actors on ``address`` to other processes.

        Remote runtimes can then ``resolve_remote`` names registered here and
        ``send_remote`` to its actors. Every connection is CURVE-authenticated with the
        mesh token (see ``Runtime(token=...)``); frames that break the protocol are logged
        and dropped, and the listener keeps serving.

        Args:
            address: ``"host:port"`` or ``"tcp://host:port"``; port 0 picks a free port.
            token: the mesh token, if not given to ``Runtime(token=...)``.

        Returns:
            The bound address as ``"host:port"`` (also ``listen_address``).

        Raises:
            ValueError: ``address`` is malformed.
            OSError: the address cannot be bound (in use, not local).
            RuntimeError: this runtime already listens.

        Example:
            >>> addr = rt.listen("127.0.0.1:0")     # e.g. '127.0.0.1:40123'
        """
        canon = canonical_address(address)
        return display_address(self._node(token).listen(canon))

    @property
    def listen_address(self) -> str | None:
        """The address this runtime listens on (``"host:port"``), or None."""
        node = self._net
        return None if node is None or node.address is None else display_address(node.address)

    def resolve_remote(self, address: str, name: str) -> int | None:
        """Look ``name`` up on the node at ``address``; blocks up to ``io_timeout_s``.

        Returns:
            A local proxy PID for the remote actor (the same one for the same remote
            actor), usable with ``send``, ``send_remote``, ``monitor`` and ``link``; None if
            the name is not registered there, or the node is unreachable (logged).

        Example:
            >>> proxy = rt.resolve_remote("127.0.0.1:9000", "auth_worker")
            >>> rt.send(proxy, b"login")
        """
        canon = self._address(address)
        _check_name(name)
        fut = self._node().resolve(canon, name)
        try:
            rpid = blocking_wait(fut.result, self._net_settings.io_timeout_s + 5.0)
        except (NodeUnreachable, TimeoutError) as exc:
            log.warning("resolve_remote(%r, %r) failed: %s", address, name, exc)
            return None
        return self._proxy_for(canon, rpid) if rpid else None

    async def resolve_remote_py(self, address: str, name: str) -> int | None:
        """``resolve_remote`` as a coroutine: the event loop is never blocked.

        Example:
            >>> proxy = await rt.resolve_remote_py("127.0.0.1:9000", "auth_worker")
        """
        canon = self._address(address)
        _check_name(name)
        fut = self._node().resolve(canon, name)
        try:
            rpid = await asyncio.wait_for(asyncio.wrap_future(fut),
                                          self._net_settings.io_timeout_s + 5.0)
        except (NodeUnreachable, TimeoutError) as exc:
            log.warning("resolve_remote_py(%r, %r) failed: %s", address, name, exc)
            return None
        return self._proxy_for(canon, rpid) if rpid else None

    def send_remote(self, address: str, pid: int, data: bytes) -> bool:
        """Send ``data`` to actor ``pid`` on the node at ``address``.

        ``pid`` is the remote actor's own PID, or a proxy PID this runtime got from
        ``resolve_remote`` for that address. Messages from one thread to one actor keep
        their order; what is queued for one node goes out together, in frames of up to
        ~512 KiB.

        Returns:
            True once handed to the node's connection (a delivery receipt it is not: an
            unknown remote PID drops the message there); False if the node is unreachable,
            decided within ``io_timeout_s`` on first contact and at once after that.

        Raises:
            ValueError: ``address`` is malformed, ``pid`` is outside [0, 2**64), or
                ``data`` exceeds max_payload_bytes.
            TypeError: ``data`` is not bytes-like, or ``pid`` not an int.
        """
        # The hot path, written out: a connected node, a pid and size seen before, bytes.
        p = self._peer_of.get(address)
        if p is not None and p.state is UP and data.__class__ is bytes \
                and pid.__class__ is int:
            by_pid = self._headers.get(len(data))
            if by_pid is not None:
                h = by_pid.get(pid)
                if h is not None:
                    p.outbox.extend((h, data))
                    if not p.flush_pending:
                        p.flush_pending = True
                        p.flush_soon(p.flush)
                    return True
        canon = self._address(address)
        pid = self._remote_pid(canon, pid)
        ok = self._net_send(canon, pid, data)
        if ok:
            self._remember(address, canon, pid, data)
        return ok

    def send_remote_many(self, address: str, pid: int, payloads: Iterable[bytes]) -> int:
        """Send every message of ``payloads`` to actor ``pid`` on the node at ``address``,
        in order, in one call: the batch form of ``send_remote``.

        The messages are checked first and then queued for the node together (one step,
        not one call per message), so a flood costs a few C-level operations per message
        instead of a Python call; on the wire and at the receiver they are ordinary
        messages, handled one by one by the remote actor. Messages from one thread to one
        actor keep their order, also mixed with ``send_remote`` and ``send(proxy)``.

        Args:
            address: the node, ``"host:port"`` or ``"tcp://host:port"``.
            pid: the remote actor's own PID, or a proxy PID this runtime got from
                ``resolve_remote`` for that address.
            payloads: an iterable (a list is cheapest) of bytes-like messages; not one
                bytes object itself.

        Returns:
            How many messages were handed to the node's connection: all of them, or 0 if
            the node is unreachable (or ``payloads`` is empty).

        Raises:
            ValueError: ``address`` is malformed, ``pid`` is outside [0, 2**64), or a
                message exceeds max_payload_bytes (naming its index).
            TypeError: ``payloads`` is not an iterable of bytes-like messages (naming the
                first bad index), or ``pid`` not an int.
            Nothing is sent when it raises.

        Example:
            >>> rt.send_remote_many("127.0.0.1:9000", proxy, [b"a", b"b", b"c"])
            3
        """
        canon = self._address(address)
        datas, lens = _batch(payloads, self._net_limit)
        pid = self._remote_pid(canon, pid)
        if not datas:
            return 0
        return len(datas) if self._node().send_many(canon, pid, datas, lens) else 0

    def _remote_pid(self, canon: str, pid: int) -> int:
        """The pid on the node at ``canon``: a proxy PID of ours for it is translated.

        Raises:
            TypeError, ValueError: ``pid`` is not a valid remote pid.
        """
        target = self._proxies.get(pid)
        if target is not None and target[0] == canon:
            return target[1]
        check_pid(pid)
        if not 0 <= pid < _PID_LIMIT:
            raise ValueError(f"a remote pid is an int in [0, 2**64), got {pid!r}")
        return pid

    def _deliver_remote_many(self, pid: int, payloads: Iterable[Any]) -> int:
        """The kernel's hook for ``send_many`` to a proxy PID: one batch to the network."""
        target = self._proxies.get(pid)
        if target is None or pid not in self._actors:
            return 0
        datas, lens = _batch(payloads, self._net_limit)
        if not datas:
            return 0
        canon, rpid = target
        return len(datas) if self._node().send_many(canon, rpid, datas, lens) else 0

    def _remember(self, key: str, canon: str, pid: int, data: Any) -> None:
        """After a send that went through every check: cache what the fast path needs."""
        if key not in self._peer_of:
            if len(self._peer_of) >= _ADDR_CACHE_LIMIT:
                self._peer_of.clear()
            self._peer_of[key] = self._node().peer(canon)
        if pid < PROXY_PID_BASE and data.__class__ is bytes:
            headers = self._headers
            if self._header_count >= _HEADER_CACHE_LIMIT:
                headers.clear()
                self._header_count = 0
            by_pid = headers.get(len(data))
            if by_pid is None:
                by_pid = headers[len(data)] = {}
            if pid not in by_pid:
                by_pid[pid] = send_header(pid, len(data))
                self._header_count += 1

    def monitor_remote(self, address: str, pid: int, watcher: int | None = None) -> int:
        """Watch an actor on another node; returns its local proxy PID.

        The proxy exits when the remote actor does, with the same reason (Normal, Killed,
        Crash; metadata carries the remote traceback and ``node``/``remote_pid``), or with
        NodeDown when the node stops answering heartbeats or its connection drops. Local
        actors that ``monitor``/``link`` the proxy get that EXIT; ``watcher`` is monitored
        here for you. An unreachable node gives NodeDown at once.

        Args:
            address: the node, ``"host:port"``.
            pid: the remote actor's PID, or a proxy PID of this runtime for ``address``.
            watcher: a local actor to receive the EXIT (optional).

        Example:
            >>> proxy = rt.monitor_remote(addr, remote_pid, watcher=observer)
        """
        canon = self._address(address)
        check_pid(pid)
        if watcher is not None and watcher not in self._actors:
            raise ValueError(f"watcher pid {watcher!r} is not a live actor")
        target = self._proxies.get(pid)
        if target is not None and target[0] == canon:
            proxy = pid
            if watcher is not None and not self._k.monitor(watcher, proxy):
                self._k.notify(watcher, SystemMessage.exit(
                    proxy, self._k.recent_exits.get(proxy, NODE_DOWN),
                    {"node": display_address(canon), "remote_pid": target[1]}))
            return proxy
        self._node().ensure_up(canon)
        return self._proxy_for(canon, pid, watcher)

    def is_node_up(self, address: str) -> bool:
        """Whether the node at ``address`` answers an authenticated ping, within
        ``io_timeout_s`` (at once for a node already connected and answering heartbeats).
        """
        return self._node().ensure_up(self._address(address), force=True)

    def configure_network(self, *, io_timeout_s: float | None = None,
                          heartbeat_interval_s: float | None = None,
                          heartbeat_timeout_s: float | None = None,
                          max_payload_bytes: int | None = None,
                          retry_after_s: float | None = None) -> dict[str, Any]:
        """Change the mesh's timeouts and limits (see ``NetSettings``); returns them all.

        Defaults: io_timeout_s 5, heartbeat_interval_s 1, heartbeat_timeout_s 5,
        max_payload_bytes 16 MiB, retry_after_s 1. ``max_payload_bytes`` of a listener
        applies from the next ``listen``.
        """
        self._net_settings = self._net_settings.updated(
            io_timeout_s=io_timeout_s, heartbeat_interval_s=heartbeat_interval_s,
            heartbeat_timeout_s=heartbeat_timeout_s, max_payload_bytes=max_payload_bytes,
            retry_after_s=retry_after_s)
        if self._net is not None:
            self._net.settings = self._net_settings
        self._net_limit = self._net_settings.max_payload_bytes
        self._headers.clear()  # its entries were checked against the old limit
        self._header_count = 0
        s = self._net_settings
        return {"io_timeout_s": s.io_timeout_s, "heartbeat_interval_s": s.heartbeat_interval_s,
                "heartbeat_timeout_s": s.heartbeat_timeout_s,
                "max_payload_bytes": s.max_payload_bytes, "retry_after_s": s.retry_after_s}

    def network_statistics(self) -> dict[str, Any]:
        """The mesh's counters: listening address, known nodes and their state (up,
        connecting, down), messages and frames in and out, frames and messages dropped,
        live proxies."""
        node = self._net
        base: dict[str, Any] = {"listening": None, "nodes": {}, "messages_in": 0,
                                "messages_out": 0, "frames_in": 0, "frames_out": 0,
                                "frames_dropped": 0, "messages_dropped": 0}
        if node is not None:
            base.update(node.statistics())
        base["proxies"] = len(self._proxies)
        return base

    # -- proxies ---------------------------------------------------------------------------

    def _proxy_for(self, canon: str, rpid: int, watcher: int | None = None) -> int:
        """The live proxy for ``(canon, rpid)``, created (and monitoring) if needed."""
        node = self._node()
        k = self._k
        created = False
        with k.lock:
            pid = self._proxy_of.get((canon, rpid))
            if pid is None or pid not in k.actors:
                pid = next(self._proxy_ids)
                a = Actor(pid, "proxy")
                a.remote = (display_address(canon), rpid)
                k._register(a, None)
                self._proxy_of[(canon, rpid)] = pid
                self._proxies[pid] = (canon, rpid)
                created = True
            if watcher is not None:
                k.monitor(watcher, pid)
        if created:
            node.send_control(canon, control_bytes("monitor", {"pid": rpid}))
            if node.state(canon) is not UP:
                # Registered first, checked second: a node going down from now on finds
                # this proxy in _on_node_down, and one already down is handled here.
                self._proxy_down(pid, canon, f"mesh node {display_address(canon)!r} is "
                                             f"unreachable")
        return pid

    def _deliver_remote(self, pid: int, data: Any) -> bool:
        """The kernel's hook for PIDs that are no live local actor: proxies forward."""
        target = self._proxies.get(pid)
        if target is None or pid not in self._actors:
            return False
        canon, rpid = target
        p = self._peer_of.get(canon)
        if p is not None and p.state is UP and data.__class__ is bytes:
            by_pid = self._headers.get(len(data))
            h = None if by_pid is None else by_pid.get(rpid)
            if h is not None:
                p.outbox.extend((h, data))
                if not p.flush_pending:
                    p.flush_pending = True
                    p.flush_soon(p.flush)
                return True
        ok = self._net_send(canon, rpid, data)
        if ok:
            self._remember(canon, canon, rpid, data)
        return ok

    def _net_send(self, canon: str, rpid: int, data: Any) -> bool:
        if data.__class__ is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise TypeError(f"messages to remote actors must be bytes, got "
                                f"{type(data).__name__}")
            data = bytes(data)
        limit = self._net_limit
        if len(data) > limit:
            raise ValueError(f"a {len(data)}-byte message exceeds max_payload_bytes ({limit});"
                             f" raise it with configure_network on both runtimes")
        return self._node().send(canon, rpid, data)

    def _proxy_down(self, pid: int, canon: str, reason: str) -> None:
        a = self._actors.get(pid)
        if a is not None:
            self._k.terminate(a, NODE_DOWN, {"node": display_address(canon),
                                             "remote_pid": self._proxies.get(pid, ("", 0))[1],
                                             "error": reason})

    def _on_node_down(self, canon: str, reason: str) -> None:
        """Events thread: every proxy for that node exits with NodeDown."""
        with self._k.lock:
            pids = [p for p, (addr, _) in self._proxies.items() if addr == canon]
        for pid in pids:
            self._proxy_down(pid, canon, reason)

    def _on_remote_exit(self, canon: str, rpid: int, reason: str, metadata: Any) -> None:
        """Events thread: the remote actor behind a proxy exited; the proxy follows."""
        pid = self._proxy_of.get((canon, rpid))
        a = None if pid is None else self._actors.get(pid)
        if a is None:
            return
        meta = dict(metadata) if isinstance(metadata, dict) else (
            {} if metadata is None else {"remote": metadata})
        meta.update(node=display_address(canon), remote_pid=rpid)
        self._k.terminate(a, reason, meta)

    def _on_actor_exit(self, pid: int, reason: str, metadata: Any) -> None:
        """Kernel hook after every death (any thread)."""
        node = self._net
        if node is None:
            return
        node.local_exit(pid, reason, metadata)
        if pid in self._global_by_pid:
            self._global_exit(pid)
        if pid >= PROXY_PID_BASE:
            with self._k.lock:
                target = self._proxies.pop(pid, None)
                if target is not None and self._proxy_of.get(target) == pid:
                    del self._proxy_of[target]
            remote_initiated = isinstance(metadata, dict) and "remote_pid" in metadata
            if target is not None and not remote_initiated:
                node.send_control(target[0], control_bytes("demonitor", {"pid": target[1]}))


def _batch(payloads: Any, limit: int) -> tuple[list[bytes], list[int]]:
    """``payloads`` as a list of bytes and their lengths, checked for ``send_remote_many``.

    Raises:
        TypeError: not an iterable of bytes-like messages (names the first bad index).
        ValueError: a message is longer than ``limit`` (names its index).
    """
    if isinstance(payloads, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"payloads must be an iterable of bytes messages, not one "
                        f"{type(payloads).__name__} (wrap it in a list)")
    try:
        datas = list(payloads)
    except TypeError:
        raise TypeError(f"payloads must be an iterable of bytes messages, got "
                        f"{type(payloads).__name__}") from None
    if set(map(type, datas)) - {bytes}:
        for i, d in enumerate(datas):
            if d.__class__ is not bytes:
                if not isinstance(d, (bytes, bytearray, memoryview)):
                    raise TypeError(f"messages to remote actors must be bytes; payloads[{i}]"
                                    f" is {type(d).__name__}")
                datas[i] = bytes(d)
    lens = list(map(len, datas))
    if lens and max(lens) > limit:
        i = next(i for i, n in enumerate(lens) if n > limit)
        raise ValueError(f"payloads[{i}] has {lens[i]} bytes, more than max_payload_bytes "
                         f"({limit}); raise it with configure_network on both runtimes")
    return datas, lens


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a remote name is a non-empty str, got {name!r}")
    if len(name.encode("utf-8")) > 1024:
        raise ValueError(f"a remote name is at most 1024 bytes of UTF-8, got "
                         f"{len(name.encode('utf-8'))}")
