"""The worker process: receives task batches, runs them, returns result batches.

::

    owner (driver or another worker)            worker process (this module)
    DEALER ── TASKS / DEFINE / owner hello ──▶  ROUTER (tcp, and ipc for this machine)
           ◀────────── RESULTS batch ─────────── ROUTER     leader thread: reads, runs, sends
    node manager  ◀── WORKER_READY ── DEALER       stdin: closes when the node manager dies

Leader/follower (:mod:`iris._reactor`): the thread that leads the reactor reads the task
batches and runs the tasks itself, one at a time, then sends their results: no thread
hand-off between a task's arrival, its run and its result. A lone result goes out at
once; during a burst results gather, and a flusher thread sends them within a millisecond
if a long task follows (so nothing waits behind it). A task that blocks in ``iris.get``
gives the lead to a parked thread (a new one if none is parked), and tells its owner, which
stops counting it as load; the blocked task resumes on its own thread when its values
arrive and hands its result to the leader. So tasks that wait for other tasks never
deadlock the worker, however they nest.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from functools import partial
from itertools import repeat
from typing import Any

# Imported at boot, which overlaps the daemon's own start, rather than by the first task's
# unpickling, which is on the path to the first result.
import cloudpickle  # noqa: F401
import zmq

from iris import _context
from iris._arena import view_arena
from iris._protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    Message,
    MsgType,
    ResultRecord,
    Value,
    ValueKind,
    chunk_by_size,
    decode_control,
    decode_define,
    decode_frames,
    decode_plain_tasks,
    decode_tasks,
    encode_control,
    encode_plain_results,
    encode_results,
    plain_result_size,
)
from iris._reactor import Reactor
from iris._refs import ResolvedArg, collect_refs, export_refs, kept_refs, note_refs
from iris._serialization import NO_ARGS as _NO_ARGS
from iris._serialization import dumps, loads, nbytes
from iris._store import host_id
from iris._stream import StreamLink, StreamListener, link_key
from iris._transport import Credentials, bind_server, connect_client, drain_router
from iris._values import DEFAULT_INLINE_THRESHOLD, error_value, from_value, pack
from iris.exceptions import ObjectLostError, ProtocolError, TaskCancelledError, _TaskInterrupt
from iris.worker._actor_host import (
    CallActor,
    CreateActor,
    drop_actor,
    drop_actors_of,
    owner_back,
)

__all__ = ["WorkerProcess", "main"]

log = logging.getLogger("iris.worker")

# Executor threads kept idle after a burst of tasks blocked in get; more are let go.
_SPARE_EXECUTORS = 2
# During a burst, results gather this long before the main thread sends them.
_BATCH_S = 0.001
_SCALARS = frozenset({type(None), bool, int, float, complex})
# While a task runs, the flusher reads the worker's sockets this often (a cancel for it).
_WATCH_S = 0.05
# The exit code of a worker that ends itself to stop a task cancelled with force.
_CANCELLED_EXIT = 75
# Cancelled tasks remembered to be skipped (ids of tasks done already are never cleared).
_MAX_CANCELLED = 100_000
_SHORT = frozenset({str, bytes})
# A queued task: (owner, task id, function id, num_returns, arguments, resolved values).
# The arguments are the pickled bytes when they came inline without buffers (a plain
# batch), else their Value.
_Task = tuple[Any, int, int, int, Any, Sequence[Value]]
# A finished task: (owner, task id, run time in ns, outcome): the outcome is the pickled
# bytes of a lone small result, else its Values.
_Done = tuple[Any, int, int, Any]
_INLINE, _ERROR, _ARENA = ValueKind.INLINE, ValueKind.ERROR, ValueKind.ARENA



class WorkerProcess:
    """State and loop of one worker process (internal type)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.worker_id: str = cfg["worker_id"]
        self.cluster_id: str = cfg["cluster_id"]
        self.threshold: int = cfg.get("inline_threshold", DEFAULT_INLINE_THRESHOLD)
        self.max_frame: int = cfg.get("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES)
        creds = Credentials.from_token(cfg["token"])
        self.loop = Reactor()
        self.lock = self.loop.lock  # guards the sockets and everything below
        self.router, self.address = bind_server(
            zmq.ROUTER, creds, f"tcp://{cfg.get('bind_host', '127.0.0.1')}:0", self.max_frame)
        # Clients on this machine link up over a Unix stream socket (iris._stream).
        self.local_address = ""
        self.listener: StreamListener | None = None
        self.links: set[StreamLink] = set()
        ipc_dir = cfg.get("ipc_dir")
        if ipc_dir and len(ipc_dir) + len(self.worker_id) < 100:  # sun_path holds 108 bytes
            path = f"{ipc_dir}/{self.worker_id}"
            try:
                self.listener = StreamListener(
                    path, link_key(creds.secret), self.loop, max_frame_bytes=self.max_frame,
                    on_link=self.links.add, on_input=self._on_link)
                self.local_address = f"unix://{path}"
            except OSError as exc:  # e.g. the directory was cleaned away: TCP only
                log.warning("no Unix socket in %s (%s): clients use TCP", ipc_dir, exc)
        self.node = connect_client(zmq.DEALER, creds, cfg["node_endpoint"],
                                   identity=self.worker_id.encode())
        self.blobs: dict[int, bytes] = {}
        self.funcs: dict[int, Any] = {}
        # Owners are ROUTER identities (bytes) or local links (StreamLink).
        self.owner_host: dict[Any, str] = {}
        self.owner_of: dict[Any, str] = {}  # the owner id each peer said it is
        self.queue: deque[_Task] = deque()
        # Results not sent yet. A deque: the running thread appends without the lock while
        # the flusher may be taking earlier ones out.
        self.done: deque[_Done] = deque()
        self.active = 0  # tasks running and not blocked in get
        self.threads = 1  # threads that can lead (the main one and followers)
        self.flush_armed = False
        self.flush_wake = threading.Event()
        self.local = threading.local()  # .task = (owner, task id) of this thread's task
        self.seq = 0
        self.host = host_id()
        self.dropped_frames = 0
        self.tasks_run = 0
        # Cancelling (see _cancel): the task each thread runs now (None between tasks);
        # tasks to skip when their turn comes (oldest first, bounded); a count of
        # cancels of running tasks; threads whose task waits in get, and those of them
        # whose task was cancelled meanwhile (it raises at its next look).
        self.running: dict[int, _Task | None] = {}
        self.cancelled: dict[tuple[Any, int], None] = {}
        self.cancel_epoch = 0
        self.blocked_threads: set[int] = set()
        self.cancel_flags: set[int] = set()

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        """Announce readiness, then serve until the node manager goes away."""
        with self.lock:
            self.loop.add_reader(self.router, self._drain)
            self.loop.add_reader(self.node, self._on_node)
            self._send_node(encode_control(MsgType.WORKER_READY, {
                "worker_id": self.worker_id, "address": self.address,
                "local_address": self.local_address, "pid": os.getpid()}))
        threading.Thread(target=self._flusher, name="iris-flusher", daemon=True).start()
        threading.Thread(target=_exit_with_parent, name="iris-parent", daemon=True).start()
        try:
            while not self.loop.stopped:
                self.loop.run(work=self._run_queue)
        finally:
            with self.lock:
                self.close_sockets()

    def close_sockets(self) -> None:
        """Close every socket and link of this worker (lock held)."""
        self.router.close(0)
        self.node.close(0)
        for link in list(self.links):
            link.close()
        self.links.clear()
        if self.listener is not None:
            self.listener.close()

    def _on_node(self) -> None:
        while True:
            try:
                frames = self.node.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msgs = decode_frames(frames, self.max_frame)
            except ProtocolError as exc:
                log.warning("dropped a malformed frame from the node manager: %s", exc)
                continue
            for m in msgs:
                if m.type == MsgType.SHUTDOWN:
                    self.loop.stop()
                elif m.type == MsgType.EVENT:
                    self._node_event(m)

    def _node_event(self, m: Message) -> None:
        """An event the head sent every worker, through our node manager."""
        try:
            body = decode_control(m)
        except ProtocolError as exc:
            log.warning("dropped a malformed event from the node manager: %s", exc)
            return
        if body.get("kind") == "actor_gone" and isinstance(body.get("actor_id"), str):
            drop_actor(body["actor_id"])  # (killed while the head made it again)
            return
        owner = body.get("owner")
        if not isinstance(owner, str) or not owner:
            return
        if body.get("kind") == "client_gone":
            dropped = drop_actors_of(owner)
            if dropped:
                log.info("dropped %d actor(s) of client %s, which is gone", dropped, owner)
        elif body.get("kind") == "client_back":
            owner_back(owner)

    def _send_node(self, frames: list[Any]) -> None:
        self.node.send_multipart(frames)
        self.loop.sent(self.node)

    # ------------------------------------------------------------------ running tasks
    def _run_queue(self) -> None:
        """Run queued tasks on this thread while it leads (called without the lock).

        The thread takes every queued task at once and runs them without the lock; should
        one block in get, the rest go back to the queue for the next leader (see
        :meth:`task_blocked`). A lone result is sent at once; during a burst results
        gather, and the flusher thread sends them within _BATCH_S should a long task follow.
        """
        me = threading.get_ident()
        lock, queue, loop, done, local = self.lock, self.queue, self.loop, self.done, self.local
        getrefcount = sys.getrefcount
        while True:
            with lock:
                if loop.leader != me or not queue or self.active:
                    return
                batch = queue.copy()
                queue.clear()
                self.active += 1
            local.rest = batch
            while batch:
                task = batch.popleft()
                local.task = task
                outcome, exec_ns, region = self._execute(task, me)
                local.task = None
                if region is not None and getrefcount(region) > 2:
                    with lock:
                        self._kept(task[0], task[1], region)  # the task kept some of it
                region = None
                done.append((task[0], task[1], exec_ns, outcome))
                if loop.leader != me:
                    break  # it blocked in get: its batch went back to the queue
                if batch and not self.flush_armed:
                    # More to run: should the next task run long, the flusher sends what is
                    # done meanwhile (another task may wait for it).
                    self.flush_armed = True
                    self.flush_wake.set()
            local.rest = None
            with lock:
                self.active -= 1
                if loop.leader != me:
                    # It gave the lead away; the leader may be busy with a long task, so
                    # send the result from here (the lock allows it), and wake the leader:
                    # with this task done it may run the next one.
                    self._flush()
                    if queue:
                        loop.call_soon_threadsafe(_nothing)
                    return
                if not queue:
                    self._flush()
                elif not self.flush_armed:
                    self.flush_armed = True
                    self.flush_wake.set()

    def _flusher(self) -> None:
        """Send results that gathered during a burst if the burst's next task runs long;
        and while a task runs long, read what came meanwhile (a task's thread leads the
        reactor, so nobody else would until it is done): a cancel must reach it."""
        while not self.loop.stopped:
            if not self.flush_wake.wait(_WATCH_S):
                leader = self.loop.leader
                if leader is not None and self.running.get(leader) is not None:
                    with self.lock:
                        if not self.loop.stopped:
                            self.loop.poll_now()
                continue
            self.flush_wake.clear()
            if self.loop.stopped:
                return
            threading.Event().wait(_BATCH_S)
            with self.lock:
                self.flush_armed = False
                if self.done and not self.loop.stopped:
                    self._flush()

    def _follower(self) -> None:
        """A thread that leads when the leader's task blocks in get; leaves when spare."""
        while not self.loop.stopped:
            self.loop.run(work=self._run_queue)
            with self.lock:
                if self.loop.parked() >= _SPARE_EXECUTORS:
                    self.threads -= 1
                    return

    def task_blocked(self, blocked: bool) -> bool:
        """Called by a task's thread as it starts (True) or stops (False) waiting in get.

        A blocked task gives up the worker: if its thread leads, the lead passes to a
        parked thread (a new one when none is parked) which carries on with the queue.
        Its owner is told, so that it stops counting the task against this worker.
        Returns True when the task was cancelled while it waited (on False only).
        """
        task = getattr(self.local, "task", None)
        if task is None:
            return False
        me = threading.get_ident()
        peer, task_id = task[0], task[1]
        frames = encode_control(MsgType.REQUEST, {"op": "blocked", "task_id": task_id,
                                                   "blocked": blocked})
        with self.lock:
            self._send(peer, frames)
            if blocked:
                self.blocked_threads.add(me)
                rest = getattr(self.local, "rest", None)
                if rest:  # the rest of its batch: the next leader runs it meanwhile
                    self.queue.extendleft(reversed(rest))
                    rest.clear()
                self._flush()  # what it waits for may be among the results done here
                self.active -= 1
                if self.loop.leader == threading.get_ident():
                    self.loop.abdicate()
                    if not self.loop.parked():
                        self.threads += 1
                        threading.Thread(target=self._follower, name="iris-executor",
                                         daemon=True).start()
                elif self.queue:
                    self.loop.call_soon_threadsafe(_nothing)  # the leader runs the queue
                return False
            self.active += 1
            self.blocked_threads.discard(me)
            if me in self.cancel_flags:
                self.cancel_flags.discard(me)
                return True
            return False

    def _send(self, peer: Any, frames: list[Any]) -> None:
        """Send to an owner: a ROUTER identity (bytes), or a local link."""
        if type(peer) is not bytes:
            peer.send_multipart(frames)  # a closed link drops it: its owner is gone
            return
        try:
            self.router.send_multipart([peer, *frames], copy=False)
        except zmq.ZMQError as exc:  # the owner went away: nobody reads this any more
            log.info("dropped a message for a departed owner: %s", exc)
        self.loop.sent(self.router)

    def _drain(self) -> None:
        drain_router(self.router, self.max_frame, self._handle, self._dropped)

    def _on_link(self, link: StreamLink) -> None:
        """Serve what a local link brought (lock held)."""
        for frames in link.recv_messages():
            try:
                for m in decode_frames(frames, self.max_frame):
                    self._handle(link, m)
            except ProtocolError as exc:
                self._dropped(link, exc)
        if link.closed:
            self.links.discard(link)
            self.owner_host.pop(link, None)
            self.owner_of.pop(link, None)

    def _dropped(self, peer: Any, exc: ProtocolError) -> None:
        self.dropped_frames += 1
        log.warning("dropped a malformed message from %r: %s", peer, exc)

    def _handle(self, peer: Any, m: Any) -> None:
        t = m.type
        if t == MsgType.PLAIN_TASKS:
            ids, fids, nrets, kinds, datas = decode_plain_tasks(m)
            if _ARENA in kinds:
                datas = [d if k == _INLINE else Value(k, d, ()) for k, d in zip(kinds, datas)]
            self.queue.extend(zip(repeat(peer), ids, fids, nrets, datas, repeat(())))
        elif t == MsgType.TASKS:
            self.queue.extend((peer, r.task_id, r.func_id, r.num_returns, _args(r.args),
                               r.resolved) for r in decode_tasks(m))
        elif t == MsgType.DEFINE:
            func_id, blob = decode_define(m)
            self.blobs[func_id] = blob
        elif t == MsgType.REQUEST:
            body = decode_control(m)
            if body.get("op") == "owner":
                self.owner_host[peer] = str(body.get("host", ""))
                if isinstance(body.get("owner"), str):
                    self.owner_of[peer] = body["owner"]
            elif body.get("op") == "cancel" and type(body.get("task_id")) is int:
                self._cancel(peer, body["task_id"], body.get("force") is True)
            elif body.get("op") == "stats":
                self._send(peer, encode_control(MsgType.REPLY, {
                    "dropped_frames": self.dropped_frames, "tasks_run": self.tasks_run,
                    "queued": len(self.queue)}, m.request_id))
        elif t == MsgType.PING:
            self._send(peer, encode_control(MsgType.PONG, {}))
        else:
            raise ProtocolError(f"a worker does not take message type 0x{t:02x}")

    def _cancel(self, peer: Any, task_id: int, force: bool) -> None:
        """The task's owner cancelled it (lock held). Not started: it is skipped when its
        turn comes. Running: an interrupt is raised in its thread at its next bytecode (a
        task waiting in get is told at a safe point of its wait instead), or, with
        ``force``, this process exits (its node starts another; the owners retry the
        other tasks that were running here). Actor calls are not cancelled (their actor
        would wait for ever for the call's turn to end)."""
        self.cancelled[(peer, task_id)] = None  # looked at as the task starts
        while len(self.cancelled) > _MAX_CANCELLED:  # (tasks done already, the oldest)
            del self.cancelled[next(iter(self.cancelled))]
        ident, task = next(((i, t) for i, t in list(self.running.items())
                            if t is not None and t[0] == peer and t[1] == task_id),
                           (0, None))
        if task is None or isinstance(self.funcs.get(task[2]), (CallActor, CreateActor)):
            return  # not running (queued, or over)
        if force:
            log.warning("task %d cancelled with force: this worker exits", task_id)
            self._flush()
            os._exit(_CANCELLED_EXIT)
        # First the epoch, then the live look: a thread that cleared its entry before the
        # look sees the new epoch and clears what we raise (see _execute, _disarm).
        self.cancel_epoch += 1
        if ident in self.blocked_threads:
            self.cancel_flags.add(ident)  # its wait raises at its next look
        elif self.running.get(ident) is task:
            _raise_in(ident, _TaskInterrupt)

    def cancel_pending(self) -> bool:
        """Whether the task of the calling thread, waiting in get, was cancelled."""
        me = threading.get_ident()
        if me in self.cancel_flags:
            self.cancel_flags.discard(me)
            return True
        return False

    def _flush(self) -> None:
        """Send every finished result, batched per owner (lock held): lone small values in
        plain (columnar) batches, the others in batches of records."""
        done = self.done
        if not done:
            return
        by_peer: dict[Any, tuple[list[tuple[int, int, int, bytes]], list[ResultRecord]]] = {}
        for _ in range(len(done)):  # what the running thread appends meanwhile waits
            peer, task_id, exec_ns, outcome = done.popleft()
            plains, records = by_peer.get(peer) or by_peer.setdefault(peer, ([], []))
            if type(outcome) is bytes:
                plains.append((task_id, exec_ns, _INLINE, outcome))
            elif len(outcome) == 1 and not outcome[0].buffers and outcome[0].kind in (
                    _INLINE, _ERROR):
                plains.append((task_id, exec_ns, outcome[0].kind, bytes(outcome[0].data)))
            else:
                records.append(ResultRecord(task_id, outcome, exec_ns))
        budget = self.max_frame // 2
        for peer, (plains, records) in by_peer.items():
            # For an owner on this host every result is under the inline threshold (larger
            # ones are in shared memory), so a batch's size is bounded without a look.
            bound = self.threshold if self.owner_host.get(peer) == self.host else 0
            for run in chunk_by_size(plains, budget, plain_result_size,
                                     bound and bound + plain_result_size((0, 0, 0, b""))):
                if len(run) == 1:  # a lone result packs cheaper as a record than as columns
                    tid, exec_ns, kind, data = run[0]
                    records.insert(0, ResultRecord(tid, [Value(kind, data, ())], exec_ns))
                elif run:
                    self._send(peer, encode_plain_results(run))
            if not records:
                continue
            for chunk in chunk_by_size(records, budget, _result_size, bound):
                self._send_results(peer, chunk)

    def _send_results(self, peer: Any, batch: Sequence[ResultRecord]) -> None:
        """Send a batch of results; one that cannot be sent (too many buffers for one
        message, say) becomes an error for its own task, not a crash of the worker."""
        try:
            self._send(peer, encode_results(batch))
            return
        except (ValueError, TypeError, ProtocolError) as exc:
            if len(batch) > 1:
                for one in batch:
                    self._send_results(peer, [one])
                return
            error = exc
        log.warning("a result of task %x could not be sent: %s", batch[0].task_id, error)
        # (The lists of refs riding with it still go: their holds must be balanced.)
        riders = [v for v in batch[0].values if v.kind in (ValueKind.REFS, ValueKind.KEPT)]
        failed = ResultRecord(batch[0].task_id, [error_value(ProtocolError(
            f"the task's result could not be sent to its owner: {error}")), *riders],
            batch[0].exec_ns)
        self._send(peer, encode_results([failed]))

    # ------------------------------------------------------------------ tasks
    def _function(self, func_id: int) -> Any:
        fn = self.funcs.get(func_id)
        if fn is None:
            blob = self.blobs.get(func_id)
            if blob is None:
                raise LookupError(f"function {func_id:x} was never sent to worker "
                                  f"{self.worker_id}")
            fn = self.funcs[func_id] = pickle.loads(blob)
        return fn

    def _kept(self, peer: Any, task_id: int, region: Any) -> None:
        """A task kept (views of) arguments it read in place from its owner's arena: tell
        the owner not to reuse them, and tell it again when the last view is gone."""
        self._send(peer, encode_control(MsgType.REQUEST, {
            "op": "arena", "task_id": task_id, "kept": True}))
        weakref.finalize(region, self._arena_released, peer, self.owner_of.get(peer),
                         task_id)

    def _arena_released(self, peer: Any, owner: str | None, task_id: int) -> None:
        """(A finalizer: any thread, any time.) The views of a kept argument are gone."""
        frames = encode_control(MsgType.REQUEST, {"op": "arena", "task_id": task_id,
                                                  "kept": False})
        self.loop.call_soon_threadsafe(partial(self._send_to_owner, peer, owner, frames))

    def _send_to_owner(self, peer: Any, owner: str | None, frames: list[Any]) -> None:
        """Send to ``peer``, or, if that local link closed meanwhile (its owner linked
        again), to the owner's new link (lock held)."""
        if getattr(peer, "closed", False) and owner is not None:
            peer = next((p for p, o in self.owner_of.items()
                         if o == owner and not getattr(p, "closed", False)), peer)
        self._send(peer, frames)

    def _execute(self, task: _Task, me: int) -> tuple[Any, int, Any]:
        """Run one task on thread ``me``; returns its outcome (see ``_Done``), its run time
        and, if its arguments were read in place from an arena, the region they view (to
        see whether the task kept any of them)."""
        t0 = time.perf_counter_ns()
        self.tasks_run += 1
        region = None
        peer, task_id, func_id, num_returns, a, resolved = task
        running = self.running
        noted: list[tuple[str, int]] = []
        args: Any = None
        kwargs: Any = None
        # From here until the task's call is over, a cancel of it interrupts this thread
        # (see _cancel): the entry first, then the look at the tasks cancelled already.
        epoch, running[me] = self.cancel_epoch, task
        try:
            try:
                fn = self.funcs.get(func_id) or self._function(func_id)
                if self.cancelled and (peer, task_id) in self.cancelled and not isinstance(
                        fn, (CallActor, CreateActor)):
                    self.cancelled.pop((peer, task_id), None)
                    raise _TaskInterrupt  # cancelled before it started
                if type(a) is bytes and a == _NO_ARGS:
                    result = fn()  # the commonest call of all: nothing to unpickle
                else:
                    try:
                        note_refs(noted)  # (refs in the arguments: did the task keep any?)
                        if type(a) is bytes:
                            args, kwargs = loads(a)
                        elif a.kind == _ARENA:
                            try:
                                header, views, region = view_arena(a.data)
                            except (OSError, ValueError) as err:
                                raise ObjectLostError(f"arguments in a shared-memory arena "
                                                      f"unreadable: {err}") from None
                            args, kwargs = loads(header, views)
                            del views
                        else:
                            args, kwargs = from_value(a)
                        if resolved:
                            args, kwargs = _substitute(args, kwargs, resolved)
                    finally:
                        note_refs(None)
                    result = fn(*args, **kwargs)
            finally:
                running[me] = None
                if self.cancel_epoch != epoch:
                    self._disarm(me, (peer, task_id))
            if num_returns == 1 and (type(result) in _SCALARS or (
                    type(result) in _SHORT and len(result) < 4096)):
                # Nothing inside it to look for (refs, buffers), nothing large.
                outcome: Any = pickle.dumps(result, 5)
            else:
                outcome = self._result_values(peer, num_returns, result)
        except _TaskInterrupt:
            outcome = [error_value(TaskCancelledError("the task was cancelled"))]
        except BaseException as exc:  # noqa: BLE001  user code may raise anything
            # Skip _execute's own frame when the error came from the user's function.
            user = exc.__traceback__ is not None and exc.__traceback__.tb_next is not None
            outcome = [error_value(exc, 1 if user else 0)]
        if noted:
            args = kwargs = result = None  # (only what the task kept holds them now)
            kept = kept_refs(noted)
            if kept:
                outcome = [*([Value(_INLINE, outcome, ())] if type(outcome) is bytes
                             else outcome),
                           Value(ValueKind.KEPT, json.dumps([list(k) for k in kept]).encode())]
        return outcome, time.perf_counter_ns() - t0, region

    def _disarm(self, me: int, key: tuple[Any, int]) -> None:
        """A cancel came while this thread ran a task: once the cancelling thread is done
        (the lock), clear a cancellation not delivered yet, so that it cannot go off in the
        code that follows the task (still inside its error handler if it does go off), and
        forget the task's cancel."""
        with self.lock:
            _raise_in(me, None)
            self.cancel_flags.discard(me)
            self.cancelled.pop(key, None)

    def _result_values(self, peer: Any, n: int, result: Any) -> list[Value]:
        if n == 1:
            parts = [result]
        else:
            try:
                parts = list(result)
            except TypeError:
                raise TypeError(f"task declared num_returns={n} but returned a "
                                f"{type(result).__name__}, which is not a sequence") from None
            if len(parts) != n:
                raise ValueError(f"task declared num_returns={n} but returned {len(parts)} "
                                 f"values")
        same_host = self.owner_host.get(peer) == self.host
        values = []
        leaving: list[tuple[Any, int]] = []  # (ref, return index) of refs inside the result
        for idx, part in enumerate(parts):
            with collect_refs() as refs:
                header, buffers = dumps(part)
            leaving += [(ref, idx) for ref in refs]
            name = None
            size = len(header) + nbytes(buffers)
            if same_host and size >= self.threshold:
                self.seq += 1
                name = f"iris-{self.cluster_id}-{self.worker_id}-{self.seq}"
            elif size > self.max_frame:
                raise ValueError(f"the result is {size} bytes, more than max_frame_bytes="
                                 f"{self.max_frame} allows on the wire to its owner's host")
            v = pack(header, buffers, self.threshold, name)
            if v.kind == ValueKind.INLINE and v.buffers:
                # A snapshot: the result goes out later (with its batch), and the task's
                # next call may change the array it returned (an actor's state, say).
                v.buffers = [bytes(b) for b in v.buffers]
            values.append(v)
        if leaving:  # pinned only now that every part is packed: no pin without its release
            pinned = export_refs([ref for ref, _ in leaving])
            values.append(Value(ValueKind.REFS, json.dumps([
                [ref.owner, ref.oid, idx, pin] for (ref, idx), pin in zip(leaving, pinned)
            ]).encode()))
        return values


def _nothing() -> None:
    pass


def _raise_in(ident: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in thread ``ident`` at its next bytecode (None: clear a pending one)."""
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None)


def _exit_with_parent() -> None:
    """Leave the moment our node manager is gone (EOF on stdin), even mid-task: the thread
    that leads may be running a task that never ends."""
    fd = sys.stdin.fileno()
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _result_size(rec: ResultRecord) -> int:
    return sum(len(v.data) for v in rec.values)


def _args(v: Value) -> Any:
    """A task's arguments as the queue holds them: the pickled bytes when they are inline
    without buffers (so a no-argument call is recognized by them), else the Value."""
    if v.kind == _INLINE and not v.buffers:
        return v.data if type(v.data) is bytes else bytes(v.data)
    return v


def _substitute(args: tuple[Any, ...], kwargs: dict[str, Any], resolved: Sequence[Value]
                ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    cache: dict[int, Any] = {}

    def value(i: int) -> Any:
        if i not in cache:
            cache[i] = from_value(resolved[i], "an argument's task")
        return cache[i]

    args = tuple(value(a.index) if isinstance(a, ResolvedArg) else a for a in args)
    if kwargs:
        kwargs = {k: value(v.index) if isinstance(v, ResolvedArg) else v
                  for k, v in kwargs.items()}
    return args, kwargs


def main() -> None:
    """Entry point of ``python -m iris.worker``: config as one JSON line on stdin."""
    line = sys.stdin.readline()
    if not line:
        return
    cfg = json.loads(line)
    logging.basicConfig(level=os.environ.get("IRIS_LOG_LEVEL", "WARNING").upper(),
                        format=f"[iris worker {cfg.get('worker_id')}] %(levelname)s %(message)s")
    _context.worker_config = cfg
    for path in reversed(cfg.get("sys_path") or []):
        if path not in sys.path:
            sys.path.insert(1, path)
    worker = WorkerProcess(cfg)
    _context.block_hook = worker.task_blocked
    _context.cancel_pending = worker.cancel_pending
    worker.run()
    # Leave at once: a task may have left threads or pools behind that would hold us up.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
