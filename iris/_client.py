"""The core client: a driver's (or a worker's) connection to the cluster, and the owner of
every object it creates.

::

    any thread                       the reactor's leader (a getter, else the I/O thread)
    ──────────                       ────────────────────────────────────────────────────
    f.remote() ─▶ idle cluster: dispatch and send from this thread, now
               └▶ busy: submit queue ─▶ next turn: resolve ref args ─▶ least-loaded
                  worker ─▶ DEFINE (once per worker) + TASKS batch ─▶ worker
    get() leads the reactor itself ◀── RESULTS batch ◀─────────────────────────── worker
          (or waits parked)         ◀── EVENT worker added/removed ◀─────────────── head
    borrower's OBJ_GET ─▶ owner ROUTER ─▶ OBJ_VALUE reply

One lock (the reactor's) guards the sockets and the tables. A thread that waits in get
reads the results itself (:mod:`iris._reactor`), so a synchronous call costs no thread
hand-off; the background I/O thread serves the sockets while nobody waits.

Scheduling: each worker gets at most ``cap`` tasks in flight, where ``cap`` covers about
two milliseconds of work at the recent average run time (so no-op tasks pipeline deeply
and long tasks are not queued behind each other). Everything drained from the submit
queue in one loop turn goes out as one batch per worker: batching without a timer.

Ownership: the client counts the live ObjectRefs of each object in this process and frees
the value (and its shared-memory segment) when the count reaches zero. A task pins its
argument refs, and refs pickled inside its arguments, until it finishes.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from functools import partial
from pickle import loads as _pickle_loads
from typing import Any

import zmq

from iris import _context
from iris._arena import Arena
from iris._protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    Message,
    MsgType,
    ResultRecord,
    TaskRecord,
    Value,
    ValueKind,
    chunk_by_size,
    decode_control,
    decode_frames,
    decode_plain_results,
    decode_results,
    encode,
    encode_control,
    encode_define,
    encode_plain_tasks,
    encode_results,
    encode_tasks,
    plain_task_size,
)
from iris._reactor import Reactor
from iris._records import CALL, CREATE, KILL, ActorRecord, FunctionInfo
from iris._records import FAILED as _FAILED
from iris._records import PENDING as _PENDING
from iris._records import READY as _READY
from iris._records import ObjectEntry as _Object
from iris._records import TaskEntry as _Task
from iris._records import WorkerLink as _Worker
from iris._refs import ObjectRef, ResolvedArg, collect_refs, noted_borrow, set_resolver
from iris._serialization import NO_ARGS as _NO_ARGS
from iris._serialization import (
    describe_unpicklable,
    dumps,
    dumps_call,
    dumps_plain,
    nbytes,
)
from iris._store import clear_pool, host_id, release_segment
from iris._stream import StreamLink, link_key
from iris._transport import (
    Credentials,
    bind_server,
    connect_client,
    drain_router,
    recv_frames,
)
from iris._values import (
    DEFAULT_INLINE_THRESHOLD,
    error_value,
    from_value,
    inline_copy,
    is_shm,
    pack,
    shm_location,
)
from iris.exceptions import (
    ActorDiedError,
    GetTimeoutError,
    IrisError,
    ObjectLostError,
    ProtocolError,
    TaskCancelledError,
    WorkerCrashedError,
    _TaskInterrupt,
)

__all__ = ["Client", "FunctionInfo"]

log = logging.getLogger("iris.client")

# Owner addresses of this process's clients that were closed: their refs are dead.
_retired_owners: set[str] = set()
_TARGET_INFLIGHT_S = 0.002
_MAX_CAP = 1024
# Submissions closer together than this are a burst: they gather into batches.
_BURST_GAP_S = 50e-6
# A burst of submissions is sent by the submitting thread itself every this many tasks,
# and what is left over within this long (or when a thread waits for results).
_SUBMIT_BATCH = 256
_BURST_FLUSH_S = 0.001
# Arguments from this size up to the inline threshold go through the shared-memory arena.
_ARENA_MIN = 16 * 1024
# A task's arguments as submit prepares them: header, buffers, deps, pinned, and where they
# travel from (args_value, args_segment, args_slot; None, None, None when inline).
_Prepared = tuple[bytes, list[Any], "list[ObjectRef] | None", list[ObjectRef], "Value | None",
                  "str | None", Any]
_NO_ARGS_PREPARED: _Prepared = (_NO_ARGS, [], None, [], None, None, None)
# A worker whose local link closed is dropped for good after this long, if the head has
# not said why by then.
_LINK_GRACE_S = 2.0
_INLINE, _KEPT = ValueKind.INLINE, ValueKind.KEPT
# How long a synchronous get looks for its answer before it sleeps (see _wait_objects).
_SPIN_S = 100e-6
# While we wait for another owner's object, how often we ask the head if that owner lives.
_OWNER_CHECK_S = 2.0
# How often a task waiting in get inside a worker looks whether it was cancelled.
_CANCEL_LOOK_S = 0.05
_MAX_DEAD_OWNERS = 10_000


class Client:
    """One process's connection to a cluster (internal type; the API wraps it)."""

    def __init__(self, head_endpoint: str, creds: Credentials, *,
                 inline_threshold: int = DEFAULT_INLINE_THRESHOLD,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 bind_host: str = "127.0.0.1",
                 connect_timeout_s: float = 30.0, lease: bool = True) -> None:
        self.creds = creds
        # Whether the head takes our silence for our end (see _say_hello).
        self.lease = lease
        self.link_key = link_key(creds.secret)
        self.head_endpoint = head_endpoint
        self.threshold = inline_threshold
        self.max_frame = max_frame_bytes
        self.host = host_id()
        self.loop = Reactor()
        self.lock = self.loop.lock  # guards the sockets and the tables below
        # Our name at the head (its ROUTER identity): the head declares us gone when our
        # heartbeats stop, and the actors we made that are not detached go with us.
        self.client_id = secrets.token_hex(8)
        self.head = connect_client(zmq.DEALER, creds, head_endpoint,
                                   identity=self.client_id.encode())
        self.owner_sock, self.endpoint = bind_server(
            zmq.ROUTER, creds, f"tcp://{bind_host}:0", max_frame_bytes)
        # Our objects' owner id: where borrowers reach us, and our client id, so that a
        # later client on the same port is never taken for us (a stale ref then fails as
        # lost instead of reading another owner's object).
        self.address = f"{self.endpoint}#{self.client_id}"
        self.cluster_id = ""
        self.objects: dict[int, _Object] = {}
        self.borrowed: dict[tuple[str, int], _Object] = {}
        # Live refs in this process to objects of other owners (our own objects count
        # theirs on their entries).
        self.refcounts: dict[tuple[str, int], int] = {}
        self.ref_lock = threading.RLock()
        self.oids = itertools.count(1)
        self.head_rids = itertools.count(1)
        self.head_waiting: set[int] = set()  # request ids of head requests waiting
        self.head_replies: dict[int, dict[str, Any]] = {}
        # Request id -> called with the reply (a partial, see _check_owners).
        self.head_callbacks: dict[int, partial[None]] = {}
        # Owners (other clients' ids) the head said are gone: their objects are lost. An
        # ordered set, the oldest forgotten past _MAX_DEAD_OWNERS (a late ref of one of
        # those is found out by the head's answer to _check_owners instead).
        self.dead_owners: dict[str, None] = {}
        self.owner_checks = False  # the periodic look at owners we wait for is armed
        self.workers: dict[str, _Worker] = {}
        self.departing: dict[str, _Worker] = {}  # local link closed, removal pending
        self.workers_by_sock: dict[Any, _Worker] = {}
        self.owner_socks: dict[str, zmq.Socket[Any]] = {}
        self.submit_q: deque[_Task] = deque()
        self.ready: deque[_Task] = deque()
        self.dep_waiters: dict[tuple[str, int], list[_Task]] = {}
        self.submit_scheduled = False
        self.cv = self.loop.cond  # getters that do not lead the reactor wait here
        self.n_inflight = 0  # tasks sent to workers and not finished
        self.arena: Arena | None = None  # medium arguments for workers on this machine
        self.actors: dict[str, ActorRecord] = {}
        self.dead_actors: dict[str, BaseException] = {}  # recent ones: id -> why
        self.targeted: dict[str, deque[_Task]] = {}  # actor calls, by the worker to run them
        self.local_workers = 0
        self.last_submit = 0.0
        self.waiters = 0
        self.settled = False  # an object settled since waiters were last woken
        self.avg_exec_s = 0.0
        self.closed = False
        self.segment_seq = itertools.count(1)
        self._welcome = threading.Event()
        self.thread = threading.Thread(target=self._io_main, name="iris-io", daemon=True)
        self.thread.start()
        self.loop.call_soon_threadsafe(self._say_hello)
        if not self._welcome.wait(connect_timeout_s):
            self.close()
            raise IrisError(f"no answer from the head at {head_endpoint} within "
                            f"{connect_timeout_s:.0f} s: is the address right, and does the "
                            f"token match the cluster's?")
        set_resolver(self)

    # ================================================================== I/O thread
    def _io_main(self) -> None:
        """The background leader: serves the sockets while no user thread waits in get."""
        with self.lock:
            self.loop.add_reader(self.head, self._on_head)
            self.loop.add_reader(self.owner_sock, self._on_owner_sock)
        try:
            while not self.loop.stopped:
                self.loop.run(background=True)
        finally:
            with self.lock:
                for sock in [self.head, self.owner_sock, *self.owner_socks.values(),
                             *(w.sock for w in self.workers.values())]:
                    sock.close(0)

    def _send(self, sock: zmq.Socket[Any], frames: list[Any]) -> None:
        """Send on one of our sockets (lock held), from whichever thread holds the lock."""
        sock.send_multipart(frames, copy=False)
        self.loop.sent(sock)

    def _say_hello(self) -> None:
        # A worker's client ends with its worker, and the driver of an embedded cluster
        # with the cluster: the head does not give those up for silence (a long call
        # that holds the GIL would pass for a death). Other drivers hold a lease.
        cfg = _context.worker_config
        self._send(self.head, encode_control(MsgType.HELLO, {
            "role": "client", "host": self.host, "address": self.address,
            "worker_id": str(cfg.get("worker_id", "")) if cfg else "",
            "lease": self.lease}))

    def _messages(self, sock: Any) -> list[list[Message]]:
        """Every message waiting on ``sock`` (a local link or a ZeroMQ socket), decoded."""
        got = sock.recv_messages() if type(sock) is StreamLink else iter(
            partial(recv_frames, sock), None)
        out: list[list[Message]] = []
        for frames in got:
            try:
                out.append(decode_frames(frames, self.max_frame))
            except ProtocolError as exc:
                log.warning("dropped a malformed message: %s", exc)
        return out

    def _on_head(self) -> None:
        for msgs in self._messages(self.head):
            for m in msgs:
                if m.type == MsgType.PONG:
                    continue  # the answer to a heartbeat
                try:
                    body = decode_control(m)
                except ProtocolError as exc:
                    log.warning("dropped a malformed message from the head: %s", exc)
                    continue
                if m.type == MsgType.REPLY:
                    if m.request_id in self.head_waiting:
                        self.head_replies[m.request_id] = body
                        self.settled = True  # wakes the thread waiting for it
                    elif (on_reply := self.head_callbacks.pop(m.request_id, None)) is not None:
                        on_reply(body)
                    continue
                if m.type == MsgType.WELCOME:
                    self.cluster_id = str(body.get("cluster_id", ""))
                    for info in body.get("workers", []):
                        self._add_worker(info)
                    beat = body.get("heartbeat_s")
                    if isinstance(beat, (int, float)) and beat > 0 and not self._welcome.is_set():
                        self._heartbeat(max(0.05, float(beat)))
                    self._welcome.set()
                elif m.type == MsgType.EVENT:
                    if body.get("kind") == "worker_added":
                        self._add_worker(body["worker"])
                    elif body.get("kind") == "worker_removed":
                        self._remove_worker(str(body.get("worker_id")),
                                            str(body.get("reason", "exited")))
                    elif body.get("kind") == "client_gone" and body.get("address"):
                        self._owner_gone(str(body["address"]))
                    elif body.get("kind") == "client_back" and body.get("address"):
                        self._owner_back(str(body["address"]))
                    elif body.get("kind") == "reregister":
                        self._given_up()
        self._dispatch()

    def _given_up(self) -> None:
        """The head answered our heartbeat as if it did not know us: it gave us up (we
        were silent for longer than its client timeout: stopped, or cut off), or it was
        restarted. Say hello again; what it dropped meanwhile stays dropped."""
        log.error("the head at %s had given this client up (silent for too long, or the "
                  "head restarted): registering again. Actors it made that were not "
                  "detached may have been killed, and objects it owns reported lost",
                  self.head_endpoint)
        self._say_hello()

    def _heartbeat(self, every_s: float) -> None:
        """Tell the head we live, every ``every_s`` (lock held: a reactor timer)."""
        if self.closed:
            return
        try:
            self._send(self.head, encode(MsgType.PING))
        except zmq.ZMQError as exc:
            log.info("could not ping the head: %s", exc)
        self.loop.call_later(every_s, partial(self._heartbeat, every_s))

    def _add_worker(self, info: dict[str, Any]) -> None:
        wid = str(info["worker_id"])
        if wid in self.workers:
            return
        address = str(info["address"])
        local = str(info.get("local_address") or "")
        w = _Worker(wid, address, str(info.get("host", "")), None, info=info)
        sock: Any = None
        if w.host == self.host and local.startswith("unix://"):
            # Same machine: a Unix stream link, read and written by the threads that use
            # it (iris._stream); ZeroMQ over TCP if it cannot be had.
            try:
                sock = StreamLink.connect(local[len("unix://"):], self.link_key, self.loop,
                                          max_frame_bytes=self.max_frame,
                                          on_input=lambda: self._on_worker(w))
                w.local = local
            except OSError as exc:
                log.info("no local link to worker %s (%s): using %s", wid, exc, address)
        if sock is None:
            sock = connect_client(zmq.DEALER, self.creds, address)
            self.loop.add_reader(sock, lambda: self._on_worker(w))
        w.sock = sock
        self._send(sock, encode_control(MsgType.REQUEST, {"op": "owner", "host": self.host,
                                                          "owner": self.address}))
        self.local_workers += w.host == self.host
        self.workers[wid] = w
        self.workers_by_sock[sock] = w

    def _link_lost(self, w: _Worker) -> None:
        """Some time after ``w``'s local link closed: if the head has not said the worker
        died, it lives and only the link broke (it refused a frame, say): link again. What
        was in flight on the old link is lost: tasks are retried, actor calls fail."""
        wid = w.worker_id
        if self.departing.get(wid) is not w:
            return  # the head said it died: handled then
        del self.departing[wid]
        self._detach(w)
        why = w.sock.why if isinstance(w.sock, StreamLink) else "closed"
        log.warning("the link to worker %s broke (%s), but the worker lives: linking again",
                    wid, why)
        self._lose_inflight(w, f"the link to worker {wid} broke ({why})", died=False)
        self._add_worker(w.info)
        new = self.workers.get(wid)
        if new is not None:
            new.kept.update(w.kept)  # the worker still views those arguments
        else:
            for slot in w.kept.values():
                self._arena().release(slot)
        w.kept.clear()

    def _detach(self, w: _Worker) -> None:
        """Stop using ``w``'s connection (lock held)."""
        self.workers_by_sock.pop(w.sock, None)
        self.local_workers -= w.host == self.host
        self.loop.remove_reader(w.sock)
        w.sock.close(0)

    def _lose_inflight(self, w: _Worker, reason: str, died: bool) -> None:
        """The results of ``w``'s in-flight tasks will not come: retry the tasks (up to
        their retries), fail the actor calls."""
        self.n_inflight -= len(w.inflight)
        retry = []
        for task in w.inflight.values():
            if task.actor is not None:
                if died:
                    why: IrisError = ActorDiedError(
                        f"actor {task.actor.name} died while running {task.func.name}: its "
                        f"worker {w.worker_id} is gone ({reason})")
                else:
                    why = IrisError(f"{reason} while it ran {task.func.name}: the call may "
                                    f"or may not have run; the actor lives on")
                    if task.pinned:
                        # Its result (with the refs it kept) is lost with the link: the
                        # actor's registrations get a while to arrive before the pins go.
                        held, task.pinned = task.pinned, []
                        self.loop.call_later(_LINK_GRACE_S, held.clear)
                self._fail_task(task, why)
            elif task.cancelled:  # (killed by its own cancel, say): nothing to retry
                self._finish_task(task)
            elif task.retries_left > 0:
                task.retries_left -= 1
                task.args_kept = None
                retry.append(task)
            else:
                lost = f"worker {w.worker_id} died ({reason})" if died else reason
                self._fail_task(task, WorkerCrashedError(
                    f"{lost} while running task {task.func.name}; no retries left"))
        self.ready.extendleft(reversed(retry))
        w.inflight.clear()
        w.blocked.clear()

    def _remove_worker(self, wid: str, reason: str) -> None:
        w = self.workers.pop(wid, None) or self.departing.pop(wid, None)
        if w is None:
            return
        w.gone = True
        self._detach(w)
        self._lose_inflight(w, reason, died=True)
        for slot in w.kept.values():  # its views of our arena died with it
            self._arena().release(slot)
        w.kept.clear()
        for actor in list(self.actors.values()):
            if actor.worker_id == wid:
                self._actor_lost(actor, reason)
        self.targeted.pop(wid, None)

    # ------------------------------------------------------------------ submission
    def _on_submits(self) -> None:
        self.submit_scheduled = False
        q, ready = self.submit_q, self.ready
        while q:
            task = q.popleft()
            if task.actor is not None and task.role != CREATE:
                task.actor.calls.append(task)  # its place in the actor's order
            if task.deps:
                self._resolve_deps(task)
            elif task.actor is None:
                ready.append(task)
            else:
                self._make_ready(task)
        self._dispatch()

    def _make_ready(self, task: _Task) -> None:
        """A task whose arguments are ready: to be scheduled, or, for an actor's call, to be
        sent to the worker its actor lives in (in order), once it has one."""
        actor = task.actor
        if actor is None:
            self.ready.append(task)
        elif task.role == CREATE:
            if actor.worker_id is None:
                self.ready.append(task)  # placed by the scheduler (see _placed)
            else:
                self._route(actor, task)  # placed when it was made
        else:
            self._release_calls(actor)

    def _release_calls(self, actor: ActorRecord) -> None:
        """Send on an actor's calls that are ready, in order, up to the first that waits
        for an argument (calls that failed meanwhile are dropped from the line)."""
        calls = actor.calls
        while calls and calls[0].waiting <= 0:
            task = calls.popleft()
            if task.waiting < 0:
                continue  # failed already (an argument failed)
            if actor.dead is not None and task.role != KILL:
                task.waiting = -1
                self._fail_task(task, actor.dead)
            elif actor.worker_id is None:
                actor.pending.append(task)
            else:
                self._route(actor, task)
            if task.role == KILL:
                self._actor_dead(actor, ActorDiedError(f"actor {actor.name} was killed"))

    def _route(self, actor: ActorRecord, task: _Task) -> None:
        """Queue an actor's task for the worker it lives in (it must be one we know)."""
        wid = actor.worker_id or ""
        if wid not in self.workers:
            task.waiting = -1
            self._fail_task(task, ActorDiedError(
                f"actor {actor.name} cannot be reached: its worker {wid} is gone (the actor "
                f"died, or was restarted elsewhere after this handle was made)"))
            return
        q = self.targeted.get(wid)
        if q is None:
            q = self.targeted[wid] = deque()
        q.append(task)

    def wait_for_workers(self, timeout_s: float) -> bool:
        """Wait (any thread, not holding the lock) until a worker is known; False if none
        registered within ``timeout_s`` (right after ``init`` they are still starting)."""
        if self.workers:
            return True
        return self.loop.run(until=lambda: bool(self.workers),
                             deadline=time.monotonic() + timeout_s)

    def pick_worker(self) -> str | None:
        """The least-loaded worker now (lock held), or None when none is known yet."""
        if not self.workers:
            return None
        return min(self.workers.values(), key=_Worker.load).worker_id

    def _placed(self, actor: ActorRecord, w: _Worker) -> None:
        """An actor's creation task went to ``w``: its calls follow it there."""
        actor.worker_id = w.worker_id
        if actor.reregister is not None:
            actor.reregister()  # a named actor restarted where the scheduler placed it
        pending, actor.pending = actor.pending, deque()
        for task in pending:
            if actor.dead is not None and task.role != KILL:
                self._fail_task(task, actor.dead)
            else:
                self._route(actor, task)

    def _actor_lost(self, actor: ActorRecord, reason: str) -> None:
        """The worker an actor lived in is gone: restart it elsewhere, or declare it dead."""
        wid, actor.worker_id = actor.worker_id, None
        queued = self.targeted.get(wid or "")
        if queued:  # its calls not sent yet wait for the new instance, in order
            mine = [t for t in queued if t.actor is actor]
            self.targeted[wid or ""] = deque(t for t in queued if t.actor is not actor)
            actor.pending.extendleft(reversed(mine))
        if actor.dead is None and actor.restarts_left > 0 and actor.restart is not None:
            actor.restarts_left -= 1
            log.warning("actor %s lost with its worker (%s): restarting it", actor.name,
                        reason)
            actor.restart()
            return
        self._actor_dead(actor, ActorDiedError(
            f"actor {actor.name} died: its worker {wid} is gone ({reason}) and it has no "
            f"restarts left"))

    def _actor_dead(self, actor: ActorRecord, error: BaseException) -> None:
        if actor.dead is None:
            actor.dead = error
        if actor.reregister is not None:  # its cluster-wide name goes with it
            actor.reregister = None
            self.tell_head({"op": "actor.unregister", "name": actor.name,
                            "actor_id": actor.actor_id})
        # Forget it here (its handles keep the record, so their calls fail with the error),
        # and let go of its constructor's arguments.
        if self.actors.get(actor.actor_id) is actor:
            del self.actors[actor.actor_id]
        self.dead_actors[actor.actor_id] = actor.dead
        while len(self.dead_actors) > 10_000:
            self.dead_actors.pop(next(iter(self.dead_actors)))
        actor.restart = None
        pending, actor.pending = actor.pending, deque()
        for task in pending:
            if task.role == KILL:  # still to be sent when (if) the actor gets a place
                actor.pending.append(task)
            else:
                self._fail_task(task, actor.dead)
        self._release_calls(actor)  # those behind, in order: they fail now

    def _resolve_deps(self, task: _Task) -> None:
        waiting = 0
        for ref in task.deps or ():
            obj = self._object(ref, fetch=True)
            if obj is None:
                self._fail_task(task, ObjectLostError(
                    f"argument {ref!r} of task {task.func.name} was freed before it ran"))
                return
            if obj.state == _FAILED:
                self._fail_task(task, obj.error, obj.value, obj.where)
                return
            if obj.state == _PENDING:
                waiting += 1
                key = (ref.owner, ref.oid)
                waiters = self.dep_waiters.get(key)
                if waiters is None:
                    self.dep_waiters[key] = waiters = []
                    obj.callbacks = (obj.callbacks or []) + [partial(self._on_dep_done, key)]
                waiters.append(task)
        task.waiting = waiting
        if not waiting:
            self._make_ready(task)

    def _cap(self) -> int:
        avg = self.avg_exec_s
        if avg <= 0:
            return 8
        return max(1, min(_MAX_CAP, int(_TARGET_INFLIGHT_S / avg)))

    def _dispatch(self) -> None:
        """Send ready tasks to workers (every I/O handler ends here; so does waking getters)."""
        if self.settled:
            self._wake_waiters()
        ready = self.ready
        if not ready and not self.targeted:
            return
        workers = self.workers
        if not workers:
            return
        cap = self._cap()
        if len(ready) == 1 and not self.targeted:
            # A lone task (a synchronous call): no shares to hand out.
            w = min(workers.values(), key=_Worker.load) if len(workers) > 1 else next(
                iter(workers.values()))
            if w.load() >= cap:
                return
            task = ready.popleft()
            out = _Outgoing(self.max_frame // 2)
            if self._assign(task, w, out):
                if task.role == CREATE and task.actor is not None:
                    self._placed(task.actor, w)
                self._send_tasks(w, out)
            return
        batches: dict[str, _Outgoing] = {}
        pool = list(workers.values())
        budget = self.max_frame // 2
        while ready:
            w = min(pool, key=_Worker.load)
            room = cap - w.load()
            if room <= 0:
                break
            # Hand out work in shares, so that every worker gets some of a large burst.
            share = min(room, len(ready), -(-len(ready) // len(pool)))
            out = batches.get(w.worker_id)  # type: ignore[assignment]
            if out is None:
                out = batches[w.worker_id] = _Outgoing(budget)
            defined, inflight = w.defined, w.inflight
            for _ in range(share):
                task = ready.popleft()
                fid = task.func.func_id
                if task.light and fid in defined:
                    # The commonest task (see _new_task): what _assign would do, inline.
                    oid = task.oids[0]
                    inflight[oid] = task
                    self.n_inflight += 1
                    out.plain((oid, fid, 1, _INLINE, task.header))
                elif self._assign(task, w, out) and task.role == CREATE \
                        and task.actor is not None:
                    self._placed(task.actor, w)
        # Actor calls go to their actor's worker, in order, whatever its load.
        for wid in list(self.targeted):
            tw = workers.get(wid)
            if tw is None:  # gone since the calls were queued: they cannot run
                for task in self.targeted.pop(wid):
                    self._fail_task(task, ActorDiedError(
                        f"actor {task.actor.name if task.actor else '?'} died: its worker "
                        f"{wid} is gone"))
                continue
            q = self.targeted.pop(wid)
            out = batches.get(wid)  # type: ignore[assignment]
            if out is None:
                out = batches[wid] = _Outgoing(budget)
            while q:
                self._assign(q.popleft(), tw, out)
        for wid, out in batches.items():
            self._send_tasks(workers[wid], out)

    def _send_tasks(self, w: _Worker, out: _Outgoing) -> None:
        """Send what ``_assign`` gathered for ``w`` (one multipart message)."""
        frames = out.finish()
        if frames:
            w.sock.send_multipart(frames, copy=False)
            self.loop.sent(w.sock)

    def _assign(self, task: _Task, w: _Worker, out: _Outgoing) -> bool:
        """Add ``task`` to ``w``'s batch (its function's DEFINE first, once per worker);
        False if its record could not be made (the task has failed)."""
        args = task.args_value
        rec: TaskRecord | None = None
        data: Any
        if args is None and not task.deps and not task.buffers and len(
                task.header) < _ARENA_MIN:
            # Small inline arguments (the common case): nothing to look at or convert.
            kind, data = ValueKind.INLINE, task.header
        elif args is not None and args.kind == ValueKind.ARENA and not task.deps and \
                w.host == self.host:
            # Arguments in our arena, for a worker that reads it: only the location goes.
            kind, data = ValueKind.ARENA, args.data
        else:
            try:
                rec = self._task_record(task, w)
            except Exception as exc:  # e.g. a shared-memory write failed
                self._fail_task(task, exc)
                return False
        func = task.func
        if func.func_id not in w.defined:
            if len(func.blob) + 64 > self.max_frame:
                self._fail_task(task, ValueError(
                    f"{func.name} pickles to {len(func.blob)} bytes, more than "
                    f"max_frame_bytes={self.max_frame} allows in one message: raise "
                    f"max_frame_bytes, or pass large data as arguments or with iris.put"))
                return False
            w.defined.add(func.func_id)
            out.frames.extend(encode_define(func.func_id, func.blob))
        oid = task.oids[0]
        w.inflight[oid] = task
        self.n_inflight += 1
        if rec is None:
            out.plain((oid, func.func_id, task.num_returns, kind, data))  # type: ignore[arg-type]
        else:
            out.record(rec)
        return True

    def _task_record(self, task: _Task, w: _Worker) -> TaskRecord:
        args = task.args_value
        if args is None:
            args = task.args_value = Value(ValueKind.INLINE, task.header, task.buffers)
        same_host = w.host == self.host
        if args.kind == ValueKind.SHM and not same_host:
            args = inline_copy(args)
        elif args.kind == ValueKind.ARENA and not same_host:
            args = Value(ValueKind.INLINE, *self._arena().read(task.args_slot))
        resolved = []
        if task.deps:
            for ref in task.deps:
                obj = self._object(ref)
                v = obj.serialized() if obj is not None else None
                if v is None:
                    raise obj.error if obj is not None and obj.error is not None else \
                        ObjectLostError(f"argument {ref!r} of {task.func.name} is gone")
                if is_shm(v) and shm_location(v).get("host") != w.host:
                    v = inline_copy(v)
                resolved.append(v)
        for v in (args, *resolved) if not same_host or resolved else ():
            if v.kind == ValueKind.INLINE and (len(v.data) > self.max_frame or any(
                    memoryview(b).nbytes > self.max_frame for b in v.buffers)):
                raise ValueError(
                    f"the arguments of {task.func.name} need a frame of more than "
                    f"max_frame_bytes={self.max_frame} to reach worker {w.worker_id} on "
                    f"another host; raise max_frame_bytes, or split the data")
        return TaskRecord(task.oids[0], task.func.func_id, task.num_returns, args, resolved)

    def _arena(self) -> Arena:
        arena = self.arena
        if arena is None:
            with self.lock:
                if self.arena is None:
                    self.arena = Arena(self.cluster_id)
                arena = self.arena
        return arena

    def _segment_name(self) -> str:
        return f"iris-{self.cluster_id}-c{id(self) & 0xFFFFFF:x}-{next(self.segment_seq)}"

    # ------------------------------------------------------------------ results
    def _on_worker(self, w: _Worker) -> None:
        done = 0
        for msgs in self._messages(w.sock):
            for m in msgs:
                if m.type == MsgType.REQUEST:
                    self._worker_notice(w, m)
                    done += 1
                    continue
                if m.type == MsgType.PLAIN_RESULTS:
                    done += self._plain_results(w, m)
                    continue
                if m.type != MsgType.RESULTS:
                    log.warning("worker %s sent unexpected type 0x%02x", w.worker_id, m.type)
                    continue
                try:
                    records = decode_results(m)
                except ProtocolError as exc:
                    log.warning("dropped a malformed result batch: %s", exc)
                    continue
                for rec in records:
                    task = w.inflight.pop(rec.task_id, None)
                    if task is not None:
                        self.n_inflight -= 1
                        w.blocked.discard(rec.task_id)
                        self._complete(task, rec)
                        done += 1
        if type(w.sock) is StreamLink and w.sock.closed and self.workers.get(
                w.worker_id) is w:
            # Its end went away: nothing more goes there. When the worker died, the head's
            # word on it (with the reason: exit code, signal) follows at once, and its
            # tasks are retried then; should it not come, the link's own reason does.
            del self.workers[w.worker_id]
            self.departing[w.worker_id] = w
            self.loop.call_later(_LINK_GRACE_S, partial(self._link_lost, w))
        if done or self.ready:
            self._dispatch()

    def _plain_results(self, w: _Worker, m: Message) -> int:
        """Take in a plain batch of results (lone small values); returns how many were of
        tasks in flight there."""
        try:
            ids, execs, kinds, datas = decode_plain_results(m)
        except ProtocolError as exc:
            log.warning("dropped a malformed result batch: %s", exc)
            return 0
        # The running average of run times, as if updated once per result.
        k = len(ids)
        mean = sum(execs) * 1e-9 / k if k else 0.0
        decay = 0.9 ** k
        self.avg_exec_s = self.avg_exec_s * decay + mean * (1 - decay) if self.avg_exec_s \
            else mean
        pop, blocked = w.inflight.pop, w.blocked
        done = 0
        for tid, kind, data in zip(ids, kinds, datas):
            task = pop(tid, None)
            if task is None:
                continue
            done += 1
            if blocked:
                blocked.discard(tid)
            if kind == _INLINE and task.num_returns == 1:
                if task.light and not task.callbacks:  # the commonest: just settle it
                    task.inline = data
                    task.state = _READY
                else:
                    self._complete_inline(task, data)
            else:
                self._complete(task, ResultRecord(tid, [Value(kind, data, ())]), False)
        if done:
            self.n_inflight -= done
            self.settled = True
        return done

    def _worker_notice(self, w: _Worker, m: Message) -> None:
        try:
            body = decode_control(m)
        except ProtocolError as exc:
            log.warning("dropped a malformed notice from worker %s: %s", w.worker_id, exc)
            return
        tid = body.get("task_id")
        op = body.get("op")
        if op == "blocked" and tid in w.inflight:
            if body.get("blocked"):
                w.blocked.add(tid)
            else:
                w.blocked.discard(tid)
        elif op == "arena" and isinstance(tid, int):
            # A task kept views of arguments it read in place from our arena: their space
            # is reused only once the worker says the last view is gone.
            if body.get("kept"):
                task = w.inflight.get(tid)
                if task is not None:
                    task.args_kept = w
            else:
                slot = w.kept.pop(tid, None)
                if slot is not None:
                    self._arena().release(slot)
                elif (task := w.inflight.get(tid)) is not None:
                    task.args_kept = None  # let go before its result got here

    def _complete(self, task: _Task, rec: ResultRecord, timed: bool = True) -> None:
        if rec.values and rec.values[-1].kind == _KEPT:
            self._note_kept(rec.values[-1])  # before the task's pins go (_finish_task)
            rec = ResultRecord(rec.task_id, rec.values[:-1], rec.exec_ns)
        if task.cancelled:  # its objects failed already: let go of what the result holds
            for v in rec.values:
                if is_shm(v):
                    release_segment(shm_location(v)["name"])
            if rec.values and rec.values[-1].kind == ValueKind.REFS:
                self._receive_refs(task, rec.values[-1])  # (their transit pins go)
            self._finish_task(task)
            return
        if timed:
            self.avg_exec_s = self.avg_exec_s * 0.9 + rec.exec_ns * 1e-10 \
                if self.avg_exec_s else rec.exec_ns * 1e-9
        values = rec.values
        if len(values) == 1 and values[0].kind == ValueKind.INLINE and task.num_returns == 1 \
                and not values[0].buffers:
            self._complete_inline(task, values[0].data)
            return
        if values and values[-1].kind == ValueKind.REFS:
            self._receive_refs(task, values[-1])
            values = values[:-1]
        if len(values) == 1 and values[0].kind == ValueKind.ERROR:
            if task.role == CREATE and task.actor is not None:
                self._creation_failed(task.actor, values[0])
            values = values * task.num_returns
        for oid, v in zip(task.oids, values):
            with self.ref_lock:  # decref may free it on another thread meanwhile
                obj = self.objects.get(oid)
                if obj is not None and is_shm(v):
                    obj.owned_segment = shm_location(v)["name"]
            if obj is None:  # every ref to it is gone already
                if is_shm(v):
                    release_segment(shm_location(v)["name"])
                continue
            self._settle(obj, v, None)
        self._finish_task(task)

    def _complete_inline(self, task: _Task, data: bytes | memoryview) -> None:
        """The commonest outcome: one small pickle, no buffers, nothing inside it to hold.
        It settles the task's own entry, which is its object's (freed already if its refs
        are gone; then nobody reads it)."""
        if task.cancelled:
            self._finish_task(task)
            return
        task.inline = data
        task.state = _READY
        if task.callbacks:
            self._run_callbacks(task)
        self.settled = True
        self._finish_task(task)

    def _creation_failed(self, actor: ActorRecord, v: Value) -> None:
        try:
            from_value(v)
            why = "its constructor failed"
        except BaseException as exc:  # noqa: BLE001  the constructor's own error
            why = f"its constructor raised {type(exc).__name__}: {str(exc).splitlines()[0]}"
        q = self.targeted.get(actor.worker_id or "")
        if q:
            for t in [t for t in q if t.actor is actor]:
                q.remove(t)
                self._fail_task(t, ActorDiedError(f"actor {actor.name} is dead: {why}"))
        self._actor_dead(actor, ActorDiedError(f"actor {actor.name} is dead: {why}"))

    def _note_kept(self, v: Value) -> None:
        """Refs from a task's arguments that its worker still holds (an actor kept them):
        their owners hold them in transit until the worker's borrow registration arrives
        (the worker follows it with the matching release on the same connection), so
        they stay alive whichever message comes first."""
        try:
            refs = [(str(owner), int(oid)) for owner, oid in json.loads(bytes(v.data))]
        except (ValueError, TypeError) as exc:
            log.warning("dropped a malformed list of kept refs in a result: %s", exc)
            return
        for owner, oid in refs:
            if owner == self.address:
                self._owner_changed(oid, 0, 1)
            else:
                self._tell_owner(owner, oid, transit=1)

    def kept_by_task(self, refs: list[tuple[str, int]]) -> None:
        """(In a worker.) A task is over and kept these borrowed refs: after our borrow
        registration (sent earlier, on the same connection), release the transit hold
        its result's KEPT list makes their owners take."""
        for owner, oid in refs:
            self._tell_owner(owner, oid, transit=-1)

    def holds(self, owner: str, oid: int) -> bool:
        """Whether this process holds a ref to another owner's object."""
        return owner != self.address and self.refcounts.get((owner, oid), 0) > 0

    def _receive_refs(self, task: _Task, v: Value) -> None:
        """Refs inside a task's results: the result objects hold them from now on (which
        registers us as a borrower with their owners), then the pins their sender put on
        them in transit are let go, in that order."""
        try:
            entries = json.loads(bytes(v.data))
            refs = [(str(owner), int(oid), int(idx), bool(pinned))
                    for owner, oid, idx, pinned in entries]
        except (ValueError, TypeError) as exc:
            log.warning("dropped a malformed list of refs in a result: %s", exc)
            return
        for owner, oid, idx, pinned in refs:
            if not 0 <= idx < len(task.oids):
                continue
            held = ObjectRef(oid, owner)  # registers us as a borrower, if not the owner
            with self.ref_lock:
                obj = self.objects.get(task.oids[idx])
                if obj is not None:  # else nobody will read the value: nothing to hold
                    obj.contained = [*(obj.contained or []), held]
            del held
            if pinned:
                if owner == self.address:
                    self._owner_changed(oid, 0, -1)
                else:
                    self._tell_owner(owner, oid, transit=-1)

    def _finish_task(self, task: _Task) -> None:
        if task.light:
            return
        if len(task.header) > 256 or task.buffers:
            # The entry lives on as its object's: keep no arguments there.
            task.header, task.buffers = b"", []
        if task.args_segment is None and task.args_slot is None and not task.pinned:
            task.deps = None
            return
        if task.args_segment is not None:
            release_segment(task.args_segment)
            task.args_segment = None
        if task.args_slot is not None:
            if task.args_kept is not None and not task.args_kept.gone:
                task.args_kept.kept[task.oids[0]] = task.args_slot  # released on its word
            else:
                self._arena().release(task.args_slot)
            task.args_slot = None
        task.deps = None
        # Refs inside the arguments: those the worker kept came back in its result (KEPT)
        # and their owners hold them in transit until its registration arrives (see
        # _note_kept), so the pins can go now.
        task.pinned = []

    def _fail_task(self, task: _Task, error: BaseException | None, value: Value | None = None,
                   where: str = "") -> None:
        task.waiting = -1  # marks it failed for whoever still holds it in a line
        if task.actor is not None and task.role != CREATE and task.actor.calls \
                and task.actor.calls[0] is task:
            self._release_calls(task.actor)  # it held the actor's later calls back
        for oid in task.oids:
            obj = self.objects.get(oid)
            if obj is not None:
                if where:
                    obj.where = where
                self._settle(obj, value, error)
        self._finish_task(task)

    def _settle(self, obj: _Object, value: Value | None, error: BaseException | None) -> None:
        """Make an object ready or failed; wake getters, run callbacks, release dependents."""
        obj.value = value
        obj.inline = None
        obj.error = error
        obj.state = _FAILED if error is not None or (
            value is not None and value.kind == ValueKind.ERROR) else _READY
        if obj.callbacks:
            self._run_callbacks(obj)
        self.settled = True

    def _run_callbacks(self, obj: _Object) -> None:
        callbacks, obj.callbacks = obj.callbacks or [], None
        for cb in callbacks:
            try:
                cb(obj)
            except Exception:
                log.exception("object callback failed")

    def _wake_waiters(self) -> None:
        """Wake threads blocked in get/wait, once per batch of settled objects."""
        if not self.settled:
            return
        self.settled = False
        if self.waiters:
            with self.cv:
                self.cv.notify_all()

    # ------------------------------------------------------------------ objects
    def _object(self, ref: ObjectRef, fetch: bool = False) -> _Object | None:
        """The table entry of ``ref``; a borrowed ref is fetched from its owner if asked."""
        if ref.owner == self.address:
            return self.objects.get(ref.oid)
        key = (ref.owner, ref.oid)
        obj = self.borrowed.get(key)
        if obj is not None:
            return obj  # (fetched, or being fetched: a value we hold stays readable)
        if ref.owner in _retired_owners or ref.owner in self.dead_owners:
            lost = _Object()
            lost.state = _FAILED
            lost.error = ObjectLostError(
                f"{ref!r} belongs to an earlier iris.init() of this process, which was shut "
                f"down; its value is gone" if ref.owner in _retired_owners else
                _owner_gone_text(ref.owner, ref.oid))
            return lost
        with self.ref_lock:
            obj = self.borrowed.get(key)
            if obj is None and fetch:
                obj = self.borrowed[key] = _Object()
                self.loop.call_soon_threadsafe(lambda: self._fetch(ref))
        return obj

    def _owner_gone(self, owner: str) -> None:
        """The head says the client at ``owner`` is gone (lock held): the objects it owned
        are lost. What we wait for from it fails; later reads of its refs fail at once."""
        if owner == self.address or owner in self.dead_owners:
            return
        self.dead_owners[owner] = None
        while len(self.dead_owners) > _MAX_DEAD_OWNERS:
            del self.dead_owners[next(iter(self.dead_owners))]
        sock = self.owner_socks.pop(owner, None)
        if sock is not None:
            self.loop.remove_reader(sock)
            sock.close(0)
        with self.ref_lock:
            waiting = [oid for (o, oid), obj in self.borrowed.items()
                       if o == owner and obj.state == _PENDING]
        for oid in waiting:
            self._lose_borrowed(owner, oid)
        self._dispatch()

    def _lose_borrowed(self, owner: str, oid: int) -> None:
        """Fail our pending copy of a gone owner's object (lock held)."""
        obj = self.borrowed.get((owner, oid))
        if obj is not None and obj.state == _PENDING:
            self._settle(obj, None, ObjectLostError(_owner_gone_text(owner, oid)))

    def _owner_back(self, owner: str) -> None:
        """The head says a client it had given up is back: its new objects are readable
        (those we failed meanwhile stay failed)."""
        self.dead_owners.pop(owner, None)

    def _check_owners(self) -> None:
        """While we wait for objects of other owners, ask the head every _OWNER_CHECK_S
        whether they are still with us (an owner that died before we joined is news to no
        event). A lost answer only delays the next look."""
        with self.ref_lock:
            waited = {o for (o, _), obj in self.borrowed.items() if obj.state == _PENDING}
        waited.difference_update(self.dead_owners)
        if not waited or self.closed:
            self.owner_checks = False
            return
        for rid in [r for r, cb in self.head_callbacks.items() if cb.func == self._owner_alive]:
            del self.head_callbacks[rid]  # unanswered since the last look: forget them
        for owner in waited:
            rid = next(self.head_rids)
            self.head_callbacks[rid] = partial(self._owner_alive, owner)
            self._send(self.head, encode_control(
                MsgType.REQUEST, {"op": "client.alive", "address": owner}, rid))
        self.loop.call_later(_OWNER_CHECK_S, self._check_owners)

    def _owner_alive(self, owner: str, body: dict[str, Any]) -> None:
        if body.get("alive") is False:
            self._owner_gone(owner)

    def _on_dep_done(self, key: tuple[str, int], obj: _Object) -> None:
        for task in self.dep_waiters.pop(key, ()):
            if task.waiting <= 0:
                continue  # failed already through another argument
            if obj.state == _FAILED:
                task.waiting = -1
                self._fail_task(task, obj.error, obj.value, obj.where)
            else:
                task.waiting -= 1
                if task.waiting == 0:
                    self._make_ready(task)

    def _owner_sock(self, owner: str) -> zmq.Socket[Any]:
        """Our connection to another owner's ROUTER (lock held)."""
        sock = self.owner_socks.get(owner)
        if sock is None:
            sock = connect_client(zmq.DEALER, self.creds, owner.partition("#")[0])
            self.owner_socks[owner] = sock
            self.loop.add_reader(sock, lambda: self._on_owner_reply(owner, sock))
        return sock

    def _fetch(self, ref: ObjectRef) -> None:
        if ref.owner in self.dead_owners:  # (queued before its owner was known gone)
            self._lose_borrowed(ref.owner, ref.oid)
            self._dispatch()
            return
        self._send(self._owner_sock(ref.owner),
                   encode_control(MsgType.OBJ_GET, {"oid": ref.oid, "host": self.host,
                                                    "owner": ref.owner}))
        if not self.owner_checks:
            self.owner_checks = True
            self.loop.call_later(_OWNER_CHECK_S, self._check_owners)

    def _on_owner_reply(self, owner: str, sock: zmq.Socket[Any]) -> None:
        for msgs in self._messages(sock):
            for m in msgs:
                try:
                    records = decode_results(m)
                except ProtocolError as exc:
                    log.warning("dropped a malformed object reply: %s", exc)
                    continue
                for rec in records:
                    obj = self.borrowed.get((owner, rec.task_id))
                    if obj is not None and obj.state == _PENDING and rec.values:
                        self._settle(obj, rec.values[0], None)
        self._dispatch()

    def _on_owner_sock(self) -> None:
        """A borrower asks for one of our objects: answer now, or when it is ready."""
        drain_router(self.owner_sock, self.max_frame, self._object_request, _dropped_request)

    def _object_request(self, peer: bytes, m: Message) -> None:
        body = decode_control(m)
        oid = body.get("oid")
        if type(oid) is not int:
            raise ProtocolError("owner requests need an int oid")
        owner = body.get("owner", self.address)
        if owner != self.address:
            # Meant for an owner that had our port before us (it is gone): its objects are
            # not ours to give or to count.
            if m.type == MsgType.OBJ_GET:
                lost = error_value(ObjectLostError(_owner_gone_text(str(owner), oid)))
                self._send(self.owner_sock, [peer, *encode_results(
                    [ResultRecord(oid, [lost])], MsgType.OBJ_VALUE)])
            return
        if m.type == MsgType.OBJ_GET:
            self._serve_object(peer, oid, str(body.get("host", "")))
        elif m.type == MsgType.REQUEST and body.get("op") == "borrow":
            borrow, transit = body.get("borrow", 0), body.get("transit", 0)
            if type(borrow) is not int or type(transit) is not int or \
                    not (-1 <= borrow <= 1 and -1 <= transit <= 1):
                raise ProtocolError("borrow updates are -1, 0 or 1")
            self._owner_changed(oid, borrow, transit)
        else:
            raise ProtocolError("owner socket takes OBJ_GET and borrow updates only")

    def _serve_object(self, peer: bytes, oid: int, host: str) -> None:
        obj = self.objects.get(oid)

        def reply(o: _Object | None) -> None:
            v = o.serialized() if o is not None else None
            if v is None:
                err = o.error if o is not None and o.error is not None else ObjectLostError(
                    f"object {oid:016x} was freed by its owner {self.address}")
                v = error_value(err)
            else:
                if is_shm(v) and shm_location(v).get("host") != host:
                    v = inline_copy(v)
            frames = encode_results([ResultRecord(oid, [v])], MsgType.OBJ_VALUE)
            try:
                self._send(self.owner_sock, [peer, *frames])
            except zmq.ZMQError:
                pass

        if obj is None or obj.state != _PENDING:
            reply(obj)
        else:
            obj.callbacks = (obj.callbacks or []) + [reply]

    # ================================================================== user threads
    def submit(self, func: FunctionInfo, args: tuple[Any, ...], kwargs: dict[str, Any],
               num_returns: int = 1, max_retries: int = 3, actor: ActorRecord | None = None,
               role: int = CALL) -> list[ObjectRef]:
        """Queue a task; returns one ObjectRef per return value. Any thread."""
        if self.closed:
            raise IrisError("this iris client is shut down")
        prepared = _NO_ARGS_PREPARED if not args and not kwargs else self._prepare(
            func, args, kwargs)
        task, refs = self._new_task(func, prepared, num_returns, max_retries, actor, role)
        now = time.perf_counter()
        idle_since, self.last_submit = self.last_submit, now
        self.submit_q.append(task)
        if not self.n_inflight and now - idle_since > _BURST_GAP_S:
            # Nothing in flight and no burst going on: send from this thread right now (no
            # wake-up of another thread on the way to the worker). Only then is the lock
            # taken: during a burst it would make this thread and the leader take turns.
            with self.lock:
                if not self.n_inflight and not self.ready and not self.submit_scheduled \
                        and self.workers:
                    self._on_submits()
                    return refs
        if len(self.submit_q) >= _SUBMIT_BATCH:
            # A burst: send the batch from this thread, and take in the results that came
            # back meanwhile (they free room at the workers), in step with the submitter.
            with self.lock:
                self.loop.poll_now()
                self._on_submits()
            return refs
        if not self.submit_scheduled:
            self.submit_scheduled = True
            if now - idle_since > _BURST_GAP_S:
                # Busy, but no burst: the reactor's leader sends it at its next turn.
                self.loop.call_soon_threadsafe(self._on_submits)
            else:
                # A burst: this thread sends every _SUBMIT_BATCH tasks itself; the rest goes
                # within _BURST_FLUSH_S, or as soon as a thread waits for results. Waking
                # the I/O thread for every few tasks would only have the two threads take
                # turns at the GIL.
                with self.lock:
                    self.loop.call_later(_BURST_FLUSH_S, self._on_submits)
        return refs

    def submit_many(self, func: FunctionInfo, calls: Sequence[tuple[Any, ...]],
                    num_returns: int = 1, max_retries: int = 3) -> list[list[ObjectRef]]:
        """Queue one task per argument tuple in ``calls``, in one go (one pass, one batch per
        worker); returns each task's refs, in order. Any thread."""
        if self.closed:
            raise IrisError("this iris client is shut down")
        out: list[list[ObjectRef]] = []
        new_task, prepare = self._new_task, self._prepare
        for start in range(0, len(calls), _SUBMIT_BATCH):
            # Batch by batch, so that workers start on the first while the next is made.
            tasks: list[_Task] = []
            try:
                for args in calls[start:start + _SUBMIT_BATCH]:
                    prepared = _NO_ARGS_PREPARED if not args else prepare(func, args, {})
                    task, refs = new_task(func, prepared, num_returns, max_retries, None, CALL)
                    tasks.append(task)
                    out.append(refs)
            except BaseException:
                # This batch is not submitted: let go of what its tasks hold. (Earlier
                # batches run; their refs die with the exception.)
                with self.lock:
                    for task in tasks:
                        self._finish_task(task)
                raise
            self.last_submit = time.perf_counter()
            self.submit_q.extend(tasks)
            with self.lock:
                self.loop.poll_now()
                self._on_submits()
        return out

    def _prepare(self, func: FunctionInfo, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> _Prepared:
        """A call's arguments as a task carries them: pickled (top-level refs replaced by
        placeholders, refs inside containers pinned) and placed (inline, arena, segment)."""
        pinned: list[ObjectRef] = []
        deps: list[ObjectRef] | None = None
        for a in args:
            if type(a) is ObjectRef:
                deps = []
                break
        else:
            if kwargs and any(type(v) is ObjectRef for v in kwargs.values()):
                deps = []
        if deps is not None:
            args = tuple([_placeholder(a, deps) for a in args])
            kwargs = {k: _placeholder(v, deps) for k, v in kwargs.items()}
        plain = dumps_call(args, kwargs) if deps is None else dumps_plain((args, kwargs))
        if plain is not None:
            header, buffers = plain
        else:
            with collect_refs() as pinned:
                try:
                    header, buffers = dumps((args, kwargs))
                except TypeError:
                    raise TypeError(f"{func.name}.remote(): "
                                    f"{describe_unpicklable(args, kwargs)}") from None
        if not buffers and len(header) < _ARENA_MIN:
            return header, [], deps, pinned, None, None, None
        # Take the arguments' bytes now: the caller may change its arrays right after
        # .remote() returns. Large ones go to a shared-memory segment at once, medium ones
        # into the arena (when a worker is on this machine), small ones are copied.
        size = len(header) + nbytes(buffers)
        if size >= self.threshold:
            segment = self._segment_name()
            return b"", [], deps, pinned, pack(header, buffers, self.threshold, segment), \
                segment, None
        if size >= _ARENA_MIN and self.local_workers and (
                slot := self._arena().write(header, buffers)) is not None:
            return b"", [], deps, pinned, Value(ValueKind.ARENA, slot.location), None, slot
        return header, [bytes(b) for b in buffers], deps, pinned, None, None, None

    def _new_task(self, func: FunctionInfo, prepared: _Prepared, num_returns: int,
                  max_retries: int, actor: ActorRecord | None, role: int
                  ) -> tuple[_Task, list[ObjectRef]]:
        """A task's entry, its objects and their refs (not queued yet)."""
        header, buffers, deps, pinned, args_value, args_segment, args_slot = prepared
        oid = next(self.oids)
        if num_returns == 1:
            task = _Task((oid,), func, header, 1, max_retries)
            if args_value is None and not pinned and not deps and not buffers \
                    and actor is None and len(header) <= 256:
                task.light = True  # the commonest task: nothing else to set
            else:
                _set_args(task, prepared, actor, role)
            self.objects[oid] = task  # the task is its object's entry too
            # A new object: nobody else can count it yet (its count starts at one).
            return task, [ObjectRef._owned_new(oid, self.address)]
        oids = (oid, *[next(self.oids) for _ in range(num_returns - 1)])
        task = _Task(oids, func, header, num_returns, max_retries)
        _set_args(task, prepared, actor, role)
        task.nrefs = 0
        self.objects[oid] = task
        for other in oids[1:]:
            secondary = self.objects[other] = _Object(func.label)
            secondary.task = task  # (iris.cancel of this ref finds its task)
        return task, [ObjectRef(o, self.address) for o in oids]

    def cancel(self, ref: ObjectRef, force: bool) -> None:
        """Cancel the task of ``ref`` (see :func:`iris.cancel`). Any thread."""
        if self.closed:
            raise IrisError("this iris client is shut down")
        if ref.owner != self.address:
            raise ValueError(f"iris.cancel(): {ref!r} was made by another process; only the "
                             f"process that submitted a task can cancel it")
        with self.lock:
            entry = self.objects.get(ref.oid)
            task = entry if isinstance(entry, _Task) else getattr(entry, "task", None)
            if task is None:
                if entry is not None and entry.where == "put":
                    raise TypeError("iris.cancel() takes the ref of a task; this one was "
                                    "made by iris.put()")
                return  # (a task's secondary result whose task entry is gone: finished)
            if task.actor is not None:
                raise TypeError(f"iris.cancel(): {ref!r} is the result of an actor's call "
                                f"({task.func.name}); actor calls cannot be cancelled: "
                                f"iris.kill() the actor instead")
            worker = next((w for w in [*self.workers.values(), *self.departing.values()]
                           if task.oids[0] in w.inflight), None)
            if task.cancelled and force and task.cancelled < 2 and worker is not None:
                task.cancelled = 2  # cancelled before; now with force (stuck in C, say)
                self._send(worker.sock, encode_control(MsgType.REQUEST, {
                    "op": "cancel", "task_id": task.oids[0], "force": True}))
                return
            if task.state != _PENDING or task.waiting < 0 or task.cancelled:
                return  # finished, failed or cancelled already
            why = TaskCancelledError(f"task {task.func.name} was cancelled"
                                     f"{' with force' if force else ''}")
            if worker is None:  # not sent yet: drop it from whichever line holds it
                for line in (self.submit_q, self.ready):
                    if task in line:
                        line.remove(task)
                self._fail_task(task, why)  # (a task waiting for arguments: waiting = -1)
            else:
                # It runs (or waits) in its worker: its objects fail now; its arguments
                # are let go when the worker's word on it comes.
                task.cancelled, task.light = 2 if force else 1, False
                for oid in task.oids:
                    obj = self.objects.get(oid)
                    if obj is not None:
                        self._settle(obj, None, why)
                self._send(worker.sock, encode_control(MsgType.REQUEST, {
                    "op": "cancel", "task_id": task.oids[0], "force": force}))
            self._wake_waiters()
            # A thread waiting in get leads the reactor, asleep in epoll: wake it to look.
            self.loop.call_soon_threadsafe(_no_op)

    def put(self, value: Any) -> ObjectRef:
        """Store ``value`` in the cluster; returns its ref. Any thread."""
        if isinstance(value, ObjectRef):
            raise TypeError("iris.put() of an ObjectRef is not allowed: pass the ref itself")
        with collect_refs() as contained:
            try:
                header, buffers = dumps(value)
            except TypeError as exc:
                raise TypeError(f"iris.put(): {exc}") from None
        name = self._segment_name() if self.cluster_id else None
        kept: list[Any] = list(buffers)
        if len(header) + nbytes(buffers) < self.threshold:
            kept = [bytes(b) for b in buffers]  # a snapshot: the caller may change its arrays
        v = pack(header, kept, self.threshold, name)
        oid = next(self.oids)
        obj = _Object("put")
        obj.value, obj.state = v, _READY
        if contained:  # refs inside the value live as long as the value
            obj.contained = list(contained)
        if is_shm(v):
            obj.owned_segment = name
        self.objects[oid] = obj
        return ObjectRef(oid, self.address)

    def _lookup_for_get(self, ref: ObjectRef) -> _Object:
        obj = self._object(ref, fetch=True)
        if obj is None:
            raise ObjectLostError(f"{ref!r} was freed")
        return obj

    def get(self, refs: Sequence[ObjectRef], timeout: float | None = None) -> list[Any]:
        """The values of ``refs``, in order; blocks until all are ready. Any thread."""
        objects, address = self.objects, self.address
        objs = [(objects.get(r.oid) if r.owner == address else None) or self._lookup_for_get(r)
                for r in refs]
        self._wait_objects(objs, len(objs), timeout)
        out = []
        for o in objs:
            data = o.inline
            if data is not None:
                out.append(_pickle_loads(data))  # the common case, without the calls
            else:
                out.append(self._decode(o))
        return out

    def tell_head(self, body: dict[str, Any]) -> None:
        """Send the head a request whose reply nobody waits for. Any thread."""
        with self.lock:
            if not self.closed:
                self._send(self.head, encode_control(MsgType.REQUEST, body))

    def head_request(self, body: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
        """Ask the head (a ``REQUEST``) and wait for its reply. Any thread.

        Raises:
            IrisError: no reply within ``timeout_s``, or the client closed meanwhile.
        """
        rid = next(self.head_rids)
        with self.lock:
            self.head_waiting.add(rid)
            self._send(self.head, encode_control(MsgType.REQUEST, body, rid))
        try:
            if not self._wait_for(lambda: rid in self.head_replies,
                                  time.monotonic() + timeout_s):
                raise IrisError(f"no answer from the head to {body.get('op')!r} within "
                                f"{timeout_s:.0f} s")
        finally:
            with self.lock:
                self.head_waiting.discard(rid)
                reply = self.head_replies.pop(rid, None)
        assert reply is not None
        return reply

    def _wait_for(self, done: Any, deadline: float | None, spin_s: float = 0.0) -> bool:
        """Lead the reactor (or wait parked) until ``done()``; False at the deadline. Raises
        IrisError if the client closes meanwhile. Inside a worker, the task gives up its
        slot while it waits."""
        block = _context.block_hook
        blocked = False
        with self.lock:
            self.waiters += 1
        try:
            if block is not None:
                block(True)
                blocked = True
            # In a worker, look every _CANCEL_LOOK_S whether the task was cancelled
            # meanwhile (iris.cancel reaches a waiting task here, at a safe point).
            step = _CANCEL_LOOK_S if blocked else None
            while True:
                until = deadline
                if step is not None:
                    until = time.monotonic() + step
                    if deadline is not None:
                        until = min(until, deadline)
                if self.loop.run(until=done, deadline=until, spin_s=spin_s):
                    return True
                if self.closed or self.loop.stopped:
                    raise IrisError("iris was shut down while waiting")
                if blocked and _context.cancel_pending is not None and \
                        _context.cancel_pending():
                    raise _TaskInterrupt  # (the worker reports the task cancelled)
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        finally:
            with self.lock:
                self.waiters -= 1
            if blocked and block is not None and block(False):
                # Cancelled as its wait ended: it stops here, not in the user's code.
                raise _TaskInterrupt

    def _wait_objects(self, objs: list[_Object], count: int, timeout: float | None) -> None:
        n, first = len(objs), [0]

        def done() -> bool:
            if count >= n:  # all of them: objects before ``first`` are known to be ready
                i = first[0]
                while i < n and objs[i].state != _PENDING:
                    i += 1
                first[0] = i
                return i == n
            return sum(1 for o in objs if o.state != _PENDING) >= count

        if done():
            return
        if self.submit_q:  # what a burst left queued goes out before we wait
            with self.lock:
                self._on_submits()
        deadline = None if timeout is None else time.monotonic() + timeout
        # Lead the reactor while we wait (or wait parked while another thread leads): the
        # results are read on this very thread, with no wake-up in between. A synchronous
        # call of a short task (one in flight, short on average) from a driver: its answer
        # comes within microseconds, so look for it without going to sleep for a while (a
        # wake-up costs this VM ~10-30 us). Never in a worker, whose CPU its peers need,
        # nor while many tasks are in flight.
        spin = _SPIN_S if (_context.block_hook is None and self.n_inflight == 1
                           and self.avg_exec_s < _SPIN_S) else 0.0
        if not self._wait_for(done, deadline, spin):
            raise GetTimeoutError(
                f"get timed out after {timeout} s: "
                f"{sum(1 for o in objs if o.state == _PENDING)} of {len(objs)} objects not "
                f"ready")

    def wait(self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None
             ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """Split ``refs`` into ready and not-ready, in submission order. Any thread."""
        objs = [self._lookup_for_get(r) for r in refs]
        try:
            self._wait_objects(objs, num_returns, timeout)
        except GetTimeoutError:
            pass
        ready: list[ObjectRef] = []
        not_ready: list[ObjectRef] = []
        for r, o in zip(refs, objs):
            (ready if o.state != _PENDING and len(ready) < num_returns else not_ready).append(r)
        return ready, not_ready

    def _decode(self, obj: _Object) -> Any:
        if obj.error is not None:
            raise obj.error
        if obj.inline is not None:
            return _pickle_loads(obj.inline)
        assert obj.value is not None
        return from_value(obj.value, obj.where)

    def future(self, ref: ObjectRef) -> concurrent.futures.Future[Any]:
        """A Future completed (on the I/O thread) when ``ref`` is ready."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def complete(obj: _Object, _ref: ObjectRef = ref) -> None:
            try:
                fut.set_result(self._decode(obj))
            except BaseException as exc:  # noqa: BLE001
                fut.set_exception(exc)

        def register() -> None:
            obj = self._object(ref, fetch=True)
            if obj is None:
                fut.set_exception(ObjectLostError(f"{ref!r} was freed"))
            elif obj.state != _PENDING:
                complete(obj)
            else:
                obj.callbacks = (obj.callbacks or []) + [complete]

        self.loop.call_soon_threadsafe(register)
        return fut

    # ------------------------------------------------------------------ refcounts
    def incref(self, ref: ObjectRef) -> None:
        """A new live ref in this process: counted on our own object's entry, or in the
        table of borrowed refs (the first one registers us with their owner)."""
        with self.ref_lock:
            if ref.owner == self.address:
                obj = self.objects.get(ref.oid)
                if obj is not None:  # (a ref to an object freed already counts nothing)
                    obj.nrefs += 1
                return
            key = (ref.owner, ref.oid)
            n = self.refcounts.get(key, 0)
            self.refcounts[key] = n + 1
            if n == 0:
                self._tell_owner(ref.owner, ref.oid, borrow=1)  # we borrow it from now on
                noted_borrow(ref.owner, ref.oid)  # (a task's arguments: see note_refs)

    def decref(self, owner: str, oid: int) -> None:
        with self.ref_lock:
            if owner == self.address:
                obj = self.objects.get(oid)
                if obj is None:
                    return
                n = obj.nrefs = obj.nrefs - 1
                if n > 0 or obj.borrowers > 0 or obj.transit > 0:
                    return  # still referenced here, or other processes hold it
                del self.objects[oid]
            else:
                key = (owner, oid)
                n = self.refcounts.get(key, 0) - 1
                if n > 0:
                    self.refcounts[key] = n
                    return
                self.refcounts.pop(key, None)
                self.borrowed.pop(key, None)
                self._tell_owner(owner, oid, borrow=-1)
                return
        if obj.owned_segment is not None or obj.contained is not None:
            self._free(obj)

    def _free(self, obj: _Object) -> None:
        """Drop an object's value, segment and the refs inside it (ref_lock not needed)."""
        if obj.owned_segment is not None:
            release_segment(obj.owned_segment)
            obj.owned_segment = None
        if obj.contained is not None:
            obj.contained = None  # their own decrefs follow

    def _tell_owner(self, owner: str, oid: int, borrow: int = 0, transit: int = 0) -> None:
        """Queue a borrow/transit update for an object's owner (any thread; in order)."""
        if self.closed or owner in _retired_owners or owner in self.dead_owners:
            return
        body = {"op": "borrow", "oid": oid, "borrow": borrow, "transit": transit,
                "owner": owner}
        self.loop.call_soon_threadsafe(lambda: self._send_owner(owner, body))

    def _send_owner(self, owner: str, body: dict[str, Any]) -> None:
        if owner in self.dead_owners:  # (it went since the update was queued)
            return
        try:
            self._send(self._owner_sock(owner), encode_control(MsgType.REQUEST, body))
        except zmq.ZMQError as exc:
            log.info("could not reach the owner %s: %s", owner, exc)

    def _owner_changed(self, oid: int, borrow: int, transit: int) -> None:
        """A borrower's update for one of our objects (reactor thread)."""
        with self.ref_lock:
            obj = self.objects.get(oid)
            if obj is None:
                return
            obj.borrowers = max(0, obj.borrowers + borrow)
            # A pin's release may arrive before the pin (they come by different ways):
            # below zero means "released early", and the late pin brings it back to zero.
            obj.transit += transit
            if not (obj.unreferenced and obj.borrowers == 0 and obj.transit <= 0):
                return
            del self.objects[oid]
        self._free(obj)

    def export_refs(self, refs: list[ObjectRef]) -> list[bool]:
        """Refs about to leave in a task's result: pin each at its owner until the result's
        receiver has registered it there. Returns, per ref, whether it was pinned."""
        pinned = []
        for ref in refs:
            if ref.owner == self.address:
                with self.ref_lock:
                    obj = self.objects.get(ref.oid)
                    if obj is not None:
                        obj.transit += 1
                pinned.append(obj is not None)
            elif ref.owner in _retired_owners or ref.owner in self.dead_owners:
                pinned.append(False)
            else:
                self._tell_owner(ref.owner, ref.oid, transit=1)
                pinned.append(True)
        return pinned

    def object_count(self) -> int:
        """How many objects this client holds (for tests and statistics)."""
        return len(self.objects) + len(self.borrowed)

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Leave the cluster: stop the I/O thread, close sockets, free owned segments."""
        if self.closed:
            return
        self.closed = True
        _retired_owners.add(self.address)
        set_resolver(None)
        try:
            with self.lock:
                self._send(self.head, encode_control(MsgType.REQUEST, {"op": "bye"}))
        except zmq.ZMQError:
            pass
        finally:
            self.loop.stop()
        self.thread.join(5)
        self.loop.close()
        for obj in list(self.objects.values()):
            if obj.owned_segment is not None:
                release_segment(obj.owned_segment)
        clear_pool()
        if self.arena is not None:
            self.arena.close()
        self.objects.clear()
        self.borrowed.clear()
        with self.cv:
            self.cv.notify_all()


class _Outgoing:
    """What one dispatch sends one worker, in order: DEFINEs, then runs of plain task
    records (columnar) and of other records, each run one message or more (within the
    budget of bytes per message)."""

    __slots__ = ("frames", "budget", "plains", "records")

    def __init__(self, budget: int) -> None:
        self.frames: list[Any] = []
        self.budget = budget
        self.plains: list[tuple[int, int, int, int, bytes]] = []
        self.records: list[TaskRecord] = []

    def plain(self, rec: tuple[int, int, int, int, bytes]) -> None:
        if self.records:
            self._close_records()
        self.plains.append(rec)

    def record(self, rec: TaskRecord) -> None:
        if self.plains:
            self._close_plain()
        self.records.append(rec)

    def finish(self) -> list[Any]:
        if self.plains:
            self._close_plain()
        if self.records:
            self._close_records()
        return self.frames

    def _close_plain(self) -> None:
        # Plain arguments are under _ARENA_MIN bytes: that bounds a record's size.
        for chunk in chunk_by_size(self.plains, self.budget, plain_task_size,
                                   _ARENA_MIN + plain_task_size((0, 0, 0, 0, b""))):
            if len(chunk) == 1:  # a lone record packs cheaper than five columns
                tid, fid, nret, kind, data = chunk[0]
                self.frames.extend(encode_tasks([TaskRecord(tid, fid, nret,
                                                            Value(kind, data, ()), ())]))
            else:
                self.frames.extend(encode_plain_tasks(chunk))
        self.plains = []

    def _close_records(self) -> None:
        for chunk in chunk_by_size(self.records, self.budget, _record_size):
            self.frames.extend(encode_tasks(chunk))
        self.records = []


def _no_op() -> None:
    pass


def _owner_gone_text(owner: str, oid: int) -> str:
    ref = ObjectRef(oid, owner, counted=False)
    return (f"{ref!r} is lost: its owner {owner} (the driver or task that made it) is "
            f"gone, and an object lives only as long as its owner")


def _dropped_request(_peer: bytes, exc: ProtocolError) -> None:
    log.warning("dropped a malformed object request: %s", exc)


def _record_size(rec: TaskRecord) -> int:
    return len(rec.args.data) + sum(len(v.data) for v in rec.resolved)


def _set_args(task: _Task, prepared: _Prepared, actor: ActorRecord | None, role: int) -> None:
    """Set what a task's arguments hold beyond its header (left at the class defaults
    when empty), and the actor it creates or calls."""
    _, buffers, deps, pinned, args_value, args_segment, args_slot = prepared
    if buffers:
        task.buffers = buffers
    if deps:
        task.deps = deps
    if pinned:
        task.pinned = pinned
    if args_value is not None:
        task.args_value = args_value
        task.args_segment = args_segment
        task.args_slot = args_slot
    if actor is not None:
        task.actor = actor
        task.role = role


def _placeholder(a: Any, deps: list[ObjectRef]) -> Any:
    if type(a) is ObjectRef:
        deps.append(a)
        return ResolvedArg(len(deps) - 1)
    return a

