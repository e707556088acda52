"""Detached named actors that the head makes again once their creator is gone.

A client restarts the actors it made while it lives (it keeps their constructors'
arguments, refs included). For a detached named actor with ``max_restarts`` it also hands
the head the actor's creation when registering its name (the pickled ``CreateActor`` and
constructor arguments, when those hold no refs and no out-of-band buffers). Should the
actor's worker die once that client is gone, the head sends a live worker the creation
task itself, as a client would (a DEFINE, then a TASKS record), and reads the result::

    worker W dies ──▶ head: the name's entry is "restarting" (lookups say so)
    head ── DEFINE + TASKS {CreateActor} ──▶ worker V ── RESULTS ──▶ head: on V now

Only a worker known to have ended counts: when its node merely lost its lease (a
partition, a stall), its actors may live on, so the head waits for the node to come back
(the entry is restored as it was) for three leases before it makes them again.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import zmq

from iris._protocol import (
    MsgType,
    TaskRecord,
    Value,
    ValueKind,
    decode_frames,
    decode_plain_results,
    decode_results,
    encode_define,
    encode_tasks,
)
from iris._transport import Credentials, connect_client
from iris.exceptions import ProtocolError
from iris.head._actor_names import ActorEntry, ActorNames

__all__ = ["ActorRestarts"]

log = logging.getLogger("iris.head")


@dataclass(slots=True)
class _Attempt:
    sock: Any
    name: str
    entry: ActorEntry
    worker_id: str


class ActorRestarts:
    """The restarts the head makes (internal type; owned by the head service)."""

    def __init__(self, loop: Any, creds: Credentials, names: ActorNames,
                 workers: dict[str, dict[str, Any]], tell_nodes: Callable[[dict[str, Any]], None],
                 max_frame: int, suspect_s: float) -> None:
        self.loop = loop
        self.creds = creds
        self.names = names
        self.workers = workers  # the head's live workers: worker id -> info
        self.tell_nodes = tell_nodes
        self.max_frame = max_frame
        self.suspect_s = suspect_s
        self.pending: dict[str, ActorEntry] = {}  # waiting for a worker to exist
        self.attempts: dict[int, _Attempt] = {}  # creation tasks in flight, by task id
        # Workers of a node that lost its lease: (when to give up on them, their entries).
        self.suspect: dict[str, tuple[float, list[tuple[str, ActorEntry]]]] = {}
        self.ids = itertools.count(1)
        self.picks = itertools.count()

    def worker_gone(self, wid: str, owner_alive: Callable[[bytes], bool],
                    process_gone: bool) -> set[str]:
        """Worker ``wid`` is gone (its process ended, or its node lost its lease): start
        again the actors it hosted that are ours to restart. Returns their names (the
        caller drops the worker's other names)."""
        for tid, attempt in list(self.attempts.items()):
            if attempt.worker_id == wid:
                self._close(tid)  # an attempt there is over: the entry is handled below
        mine = [(n, e) for n, e in self.names.entries.items()
                if e.worker_id == wid and e.restart is not None and e.restart[2] > 0
                and not owner_alive(e.owner)]
        if not mine:
            return set()
        if process_gone:
            for name, entry in mine:
                self.start(name, entry)
        else:
            for _, entry in mine:
                entry.restarting = True  # (not found meanwhile: it may be cut off only)
            self.suspect[wid] = (time.monotonic() + self.suspect_s, mine)
        return {n for n, _ in mine}

    def worker_registered(self, wid: str) -> None:
        """A worker registered: a suspect one is back (its actors live: restored as they
        were), and restarts waiting for a worker can go."""
        back = self.suspect.pop(wid, None)
        if back is not None:
            for name, entry in back[1]:
                if self.names.entries.get(name) is entry:
                    entry.restarting = False
        pending, self.pending = self.pending, {}
        for name, entry in pending.items():
            if self.names.entries.get(name) is entry:
                self.start(name, entry)

    def check(self, now: float) -> None:
        """Give up on suspect workers whose node stayed away too long: restart their
        actors elsewhere."""
        for wid, (deadline, entries) in list(self.suspect.items()):
            if now >= deadline:
                del self.suspect[wid]
                for name, entry in entries:
                    if self.names.entries.get(name) is entry and entry.worker_id == wid:
                        self.start(name, entry)

    def start(self, name: str, entry: ActorEntry) -> None:
        """Send a live worker the actor's creation task (or wait for one to exist)."""
        if entry.restart is None or entry.restart[2] <= 0:
            self._drop(name, entry)
            return
        entry.owner = b""  # the head's from now on: later restarts are the head's too
        entry.restarting = True
        if not self.workers:
            entry.worker_id = ""
            self.pending[name] = entry
            return
        blob, args, left = entry.restart
        entry.restart = (blob, args, left - 1) if left > 1 else None
        wid = sorted(self.workers)[next(self.picks) % len(self.workers)]
        entry.worker_id = wid
        self.names.entries[name] = entry  # (the caller may have dropped it)
        task_id = entry.attempt = next(self.ids)
        log.warning("restarting the detached actor %s on worker %s (its creator is gone; "
                    "%d restart(s) left after this one)", name, wid, left - 1)
        func_id = int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "big")
        try:
            sock = connect_client(zmq.DEALER, self.creds, str(self.workers[wid]["address"]))
            sock.send_multipart(encode_define(func_id, blob))
            sock.send_multipart(encode_tasks([TaskRecord(
                task_id, func_id, 1, Value(ValueKind.INLINE, args, ()), [])]))
        except zmq.ZMQError as exc:
            log.error("could not restart the detached actor %s: %s", name, exc)
            self._drop(name, entry)
            return
        self.attempts[task_id] = _Attempt(sock, name, entry, wid)
        self.loop.add_reader(sock, partial(self.answer, task_id))

    def answer(self, task_id: int) -> None:
        """The worker's answer to a creation task (reader of its socket)."""
        attempt = self.attempts.get(task_id)
        if attempt is None:
            return
        kind = None
        while kind is None:
            try:
                frames = attempt.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return  # not yet
            try:
                for m in decode_frames(frames, self.max_frame):
                    if m.type == MsgType.RESULTS:
                        kind = next((r.values[0].kind for r in decode_results(m)
                                     if r.task_id == task_id and r.values), kind)
                    elif m.type == MsgType.PLAIN_RESULTS:
                        ids, _, kinds, _ = decode_plain_results(m)
                        kind = next((k for i, k in zip(ids, kinds) if i == task_id), kind)
            except ProtocolError as exc:
                log.warning("dropped a malformed answer to an actor's restart: %s", exc)
        self._close(task_id)
        name, entry = attempt.name, attempt.entry
        if self.names.entries.get(name) is not entry or entry.attempt != task_id:
            # Killed (or its name unregistered) while it was made: the instance goes too.
            if kind == ValueKind.INLINE:
                self.tell_nodes({"kind": "actor_gone", "actor_id": entry.actor_id})
            return
        if kind == ValueKind.INLINE:
            entry.restarting = False
            log.warning("the detached actor %s lives again on worker %s", name,
                        entry.worker_id)
        else:
            log.error("could not restart the detached actor %s: its constructor failed",
                      name)
            self._drop(name, entry)

    def _drop(self, name: str, entry: ActorEntry) -> None:
        if self.names.entries.get(name) is entry:
            del self.names.entries[name]
        self.pending.pop(name, None)

    def _close(self, task_id: int) -> None:
        attempt = self.attempts.pop(task_id, None)
        if attempt is not None:
            self.loop.remove_reader(attempt.sock)
            attempt.sock.close(0)

    def close(self) -> None:
        """Close the sockets of attempts in flight."""
        for tid in list(self.attempts):
            self._close(tid)
