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
from typing import Any

from iris._transport import Credentials
from iris.exceptions import IrisError

__all__ = ["EmbeddedCluster", "start_embedded"]


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


def start_embedded(num_workers: int, *, inline_threshold: int | None = None,
                   max_frame_bytes: int | None = None, timeout_s: float = 30.0,
                   extra: dict[str, Any] | None = None) -> EmbeddedCluster:
    """Start the daemon with ``num_workers`` workers and wait until its head listens.

    Raises:
        IrisError: the daemon exited or did not answer within ``timeout_s``.
    """
    creds = Credentials.generate()
    cluster_id = secrets.token_hex(4)
    r, w = os.pipe()
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
    try:
        proc = subprocess.Popen([sys.executable, "-m", "iris._boot"], stdin=subprocess.PIPE,
                                pass_fds=(w,), close_fds=True)
    finally:
        os.close(w)
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(cfg).encode() + b"\n")
        proc.stdin.flush()
        line = _read_line(r, proc, timeout_s)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        os.close(r)
    ready = json.loads(line)
    return EmbeddedCluster(proc, ready["address"], cluster_id, creds)


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
