"""The node manager: one per machine; spawns, watches and replaces worker processes.

::

    head  ◀── HELLO / REGISTER_WORKER / WORKER_EXITED / PING ──  node manager (DEALER)
          ── EVENT {reregister, client_gone} ──▶                   │
                                                                   │ ROUTER ◀── WORKER_READY
                                                                   │        ──▶ EVENT (relayed)
                                                                   │ Popen + pidfd per worker
                                                                   ▼
                                                   worker processes (stdin = death pipe)

A worker's exit is seen through its pidfd in the loop, so a crash is reported to the head
within one loop turn; the head tells every client, which retries the worker's tasks. Each
worker's stdin is a pipe the node manager holds open: if the node manager dies, however it
dies, the workers read EOF and exit. Shutdown closes those pipes, waits, then kills.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from iris._arena import remove_arenas_of
from iris._protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    Message,
    MsgType,
    decode_control,
    decode_frames,
    encode,
    encode_control,
)
from iris._store import host_id, remove_cluster_segments
from iris._transport import Credentials, Loop, bind_server, connect_client, drain_router
from iris.exceptions import ProtocolError
from iris.worker._spawn import spawn_worker_process

__all__ = ["NodeManager", "describe_exit"]

log = logging.getLogger("iris.node")

# A worker that dies within this many seconds of starting counts as crash-looping; its
# replacement waits RESPAWN_BACKOFF_S (doubling, capped) so a broken worker cannot spin.
_EARLY_DEATH_S = 2.0
_RESPAWN_BACKOFF_S = 0.2
_RESPAWN_BACKOFF_MAX_S = 10.0


def _dropped(_peer: bytes, exc: ProtocolError) -> None:
    log.warning("dropped a malformed message from a worker: %s", exc)


def _sweep_ipc_dirs() -> None:
    """Remove the Unix-socket directories of node managers that died without cleaning up
    (ours only: the name carries the pid, the directory our uid)."""
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        m = re.match(r"iris-[0-9a-f]+-ipc-(\d+)-", name)
        if m is None:
            continue
        path = os.path.join(tmp, name)
        try:
            if os.lstat(path).st_uid != os.getuid():
                continue
            os.kill(int(m.group(1)), 0)
            continue  # its node manager lives
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def describe_exit(returncode: int) -> str:
    """A human description of a process exit status (negative = killed by that signal)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (possibly out of memory)" if -returncode == signal.SIGKILL else ""
        return f"signal {name}{hint}"
    return f"exit code {returncode}"


@dataclass(slots=True)
class _Slot:
    worker_id: str
    proc: subprocess.Popen[bytes]
    pidfd: int
    started: float
    address: str = ""
    local_address: str = ""  # unix:// socket for clients on this machine
    info: dict[str, Any] = field(default_factory=dict)


class NodeManager:
    """Spawns ``num_workers`` worker processes and keeps that many alive (internal type)."""

    def __init__(self, loop: Loop, creds: Credentials, cfg: dict[str, Any],
                 prespawned: list[subprocess.Popen[bytes]] | None = None) -> None:
        self.prespawned = list(prespawned or [])
        self.loop = loop
        self.creds = creds
        self.cfg = cfg
        self.node_id: str = cfg["node_id"]
        self.cluster_id: str = cfg["cluster_id"]
        self.num_workers: int = cfg["num_workers"]
        self.heartbeat_s: float = cfg.get("heartbeat_s", 1.0)
        self.max_frame: int = cfg.get("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES)
        self.router, self.endpoint = bind_server(zmq.ROUTER, creds, "tcp://127.0.0.1:0",
                                                 self.max_frame)
        # Workers also listen on a Unix socket in this private directory (mode 0700), which
        # clients on this machine use: a round trip ~30 us shorter than TCP loopback.
        # CURVE stays on for those links too.
        _sweep_ipc_dirs()
        self.ipc_dir = tempfile.mkdtemp(prefix=f"iris-{self.cluster_id}-ipc-{os.getpid()}-")
        self.head = connect_client(zmq.DEALER, creds, cfg["head_endpoint"],
                                   identity=self.node_id.encode())
        self.slots: dict[str, _Slot] = {}
        self.spawned = 0
        self.backoff = _RESPAWN_BACKOFF_S
        self.closing = False
        # A node on another machine than its head (``iris start --worker``) stops when the
        # head has not answered its heartbeats for this long: the head died without telling
        # it, and nothing else would ever stop it. None (the default, and the embedded
        # cluster, whose head shares this process) never gives up.
        self.head_timeout_s: float | None = cfg.get("head_timeout_s")
        self.last_head_reply = time.monotonic()

    def start(self) -> None:
        """Register with the head and start every worker at once (they boot in parallel)."""
        self.loop.add_reader(self.router, self._on_router)
        self.loop.add_reader(self.head, self._on_head)
        self._hello()
        for _ in range(self.num_workers):
            self._spawn()
        self.loop.call_later(self.heartbeat_s, self._heartbeat)

    def _hello(self) -> None:
        self.head.send_multipart(encode_control(MsgType.HELLO, {
            "role": "node", "node_id": self.node_id, "host": host_id(),
            "num_workers": self.num_workers, "pid": os.getpid()}))

    def _reregister(self) -> None:
        """The head lost us (our lease ran out while we were cut off): register again,
        with every worker that is up, so that clients use them again."""
        log.warning("the head had given this node up: registering again")
        self._hello()
        for slot in self.slots.values():
            if slot.info:
                self.head.send_multipart(encode_control(MsgType.REGISTER_WORKER, slot.info))

    # ------------------------------------------------------------------ workers
    def _spawn(self) -> None:
        if self.closing:
            return
        self.spawned += 1
        worker_id = f"{self.node_id}-w{self.spawned}"
        cfg = {
            "worker_id": worker_id, "node_endpoint": self.endpoint,
            "head": self.cfg["head_endpoint"], "token": self.creds.token,
            "cluster_id": self.cluster_id, "bind_host": self.cfg.get("bind_host", "127.0.0.1"),
            "inline_threshold": self.cfg.get("inline_threshold"),
            "max_frame_bytes": self.max_frame, "sys_path": self.cfg.get("sys_path"),
            "ipc_dir": self.ipc_dir,
        }
        cfg = {k: v for k, v in cfg.items() if v is not None}
        proc = self.prespawned.pop() if self.prespawned else spawn_worker_process()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(cfg).encode() + b"\n")
        proc.stdin.flush()
        pidfd = os.pidfd_open(proc.pid)
        self.slots[worker_id] = _Slot(worker_id, proc, pidfd, time.monotonic())
        self.loop.add_reader(pidfd, lambda: self._on_exit(worker_id))

    def _on_exit(self, worker_id: str) -> None:
        slot = self.slots.pop(worker_id, None)
        if slot is None:
            return
        self.loop.remove_reader(slot.pidfd)
        os.close(slot.pidfd)
        code = slot.proc.wait()
        if slot.local_address.startswith("unix://"):  # a dead worker leaves its socket file
            with contextlib.suppress(OSError):
                os.unlink(slot.local_address[len("unix://"):])
        remove_arenas_of(self.cluster_id, slot.proc.pid)  # and maybe an arena of its own
        if slot.proc.stdin is not None:
            slot.proc.stdin.close()
        if self.closing:
            return
        reason = describe_exit(code)
        log.warning("worker %s (pid %d) died: %s; starting a replacement", worker_id,
                    slot.proc.pid, reason)
        self.head.send_multipart(encode_control(MsgType.WORKER_EXITED, {
            "worker_id": worker_id, "reason": reason, "pid": slot.proc.pid}))
        if time.monotonic() - slot.started < _EARLY_DEATH_S:
            delay, self.backoff = self.backoff, min(self.backoff * 2, _RESPAWN_BACKOFF_MAX_S)
            self.loop.call_later(delay, self._spawn)
        else:
            self.backoff = _RESPAWN_BACKOFF_S
            self._spawn()

    def _on_router(self) -> None:
        drain_router(self.router, self.max_frame, self._from_worker, _dropped)

    def _from_worker(self, _peer: bytes, m: Message) -> None:
        if m.type != MsgType.WORKER_READY:
            raise ProtocolError(f"node manager got unexpected type 0x{m.type:02x}")
        self._worker_ready(decode_control(m))

    def _worker_ready(self, body: dict[str, Any]) -> None:
        slot = self.slots.get(str(body.get("worker_id")))
        if slot is None:
            return
        slot.address = str(body["address"])
        slot.local_address = str(body.get("local_address", ""))
        slot.info = {"worker_id": slot.worker_id, "address": slot.address,
                     "local_address": slot.local_address,
                     "node_id": self.node_id, "host": host_id(), "pid": slot.proc.pid,
                     "node_endpoint": self.endpoint}
        self.head.send_multipart(encode_control(MsgType.REGISTER_WORKER, slot.info))

    # ------------------------------------------------------------------ head
    def _on_head(self) -> None:
        while True:
            try:
                frames = self.head.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.last_head_reply = time.monotonic()
            try:
                msgs = decode_frames(frames, self.max_frame)
            except ProtocolError as exc:
                log.warning("dropped a malformed message from the head: %s", exc)
                continue
            for m in msgs:
                if m.type == MsgType.SHUTDOWN:
                    self.loop.stop()
                elif m.type == MsgType.EVENT:
                    try:
                        body = decode_control(m)
                    except ProtocolError as exc:
                        log.warning("dropped a malformed event from the head: %s", exc)
                        continue
                    if body.get("kind") == "reregister":
                        self._reregister()
                    elif body.get("kind") in ("client_gone", "client_back", "actor_gone"):
                        self._tell_workers(m)

    def _tell_workers(self, event: Message) -> None:
        """Pass a head's event on to every worker of this node (those not connected yet,
        or gone, miss it: they hold nothing it is about)."""
        frames = encode_control(MsgType.EVENT, decode_control(event))
        for worker_id in list(self.slots):
            try:
                self.router.send_multipart([worker_id.encode(), *frames], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass

    def _heartbeat(self) -> None:
        if self.closing:
            return
        silent = time.monotonic() - self.last_head_reply
        if self.head_timeout_s is not None and silent > self.head_timeout_s:
            log.error("no answer from the head at %s for %.0f s: stopping this node",
                      self.cfg["head_endpoint"], silent)
            self.loop.stop()
            return
        self.head.send_multipart(encode(MsgType.PING))
        self.loop.call_later(self.heartbeat_s, self._heartbeat)

    # ------------------------------------------------------------------ shutdown
    def close(self, grace_s: float = 2.0) -> None:
        """Stop every worker (EOF on stdin, then SIGKILL after ``grace_s``) and clean up."""
        self.closing = True
        for slot in self.slots.values():
            if slot.proc.stdin is not None:
                try:
                    slot.proc.stdin.close()
                except OSError:
                    pass
        deadline = time.monotonic() + grace_s
        for slot in list(self.slots.values()):
            try:
                slot.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                slot.proc.kill()
                slot.proc.wait()
            os.close(slot.pidfd)
        self.slots.clear()
        for proc in self.prespawned:  # started but never configured: EOF ends them
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait()
        self.prespawned.clear()
        remove_cluster_segments(self.cluster_id)
        shutil.rmtree(self.ipc_dir, ignore_errors=True)
        self.router.close(0)
        self.head.close(0)
