"""Cluster-wide actor names, kept by the head. Pure state: no sockets, no threads.

A mesh runtime (``iris.Runtime``) that listens registers ``name -> (node, pid)`` here,
where ``node`` is its mesh address (``"host:port"``) and ``pid`` one of its actors; any
runtime of the cluster can then look the name up and reach the actor through its node.

Ownership and leases: every entry belongs to an *owner* (one runtime, a random id it
chose). An owner holds a lease of ``lease_s`` seconds, renewed by each of its requests
(``name.renew`` is the heartbeat, sent every heartbeat interval while it holds names).
An owner whose lease ran out is gone: its names are dropped. Expiry is checked at every
request, before it is served, so a name of a dead node is never returned once its lease
is over (no timer needed). A runtime drops its names itself when an actor exits
(``name.unregister``) and when it shuts down (``name.drop``).

Requests (``REQUEST`` control messages with these ``op`` values; the reply is a ``REPLY``)::

    name.register   {name, node, pid, owner, lease_s}  -> {ok, name, node, pid}
                    or {error, conflict: true, holder: {node, pid, owner}}
    name.lookup     {name}                             -> {found, node?, pid?, owner?}
    name.unregister {name, owner, pid?}                -> {ok}  (only the owner's entry)
    name.renew      {owner, lease_s}                   -> {known, names}
    name.drop       {owner}                            -> {dropped: [name, ...]}
    name.list       {}                                 -> {names: {name: {node, pid}}}

A malformed request gets ``{"error": ...}`` (it is answered, not dropped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_LEASE_S", "MIN_LEASE_S", "NameEntry", "NameTable", "NameTakenError",
           "handle_request"]

MIN_LEASE_S = 0.1
MAX_LEASE_S = 300.0
_MAX_NAME_BYTES = 1024


@dataclass(frozen=True, slots=True)
class NameEntry:
    """One cluster-wide name: the actor ``pid`` on the mesh node ``node``."""

    name: str
    node: str
    pid: int
    owner: str

    def describe(self) -> str:
        """``"pid 5 on node 10.0.0.2:40123"``."""
        return f"pid {self.pid} on node {self.node}"


class NameTakenError(ValueError):
    """A name is registered by another owner (``holder`` is its entry)."""

    def __init__(self, holder: NameEntry) -> None:
        super().__init__(f"the cluster-wide name {holder.name!r} is already registered by "
                         f"{holder.describe()}")
        self.holder = holder


class NameTable:
    """The head's table of cluster-wide names and of their owners' leases.

    ``now`` arguments are ``time.monotonic()`` readings (the caller's clock, so tests can
    use a fake one).
    """

    def __init__(self) -> None:
        self._names: dict[str, NameEntry] = {}
        self._owned: dict[str, set[str]] = {}
        self._expires: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._names)

    def register(self, name: str, node: str, pid: int, owner: str, lease_s: float,
                 now: float) -> NameEntry:
        """Register ``name`` for ``owner``, renewing its lease.

        The owner may re-register its own name (for another of its actors, too): the
        runtime checks its own actors' liveness before asking.

        Raises:
            NameTakenError: another owner holds ``name``.
        """
        self.expire(now)
        held = self._names.get(name)
        if held is not None and held.owner != owner:
            raise NameTakenError(held)
        entry = NameEntry(name, node, pid, owner)
        self._names[name] = entry
        self._owned.setdefault(owner, set()).add(name)
        self._expires[owner] = now + lease_s
        return entry

    def unregister(self, name: str, owner: str, pid: int | None = None) -> bool:
        """Remove ``name`` if ``owner`` holds it (and, given ``pid``, for that actor)."""
        held = self._names.get(name)
        if held is None or held.owner != owner or (pid is not None and held.pid != pid):
            return False
        del self._names[name]
        names = self._owned.get(owner)
        if names is not None:
            names.discard(name)
        return True

    def lookup(self, name: str, now: float) -> NameEntry | None:
        """The live entry of ``name``, or None."""
        self.expire(now)
        return self._names.get(name)

    def renew(self, owner: str, lease_s: float, now: float) -> bool:
        """Extend ``owner``'s lease; False if the head does not know it (expired or never
        seen): the owner should register its names again."""
        self.expire(now)
        if owner not in self._expires:
            return False
        self._expires[owner] = now + lease_s
        return True

    def drop_owner(self, owner: str) -> list[str]:
        """Forget ``owner`` and every name it holds; returns those names (sorted)."""
        self._expires.pop(owner, None)
        names = self._owned.pop(owner, set())
        for name in names:
            held = self._names.get(name)
            if held is not None and held.owner == owner:
                del self._names[name]
        return sorted(names)

    def expire(self, now: float) -> list[str]:
        """Drop the owners whose lease ended before ``now``; returns their names."""
        dead = [o for o, t in self._expires.items() if t < now]
        dropped: list[str] = []
        for owner in dead:
            dropped.extend(self.drop_owner(owner))
        return dropped

    def names_of(self, owner: str) -> list[str]:
        """The names ``owner`` holds (sorted)."""
        return sorted(self._owned.get(owner, ()))

    def snapshot(self, now: float) -> dict[str, NameEntry]:
        """Every live entry, by name."""
        self.expire(now)
        return dict(self._names)


def _str(body: dict[str, Any], key: str, limit: int = _MAX_NAME_BYTES) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value.encode("utf-8")) > limit:
        raise ValueError(f"{key!r} must be a non-empty string of at most {limit} bytes, "
                         f"got {value!r:.80}")
    return value


def _pid(body: dict[str, Any], key: str = "pid") -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 1 << 64:
        raise ValueError(f"{key!r} must be an int in [1, 2**64), got {value!r:.80}")
    return value


def _lease(body: dict[str, Any]) -> float:
    value = body.get("lease_s", 5.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ValueError(f"'lease_s' must be a number, got {value!r:.80}")
    return min(max(float(value), MIN_LEASE_S), MAX_LEASE_S)


def handle_request(table: NameTable, op: str, body: dict[str, Any], now: float
                   ) -> dict[str, Any]:
    """Serve one ``name.*`` request (see the module docstring); returns the reply body."""
    try:
        if op == "name.register":
            entry = table.register(_str(body, "name"), _str(body, "node", 300), _pid(body),
                                   _str(body, "owner", 100), _lease(body), now)
            return {"ok": True, "name": entry.name, "node": entry.node, "pid": entry.pid}
        if op == "name.lookup":
            found = table.lookup(_str(body, "name"), now)
            if found is None:
                return {"found": False}
            return {"found": True, "node": found.node, "pid": found.pid, "owner": found.owner}
        if op == "name.unregister":
            pid = _pid(body) if body.get("pid") is not None else None
            table.expire(now)
            return {"ok": table.unregister(_str(body, "name"), _str(body, "owner", 100), pid)}
        if op == "name.renew":
            owner = _str(body, "owner", 100)
            known = table.renew(owner, _lease(body), now)
            return {"known": known, "names": len(table.names_of(owner))}
        if op == "name.drop":
            table.expire(now)
            return {"dropped": table.drop_owner(_str(body, "owner", 100))}
        if op == "name.list":
            return {"names": {n: {"node": e.node, "pid": e.pid}
                              for n, e in sorted(table.snapshot(now).items())}}
    except NameTakenError as exc:
        h = exc.holder
        return {"error": str(exc), "conflict": True,
                "holder": {"node": h.node, "pid": h.pid, "owner": h.owner}}
    except ValueError as exc:
        return {"error": f"bad {op} request: {exc}"}
    return {"error": f"unknown request {op!r}"}
