"""Runtime methods for cluster-wide names: register_global, whereis_global, ...

Inside an iris cluster, a listening runtime can register one of its actors under a name
that every runtime of the cluster can look up. The head keeps ``name -> (node, pid)``
(``iris/head/_names.py``); ``whereis_global`` returns a proxy PID for a remote actor (the
same proxies ``resolve_remote`` makes), or the local PID for one of this runtime's own.

Entries go away when their actor exits (this runtime tells the head), when the runtime
shuts down (it drops all its names), and when its process dies or loses the head: the
names are held under a lease of ``heartbeat_timeout_s``, renewed every
``heartbeat_interval_s`` (see ``configure_network``), and the head drops an owner whose
lease ran out. Internal base class of ``Runtime``.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from typing import TYPE_CHECKING, Any

from iris.exceptions import AuthenticationError, IrisError, NotInitializedError
from iris.mesh._head_link import HeadLink, HeadUnreachable
from iris.mesh._net import blocking_wait
from iris.mesh._net_config import canonical_address, display_address
from iris.mesh._pids import check_pid

if TYPE_CHECKING:
    from iris._transport import Credentials
    from iris.mesh._actor import Actor
    from iris.mesh._kernel import Kernel
    from iris.mesh._net import MeshNode
    from iris.mesh._net_config import NetSettings

__all__ = ["GlobalNamesAPI", "HeadUnreachable"]

log = logging.getLogger("iris.mesh.names")

_WILDCARDS = ("0.0.0.0", "::", "[::]", "*", "")


class GlobalNamesAPI:
    """Cluster-wide name methods of ``Runtime``. Internal base class."""

    if TYPE_CHECKING:
        _k: Kernel
        _actors: dict[int, Actor]
        _net: MeshNode | None
        _net_settings: NetSettings

        def _node(self, token: str | None = None) -> MeshNode: ...
        def _proxy_for(self, canon: str, rpid: int, watcher: int | None = None) -> int: ...

    def _global_init(self) -> None:
        self._head: HeadLink | None = None
        self._head_lock = threading.Lock()
        self._owner = secrets.token_hex(8)
        self._global_names: dict[str, int] = {}       # names this runtime holds -> pid
        self._global_by_pid: dict[int, set[str]] = {}

    # -- public --------------------------------------------------------------------------

    def connect_head(self, address: str | None = None, token: str | None = None) -> str:
        """Use the head at ``address`` for cluster-wide names; returns its address.

        Without ``address``: the cluster this process joined with ``iris.init()`` (or, in
        a worker, its own cluster). The first ``register_global``/``whereis_global`` calls
        this by itself. ``token`` is the cluster's token (default: ``$IRIS_TOKEN``, else
        the state file of a cluster started on this machine).

        Raises:
            NotInitializedError: no address and this process is not in a cluster.
            AuthenticationError: no token for ``address``.
            RuntimeError: already connected to another head.
        """
        endpoint, creds = _head_target(address, token)
        with self._head_lock:
            link = self._head
            if link is not None:
                if link.endpoint != endpoint:
                    raise RuntimeError(f"this runtime already uses the head at "
                                       f"{display_address(link.endpoint)!r}")
                return display_address(link.endpoint)
            node = self._node()
            self._head = HeadLink(node, endpoint, creds, self._owner, self._held_names)
        return display_address(endpoint)

    def register_global(self, name: str, pid: int) -> None:
        """Register local actor ``pid`` under ``name`` for the whole cluster.

        Needs a listening runtime (``listen``), since other nodes reach the actor through
        it. The name is removed when the actor exits, when this runtime shuts down, and
        (by the head, within ``heartbeat_timeout_s``) when this process dies.

        Raises:
            ValueError: ``pid`` is not a live local actor, or ``name`` is held by another
                actor (the message names it: pid and node).
            RuntimeError: this runtime does not listen.
            HeadUnreachable: the head did not answer within ``io_timeout_s``.

        Example:
            >>> rt.listen("0.0.0.0:0")
            >>> rt.register_global("db", rt.spawn(db_handler))
        """
        _check_global_name(name)
        check_pid(pid)
        node = self._net
        if node is None or node.address is None:
            raise RuntimeError("register_global needs a listening runtime: call "
                               "rt.listen(address) first")
        a = self._actors.get(pid)
        if a is None or not a.alive or a.remote is not None:
            raise ValueError(f"pid {pid!r} is not a live actor of this runtime")
        held = self._global_names.get(name)
        if held is not None and held != pid and held in self._actors:
            raise ValueError(f"the cluster-wide name {name!r} is already registered by pid "
                             f"{held} on node {self._advertised()} (this runtime)")
        link = self._head_link()
        reply = self._ask(link, {"op": "name.register", "name": name, "pid": pid,
                                 "node": self._advertised(), "owner": self._owner,
                                 "lease_s": self._net_settings.heartbeat_timeout_s})
        if "error" in reply:
            raise ValueError(str(reply["error"]))
        with self._head_lock:
            old = self._global_names.get(name)
            if old is not None and old != pid:
                self._global_by_pid.get(old, set()).discard(name)
            self._global_names[name] = pid
            self._global_by_pid.setdefault(pid, set()).add(name)
        link.holding()
        if pid not in self._actors:  # it died meanwhile: its exit may have been missed
            self._global_exit(pid)

    def whereis_global(self, name: str) -> int | None:
        """The PID of the actor registered cluster-wide as ``name``, or None.

        A proxy PID for an actor on another node (usable with ``send``, ``monitor``,
        ``link``, ...), the actor's own PID if it lives in this runtime. None also when its
        node does not answer (logged).

        Raises:
            HeadUnreachable: the head did not answer within ``io_timeout_s``.
        """
        _check_global_name(name)
        reply = self._ask(self._head_link(), {"op": "name.lookup", "name": name})
        if not reply.get("found"):
            return None
        node, rpid = reply.get("node"), reply.get("pid")
        if not isinstance(node, str) or not isinstance(rpid, int):
            raise IrisError(f"the head answered a lookup of {name!r} with {reply!r}")
        canon = canonical_address(node)
        me = self._net
        if me is not None and me.address is not None and node == self._advertised():
            return rpid if rpid in self._actors else None
        if not self._node().ensure_up(canon):
            log.warning("whereis_global(%r): its node %s does not answer", name, node)
            return None
        return self._proxy_for(canon, rpid)

    def unregister_global(self, name: str) -> bool:
        """Remove a cluster-wide name this runtime registered; False if it holds none.

        Raises:
            HeadUnreachable: the head did not answer within ``io_timeout_s``.
        """
        _check_global_name(name)
        with self._head_lock:
            pid = self._global_names.pop(name, None)
            if pid is not None:
                self._global_by_pid.get(pid, set()).discard(name)
        if pid is None or self._head is None:
            return False
        reply = self._ask(self._head, {"op": "name.unregister", "name": name,
                                       "owner": self._owner, "pid": pid})
        return bool(reply.get("ok"))

    def global_names(self) -> dict[str, tuple[str, int]]:
        """Every cluster-wide name: ``{name: (node "host:port", pid on that node)}``."""
        reply = self._ask(self._head_link(), {"op": "name.list"})
        names = reply.get("names", {})
        return {n: (str(e["node"]), int(e["pid"])) for n, e in names.items()}

    # -- internals ----------------------------------------------------------------------

    def _head_link(self) -> HeadLink:
        link = self._head
        if link is None:
            self.connect_head()
            link = self._head
            assert link is not None
        return link

    def _ask(self, link: HeadLink, body: dict[str, Any]) -> dict[str, Any]:
        fut = link.request(body)
        reply = blocking_wait(fut.result, self._net_settings.io_timeout_s + 5.0)
        if not isinstance(reply, dict):
            raise IrisError(f"the head answered {body['op']} with {reply!r}")
        return reply

    def _advertised(self) -> str:
        """This runtime's mesh address as other nodes reach it (``"host:port"``)."""
        node = self._net
        assert node is not None and node.address is not None
        host, _, port = display_address(node.address).rpartition(":")
        if host in _WILDCARDS:
            from iris._daemon import default_ip

            host = default_ip()
        return f"{host}:{port}"

    def _held_names(self) -> dict[str, tuple[str, int]]:
        """Loop thread (renewals): the names held now, with where they point."""
        node = self._net
        if node is None or node.address is None:
            return {}
        where = self._advertised()
        return {n: (where, p) for n, p in list(self._global_names.items())}

    def _global_exit(self, pid: int) -> None:
        """An actor died (kernel exit hook, any thread): its cluster-wide names go."""
        with self._head_lock:
            names = self._global_by_pid.pop(pid, None)
            if not names:
                return
            for name in names:
                if self._global_names.get(name) == pid:
                    del self._global_names[name]
        link = self._head
        if link is not None:
            for name in names:
                link.request({"op": "name.unregister", "name": name, "owner": self._owner,
                              "pid": pid})

    def _global_close(self) -> None:
        """Shutdown: drop this runtime's names at the head (briefly waited for), close."""
        link = self._head
        node = self._net
        if link is None or node is None or node.closed:
            return
        if self._global_names:
            fut = link.request({"op": "name.drop", "owner": self._owner})
            try:
                fut.result(min(self._net_settings.io_timeout_s, 2.0))
            except Exception as exc:  # noqa: BLE001 - the lease removes them anyway
                log.info("could not drop cluster-wide names at shutdown: %s", exc)
            self._global_names.clear()
            self._global_by_pid.clear()
        try:
            node._call(link.close_on_loop, 5.0)
        except Exception as exc:  # noqa: BLE001 - the loop may be gone already
            log.debug("closing the head link failed: %s", exc)


def _check_global_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a cluster-wide name is a non-empty str, got {name!r}")
    if len(name.encode("utf-8")) > 1024:
        raise ValueError("a cluster-wide name is at most 1024 bytes of UTF-8")


def _head_target(address: str | None, token: str | None) -> tuple[str, Credentials]:
    """The head's endpoint and the cluster's credentials."""
    from iris import _api, _context
    from iris._daemon import find_state
    from iris._transport import Credentials

    if address is None:
        ctx = _api._ctx
        cfg = _context.worker_config
        if ctx is not None and ctx.token:
            address, token = ctx.address, token or ctx.token
        elif cfg is not None:
            address, token = str(cfg["head"]), token or str(cfg["token"])
        elif ctx is not None:
            address = ctx.address
        else:
            raise NotInitializedError(
                "cluster-wide names need the cluster's head: call iris.init() or "
                "iris.init(address=...) first, or rt.connect_head(address, token=...)")
    endpoint = canonical_address(address)
    if not token:
        token = os.environ.get("IRIS_TOKEN") or None
    if not token:
        state = find_state(endpoint)
        token = None if state is None else str(state.get("token") or "") or None
    if not token:
        raise AuthenticationError(f"no token for the cluster at {display_address(endpoint)}:"
                                  f" pass connect_head(address, token=...) or set IRIS_TOKEN")
    return endpoint, Credentials.from_token(token)
