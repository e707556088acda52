"""Cluster-wide names of Ray-style actors, kept by the head. Pure state: no sockets.

A client that creates an actor with ``options(name=...)`` registers the name here, with
where the actor lives; any client of the cluster can then look it up
(``iris.get_actor``). An entry goes when the actor is killed (its creator or any holder
unregisters it), when the worker it lives on is gone (the head sees that itself), and,
unless the actor is *detached*, when the client that created it says goodbye.

Requests (``REQUEST`` control messages with these ``op`` values; the reply a ``REPLY``)::

    actor.register   {name, actor_id, worker_id, detached, methods, cls,
                      restart?: {blob, args, restarts}}
                     -> {ok: true} or {error, conflict: true}
    actor.lookup     {name}      -> {found: false} or {found: false, restarting: true} or
                                    {found: true, actor_id, worker_id, methods, cls,
                                     detached}
    actor.unregister {name, actor_id}  -> {ok: true}   (only that actor's entry)
    actor.list       {}          -> {names: {name: {actor_id, worker_id, detached}}}

Registering a name again with the same ``actor_id`` updates the entry (an actor restarted
on another worker). A detached actor's ``restart`` (its pickled creation and constructor
arguments, base64, and the restarts it has left) lets the head make it again once its
creator is gone (see :mod:`iris.head._restarts`). A malformed request gets
``{"error": ...}``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

__all__ = ["ActorEntry", "ActorNames", "handle_actor_request"]

_MAX_NAME_BYTES = 1024
_MAX_METHODS = 10_000
_MAX_RESTART_BYTES = 2 << 20  # a detached actor's creation kept for restarts


@dataclass(slots=True)
class ActorEntry:
    """Where a named actor lives, and who made it."""

    actor_id: str
    worker_id: str
    owner: bytes  # the creating client's identity at the head
    detached: bool
    methods: list[str]
    cls: str
    # A detached actor's creation as the head keeps it to restart it once its creator is
    # gone: (pickled CreateActor, pickled constructor arguments, restarts left).
    restart: tuple[bytes, bytes, int] | None = None
    restarting: bool = False  # being made again: not found by lookups meanwhile
    attempt: int = 0  # the head's latest creation task for it (see iris.head._restarts)


class ActorNames:
    """Actor names of one cluster."""

    def __init__(self) -> None:
        self.entries: dict[str, ActorEntry] = {}

    def register(self, name: str, entry: ActorEntry) -> bool:
        """Add or update ``name``; False if another actor holds it."""
        held = self.entries.get(name)
        if held is not None and held.actor_id != entry.actor_id:
            return False
        self.entries[name] = entry
        return True

    def unregister(self, name: str, actor_id: str) -> None:
        """Drop ``name`` if it names that actor."""
        held = self.entries.get(name)
        if held is not None and held.actor_id == actor_id:
            del self.entries[name]

    def drop_worker(self, worker_id: str, keep: set[str] | frozenset[str] = frozenset()
                    ) -> list[str]:
        """The worker is gone, and its actors with it: drop their names (but ``keep``)."""
        gone = [n for n, e in self.entries.items()
                if e.worker_id == worker_id and n not in keep]
        for n in gone:
            del self.entries[n]
        return gone

    def drop_owner(self, owner: bytes) -> list[str]:
        """A client left: drop the names of the actors it made that are not detached."""
        gone = [n for n, e in self.entries.items() if e.owner == owner and not e.detached]
        for n in gone:
            del self.entries[n]
        return gone


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name or len(name.encode()) > _MAX_NAME_BYTES:
        raise ValueError(f"an actor name is a non-empty str of at most {_MAX_NAME_BYTES} "
                         f"bytes, got {name!r}")
    return name


def _restart(body: dict[str, Any]) -> tuple[bytes, bytes, int] | None:
    """A registration's restart spec: ``{blob, args}`` base64 text and ``restarts`` left."""
    spec = body.get("restart")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ValueError("'restart' must be an object")
    restarts = spec.get("restarts")
    if type(restarts) is not int or restarts < 0:
        raise ValueError(f"'restart.restarts' must be an int >= 0, got {restarts!r}")
    try:
        blob = base64.b64decode(str(spec.get("blob", "")), validate=True)
        args = base64.b64decode(str(spec.get("args", "")), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"'restart' holds malformed base64: {exc}") from None
    if not blob or not args:
        raise ValueError("'restart' needs a blob and args")
    if len(blob) + len(args) > _MAX_RESTART_BYTES:
        raise ValueError(f"'restart' is over {_MAX_RESTART_BYTES} bytes")
    return blob, args, restarts


def _str(body: dict[str, Any], key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v:
        raise ValueError(f"{key!r} must be a non-empty str, got {v!r}")
    return v


def handle_actor_request(names: ActorNames, op: str, body: dict[str, Any],
                         owner: bytes) -> dict[str, Any]:
    """Serve one ``actor.*`` request from the client ``owner``; returns the reply body."""
    try:
        if op == "actor.register":
            methods = body.get("methods", [])
            if not isinstance(methods, list) or len(methods) > _MAX_METHODS or not all(
                    isinstance(m, str) for m in methods):
                raise ValueError("'methods' must be a list of str")
            detached = body.get("detached", False)
            if not isinstance(detached, bool):
                raise ValueError(f"'detached' must be a bool, got {detached!r}")
            name = _name(body)
            entry = ActorEntry(_str(body, "actor_id"), _str(body, "worker_id"), owner,
                               detached, methods, str(body.get("cls", "")),
                               _restart(body) if detached else None)
            if not names.register(name, entry):
                return {"error": f"an actor named {name!r} exists already", "conflict": True}
            return {"ok": True}
        if op == "actor.lookup":
            e = names.entries.get(_name(body))
            if e is None:
                return {"found": False}
            if e.restarting:
                return {"found": False, "restarting": True}
            return {"found": True, "actor_id": e.actor_id, "worker_id": e.worker_id,
                    "methods": e.methods, "cls": e.cls, "detached": e.detached}
        if op == "actor.unregister":
            names.unregister(_name(body), _str(body, "actor_id"))
            return {"ok": True}
        if op == "actor.list":
            return {"names": {n: {"actor_id": e.actor_id, "worker_id": e.worker_id,
                                  "detached": e.detached, "restarting": e.restarting}
                              for n, e in names.entries.items()}}
    except ValueError as exc:
        return {"error": str(exc)}
    return {"error": f"unknown request {op!r}"}
