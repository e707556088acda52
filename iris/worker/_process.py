"""The worker process: receives task batches, runs them, returns result batches.

::

    owner (driver or another worker)            worker process (this module)
    DEALER ── TASKS / DEFINE / owner hello ──▶  ROUTER ──▶ queue ──▶ run task ──┐
           ◀────────── RESULTS batch ────────────────────────────────────────────┘
    node manager  ◀── WORKER_READY ── DEALER       stdin: closes when the node manager dies

One thread runs everything: between tasks it drains the socket, and it sends the results
gathered so far whenever the queue empties or a millisecond has passed since the oldest
unsent one (batching without a timer). A task's code runs in this same thread, so a task
that calls ``iris.get`` inside the worker reaches the cluster through its own client.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import deque
from typing import Any

import zmq

from iris import _context
from iris._protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    MsgType,
    ResultRecord,
    TaskRecord,
    Value,
    decode_control,
    decode_define,
    decode_frames,
    decode_tasks,
    encode_control,
    encode_results,
)
from iris._refs import ResolvedArg
from iris._serialization import dumps
from iris._store import host_id
from iris._transport import Credentials, Loop, bind_server, connect_client
from iris._values import DEFAULT_INLINE_THRESHOLD, error_value, from_value, pack
from iris.exceptions import ProtocolError

__all__ = ["WorkerProcess", "main"]

log = logging.getLogger("iris.worker")

_FLUSH_AFTER_S = 0.001


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
        self.pending: dict[bytes, list[ResultRecord]] = {}
        self.running: list[tuple[bytes, int]] = []  # (owner, task id), innermost last
        self.oldest = 0.0
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
        self._run_queue()

    def task_blocked(self, blocked: bool) -> None:
        """Tell the owner of the running task that it waits in ``get`` (or resumed)."""
        if not self.running:
            return
        peer, task_id = self.running[-1]
        try:
            self.router.send_multipart([peer, *encode_control(MsgType.REQUEST, {
                "op": "blocked", "task_id": task_id, "blocked": blocked})])
        except zmq.ZMQError:
            pass

    def serve_while_waiting(self, timeout_s: float, wake_fd: int) -> None:
        """Serve this worker while a task waits in ``iris.get`` (see ``_context``).

        Runs one queued task (nested on the stack), or else waits up to ``timeout_s`` for
        a message or for ``wake_fd`` (an object the waiter may want settled). Returns after
        either, so that the waiter can look at its objects again.
        """
        self._flush()
        if not self.queue:
            poller = zmq.Poller()
            poller.register(self.router, zmq.POLLIN)
            poller.register(wake_fd, zmq.POLLIN)
            if not poller.poll(timeout_s * 1000):
                return
            self._drain()
        if self.queue:
            peer, rec = self.queue.popleft()
            result = self._execute(peer, rec)  # may nest and flush: take the list after
            self.pending.setdefault(peer, []).append(result)
            self._flush()

    def _drain(self) -> None:
        router = self.router
        while True:
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            peer = frames[0].bytes
            try:
                msgs = decode_frames([f.buffer for f in frames[1:]], self.max_frame)
                for m in msgs:
                    self._handle(peer, m)
            except ProtocolError as exc:
                self.dropped_frames += 1
                log.warning("dropped a malformed message from %r: %s", peer, exc)

    def _handle(self, peer: bytes, m: Any) -> None:
        t = m.type
        if t == MsgType.TASKS:
            self.queue.extend((peer, rec) for rec in decode_tasks(m))
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

    def _run_queue(self) -> None:
        queue = self.queue
        pending = self.pending
        while queue:
            peer, rec = queue.popleft()
            result = self._execute(peer, rec)
            batch = pending.get(peer)
            if batch is None:
                pending[peer] = batch = []
                if not self.oldest:
                    self.oldest = time.perf_counter()
            batch.append(result)
            if time.perf_counter() - self.oldest > _FLUSH_AFTER_S:
                self._flush()
                self._drain()
        self._flush()

    def _flush(self) -> None:
        """Send every finished result. Results are shared by nested ``_run_queue`` frames
        (see :meth:`serve_while_waiting`), so a blocked task never holds back others'."""
        pending = self.pending
        self.oldest = 0.0
        for peer, batch in pending.items():
            frames = encode_results(batch)
            try:
                self.router.send_multipart([peer, *frames], copy=False)
            except zmq.ZMQError as exc:  # the owner went away: its results have no reader
                log.info("dropped %d results for a departed owner: %s", len(batch), exc)
        pending.clear()

    # ------------------------------------------------------------------ tasks
    def _function(self, func_id: int) -> Any:
        fn = self.funcs.get(func_id)
        if fn is None:
            blob = self.blobs.get(func_id)
            if blob is None:
                raise LookupError(f"function {func_id:x} was never sent to worker "
                                  f"{self.worker_id}")
            import cloudpickle  # noqa: F401  (loads by-value functions' helpers)
            import pickle

            fn = self.funcs[func_id] = pickle.loads(blob)
        return fn

    def _execute(self, peer: bytes, rec: TaskRecord) -> ResultRecord:
        t0 = time.perf_counter_ns()
        self.tasks_run += 1
        self.running.append((peer, rec.task_id))
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
        finally:
            self.running.pop()
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
            if same_host and buffers:
                self.seq += 1
                name = f"iris-{self.cluster_id}-{self.worker_id}-{self.seq}"
            values.append(pack(header, buffers, self.threshold, name))
        return values


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
    logging.basicConfig(level=os.environ.get("IRIS_LOG_LEVEL", "WARNING"),
                        format=f"[iris worker {cfg.get('worker_id')}] %(levelname)s %(message)s")
    _context.worker_config = cfg
    for path in reversed(cfg.get("sys_path") or []):
        if path not in sys.path:
            sys.path.insert(1, path)
    worker = WorkerProcess(cfg)
    _context.wait_hook = worker.serve_while_waiting
    _context.block_hook = worker.task_blocked
    worker.run()
    # Leave at once: a task may have left threads or pools behind that would hold us up.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
