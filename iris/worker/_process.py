"""The worker process: receives task batches, runs them, returns result batches.

::

    owner (driver or another worker)            worker process (this module)
    DEALER ── TASKS / DEFINE / owner hello ──▶  ROUTER ─(main thread)─▶ queue
           ◀────────── RESULTS batch ─────────── ROUTER ◀─ done ◀─ executor thread(s)
    node manager  ◀── WORKER_READY ── DEALER       stdin: closes when the node manager dies

The main thread owns every socket: it drains task batches into the queue and sends the
results that executors leave in ``done``, all of them at once each time it wakes (batching
without a timer). Executor threads run the tasks, one at a time: an executor takes a task
only while no other runs one. A task that blocks in ``iris.get`` gives up that slot (its
owner is told, so that it stops counting the task as load) and another executor carries on
with the queue; the blocked task resumes on its own thread when its values arrive. So tasks
that wait for other tasks never deadlock the worker, however they nest.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import threading
import time
from collections import deque
from typing import Any

# Imported at boot, which overlaps the daemon's own start, rather than by the first task's
# unpickling, which is on the path to the first result.
import cloudpickle  # noqa: F401
import zmq

from iris import _context
from iris._protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    MsgType,
    ResultRecord,
    TaskRecord,
    Value,
    chunk_by_size,
    decode_control,
    decode_define,
    decode_frames,
    decode_tasks,
    encode_control,
    encode_results,
)
from iris._refs import ResolvedArg
from iris._serialization import dumps, nbytes
from iris._store import host_id
from iris._transport import Credentials, Loop, bind_server, connect_client, drain_router
from iris._values import DEFAULT_INLINE_THRESHOLD, error_value, from_value, pack
from iris.exceptions import ProtocolError

__all__ = ["WorkerProcess", "main"]

log = logging.getLogger("iris.worker")

# Executor threads kept idle after a burst of tasks blocked in get; more are let go.
_SPARE_EXECUTORS = 2
# During a burst, results gather this long before the main thread sends them.
_BATCH_S = 0.001



class WorkerProcess:
    """State and loop of one worker process (internal type)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.worker_id: str = cfg["worker_id"]
        self.cluster_id: str = cfg["cluster_id"]
        self.threshold: int = cfg.get("inline_threshold", DEFAULT_INLINE_THRESHOLD)
        self.max_frame: int = cfg.get("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES)
        creds = Credentials.from_token(cfg["token"])
        self.loop = Loop()
        self.router, self.address = bind_server(
            zmq.ROUTER, creds, f"tcp://{cfg.get('bind_host', '127.0.0.1')}:0", self.max_frame)
        self.node = connect_client(zmq.DEALER, creds, cfg["node_endpoint"],
                                   identity=self.worker_id.encode())
        self.blobs: dict[int, bytes] = {}
        self.funcs: dict[int, Any] = {}
        self.owner_host: dict[bytes, str] = {}
        self.queue: deque[tuple[bytes, TaskRecord]] = deque()
        self.done: list[tuple[bytes, ResultRecord]] = []  # for the main thread to send
        self.cond = threading.Condition()  # guards queue, done, active, idle
        self.active = 0  # executors running a task that is not blocked
        self.idle = 0  # executors waiting for work
        self.flush_now = False  # a flush is queued on the main thread
        self.flush_later = False  # a flush is due within _BATCH_S
        self.local = threading.local()  # .task = (owner, task id) of this executor's task
        self.seq = 0
        self.host = host_id()
        self.dropped_frames = 0
        self.tasks_run = 0

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        """Announce readiness, then serve until the node manager goes away."""
        self.loop.add_reader(self.router, self._on_router)
        self.loop.add_reader(self.node, self._on_node)
        self.loop.add_reader(sys.stdin.fileno(), self._on_parent)
        self._start_executor()
        self.node.send_multipart(encode_control(MsgType.WORKER_READY, {
            "worker_id": self.worker_id, "address": self.address, "pid": os.getpid()}))
        try:
            self.loop.run()
        finally:
            self.router.close(0)
            self.node.close(0)

    def _on_parent(self) -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            self.loop.stop()  # our node manager is gone: so are we

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
            if any(m.type == MsgType.SHUTDOWN for m in msgs):
                self.loop.stop()

    def _on_router(self) -> None:
        self._drain()

    # ------------------------------------------------------------------ executors
    def _start_executor(self) -> None:
        """Start one more executor thread (with ``cond`` held, or before any run)."""
        self.idle += 1  # counted from now, so that nobody starts a second one for nothing
        threading.Thread(target=self._executor, name="iris-executor", daemon=True).start()

    def _executor(self) -> None:
        cond, queue = self.cond, self.queue
        while True:
            with cond:
                while not queue or self.active:
                    cond.wait()
                self.idle -= 1
                peer, rec = queue.popleft()
                self.active += 1
            self.local.task = (peer, rec.task_id)
            result = self._execute(peer, rec)
            self.local.task = None
            with cond:
                self.active -= 1
                self.done.append((peer, result))
                # A lone result goes out at once; during a burst (more tasks queued) the
                # main thread sends what has gathered a millisecond later, so that it wakes
                # once per batch, not once per task, and nothing waits behind a long task.
                if not queue:
                    schedule, self.flush_now = not self.flush_now, True
                    later = False
                else:
                    schedule = False
                    later, self.flush_later = not self.flush_later, True
                retire = self.idle >= _SPARE_EXECUTORS
                if not retire:
                    self.idle += 1
                if queue and not self.active:
                    cond.notify()
            if schedule:
                self.loop.call_soon_threadsafe(self._flush)
            elif later:
                self.loop.call_soon_threadsafe(
                    lambda: self.loop.call_later(_BATCH_S, self._flush))
            if retire:  # enough spare threads already (after a burst of blocked tasks)
                return

    def _wake_executor(self) -> None:
        """With ``cond`` held: if work waits and nothing runs, get an executor going
        (an idle one, or a new thread when every executor is blocked in a task)."""
        if self.queue and not self.active:
            if self.idle:
                self.cond.notify()
            else:
                self._start_executor()

    def task_blocked(self, blocked: bool) -> None:
        """Called by a task's thread as it starts (True) or stops (False) waiting in get.

        A blocked task gives up the worker's slot, so another executor runs the queue;
        its owner is told, so that it stops counting the task against this worker.
        """
        task = getattr(self.local, "task", None)
        if task is None:
            return
        with self.cond:
            if blocked:
                self.active -= 1
                self._wake_executor()
            else:
                self.active += 1
        peer, task_id = task
        frames = encode_control(MsgType.REQUEST, {"op": "blocked", "task_id": task_id,
                                                   "blocked": blocked})
        self.loop.call_soon_threadsafe(lambda: self._send(peer, frames))

    def _send(self, peer: bytes, frames: list[Any]) -> None:
        try:
            self.router.send_multipart([peer, *frames], copy=False)
        except zmq.ZMQError as exc:  # the owner went away: nobody reads this any more
            log.info("dropped a message for a departed owner: %s", exc)

    def _drain(self) -> None:
        drain_router(self.router, self.max_frame, self._handle, self._dropped)

    def _dropped(self, peer: bytes, exc: ProtocolError) -> None:
        self.dropped_frames += 1
        log.warning("dropped a malformed message from %r: %s", peer, exc)

    def _handle(self, peer: bytes, m: Any) -> None:
        t = m.type
        if t == MsgType.TASKS:
            records = decode_tasks(m)
            with self.cond:
                self.queue.extend((peer, rec) for rec in records)
                self._wake_executor()
        elif t == MsgType.DEFINE:
            func_id, blob = decode_define(m)
            self.blobs[func_id] = blob
        elif t == MsgType.REQUEST:
            body = decode_control(m)
            if body.get("op") == "owner":
                self.owner_host[peer] = str(body.get("host", ""))
            elif body.get("op") == "stats":
                self.router.send_multipart([peer, *encode_control(MsgType.REPLY, {
                    "dropped_frames": self.dropped_frames, "tasks_run": self.tasks_run,
                    "queued": len(self.queue)}, m.request_id)])
        elif t == MsgType.PING:
            self.router.send_multipart([peer, *encode_control(MsgType.PONG, {})])
        else:
            raise ProtocolError(f"a worker does not take message type 0x{t:02x}")

    def _flush(self) -> None:
        """Send every finished result, batched per owner (main thread)."""
        with self.cond:
            done, self.done = self.done, []
            self.flush_now = self.flush_later = False
        by_peer: dict[bytes, list[ResultRecord]] = {}
        for peer, result in done:
            by_peer.setdefault(peer, []).append(result)
        budget = self.max_frame // 2
        for peer, batch in by_peer.items():
            # For an owner on this host every result is under the inline threshold (larger
            # ones are in shared memory), so the batch's size is bounded without a look.
            if self.owner_host.get(peer) == self.host and len(batch) * self.threshold <= budget:
                self._send(peer, encode_results(batch))
                continue
            for chunk in chunk_by_size(batch, budget, _result_size):
                self._send(peer, encode_results(chunk))

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

    def _execute(self, peer: bytes, rec: TaskRecord) -> ResultRecord:
        t0 = time.perf_counter_ns()
        self.tasks_run += 1
        try:
            fn = self._function(rec.func_id)
            args, kwargs = from_value(rec.args)
            if rec.resolved:
                args, kwargs = _substitute(args, kwargs, rec.resolved)
            result = fn(*args, **kwargs)
            values = self._result_values(peer, rec, result)
        except BaseException as exc:  # noqa: BLE001  user code may raise anything
            # Skip _execute's own frame when the error came from the user's function.
            user = exc.__traceback__ is not None and exc.__traceback__.tb_next is not None
            values = [error_value(exc, 1 if user else 0)]
        return ResultRecord(rec.task_id, values, time.perf_counter_ns() - t0)

    def _result_values(self, peer: bytes, rec: TaskRecord, result: Any) -> list[Value]:
        n = rec.num_returns
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
        for part in parts:
            header, buffers = dumps(part)
            name = None
            size = len(header) + nbytes(buffers)
            if same_host and size >= self.threshold:
                self.seq += 1
                name = f"iris-{self.cluster_id}-{self.worker_id}-{self.seq}"
            elif size > self.max_frame:
                raise ValueError(f"the result is {size} bytes, more than max_frame_bytes="
                                 f"{self.max_frame} allows on the wire to its owner's host")
            values.append(pack(header, buffers, self.threshold, name))
        return values


def _result_size(rec: ResultRecord) -> int:
    return sum(len(v.data) for v in rec.values)


def _substitute(args: tuple[Any, ...], kwargs: dict[str, Any], resolved: list[Value]
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
    worker.run()
    # Leave at once: a task may have left threads or pools behind that would hold us up.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
