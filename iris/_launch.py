"""Starting and stopping the embedded local cluster from a driver (internal).

::

    driver ──Popen──▶ daemon (head + node manager) ──Popen×N──▶ worker processes
      stdin pipe ───────▶ (EOF = driver gone: the daemon stops, its workers follow)
      ready pipe ◀─────── {"address": ...} once the head listens

The driver does not wait for the workers: tasks submitted before any worker registers are
held by the driver's client and sent as soon as workers appear.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iris.exceptions import IrisError

if TYPE_CHECKING:
    from iris._transport import Credentials

__all__ = ["EmbeddedCluster", "PendingCluster", "begin_embedded", "start_embedded"]


@dataclass
class EmbeddedCluster:
    """A running embedded cluster: its daemon process and how to reach it (internal)."""

    proc: subprocess.Popen[bytes]
    address: str
    cluster_id: str
    creds: Credentials

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the daemon's stdin (it stops its workers and exits), then make sure."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class PendingCluster:
    """A daemon that is starting: its process and config are out; :meth:`ready` waits."""

    def __init__(self, proc: subprocess.Popen[bytes], ready_fd: int, cluster_id: str,
                 creds: Credentials, timeout_s: float) -> None:
        self.proc, self.ready_fd, self.cluster_id = proc, ready_fd, cluster_id
        self.creds, self.timeout_s = creds, timeout_s

    def abandon(self) -> None:
        """Stop the starting daemon (its workers follow) and release the pipe."""
        os.close(self.ready_fd)
        self.proc.kill()
        self.proc.wait()

    def ready(self) -> EmbeddedCluster:
        """Wait until the head listens.

        Raises:
            IrisError: the daemon exited or did not answer within the timeout.
        """
        try:
            line = _read_line(self.ready_fd, self.proc, self.timeout_s)
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            os.close(self.ready_fd)
        ready = json.loads(line)
        return EmbeddedCluster(self.proc, ready["address"], self.cluster_id, self.creds)


def begin_embedded(num_workers: int, *, inline_threshold: int | None = None,
                   max_frame_bytes: int | None = None, timeout_s: float = 30.0,
                   extra: dict[str, Any] | None = None) -> PendingCluster:
    """Start the daemon with ``num_workers`` workers; returns before it is ready.

    The daemon process starts first, with nothing but the standard library imported here,
    and forks its workers as soon as it runs; the credentials (which need ZeroMQ) and the
    configuration follow on its stdin, so the driver's imports overlap its start.
    """
    r, w = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "iris._boot", str(num_workers)],
                                stdin=subprocess.PIPE, pass_fds=(w,), close_fds=True)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    from iris._transport import Credentials

    creds = Credentials.generate()
    cluster_id = secrets.token_hex(4)
    cfg: dict[str, Any] = {
        "token": creds.token, "cluster_id": cluster_id, "num_workers": num_workers,
        "head": True, "watch_stdin": True, "ready_fd": w,
        # Workers see the driver's import path, so functions from the driver's own modules
        # (pickled by reference) import there too.
        "sys_path": [os.path.abspath(p) for p in sys.path if p],
    }
    if inline_threshold is not None:
        cfg["inline_threshold"] = inline_threshold
    if max_frame_bytes is not None:
        cfg["max_frame_bytes"] = max_frame_bytes
    cfg.update(extra or {})
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(cfg).encode() + b"\n")
        proc.stdin.flush()
    except BaseException:
        os.close(r)
        proc.kill()
        proc.wait()
        raise
    return PendingCluster(proc, r, cluster_id, creds, timeout_s)


def start_embedded(num_workers: int, **options: Any) -> EmbeddedCluster:
    """Start the daemon with ``num_workers`` workers and wait until its head listens.

    Raises:
        IrisError: the daemon exited or did not answer within the timeout.
    """
    return begin_embedded(num_workers, **options).ready()


def _read_line(fd: int, proc: subprocess.Popen[bytes], timeout_s: float) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout_s
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise IrisError(f"the local cluster did not start within {timeout_s:.0f} s")
        readable, _, _ = select.select([fd], [], [], left)
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:
                code = proc.wait()
                raise IrisError(f"the local cluster exited during start (exit code {code}); "
                                f"its error output is above")
            buf += chunk
    return buf.split(b"\n", 1)[0]
