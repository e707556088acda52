"""Starting worker processes: nothing but the standard library at import, so that the
embedded daemon can start its workers before it imports anything heavy (internal).

Two ways: :func:`spawn_worker_process` starts a fresh interpreter (``python -m
iris.worker``; used for replacements and by ``iris start --worker``), and
:func:`fork_worker_processes` forks the calling process once it has imported the worker's
modules, which skips the interpreter's start-up and those imports (~150-250 ms on a small
machine). Forking is only safe in a process that has no threads and no ZeroMQ context yet:
the embedded daemon does it first thing (see ``iris._boot``).
"""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
from typing import Any

__all__ = ["ForkedWorker", "fork_worker_processes", "spawn_worker_process"]


def spawn_worker_process() -> subprocess.Popen[bytes]:
    """Start a worker process; it imports what it needs, then waits for its config line.

    A session of its own keeps the terminal's Ctrl-C (SIGINT to the whole foreground
    process group) away from the worker: the node manager gets it and stops its workers in
    order, instead of every worker dying with a KeyboardInterrupt traceback. Workers still
    die with the node manager: their stdin reaches EOF.
    """
    return subprocess.Popen([sys.executable, "-m", "iris.worker"], stdin=subprocess.PIPE,
                            close_fds=True, start_new_session=True)


class ForkedWorker:
    """A forked worker process, with the part of ``Popen``'s interface the node uses."""

    def __init__(self, pid: int, stdin_fd: int) -> None:
        self.pid = pid
        self.stdin: io.BufferedWriter | None = open(stdin_fd, "wb")  # noqa: SIM115
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code if the process has exited (negative: killed by that signal)."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit; its exit code.

        Raises:
            subprocess.TimeoutExpired: still running after ``timeout`` seconds.
        """
        if self.returncode is not None:
            return self.returncode
        if timeout is not None:
            fd = os.pidfd_open(self.pid)
            try:
                poller = select.poll()  # not select(): descriptors may be past 1023
                poller.register(fd, select.POLLIN)
                if not poller.poll(max(0, int(timeout * 1000))):
                    raise subprocess.TimeoutExpired([sys.executable, "iris worker"], timeout)
            finally:
                os.close(fd)
        _, status = os.waitpid(self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the process (no error if it is gone)."""
        if self.returncode is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass


def fork_worker_processes(n: int) -> list[Any]:
    """Fork ``n`` worker processes, each waiting for its config line on its stdin.

    Call only from a process without threads and without a ZeroMQ context.
    """
    import iris.worker._process  # noqa: F401  imported once, here, for every child

    workers: list[Any] = []
    for _ in range(n):
        r, w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.setsid()  # like spawn_worker_process: Ctrl-C goes to the node manager
                os.dup2(r, 0)
                os.closerange(3, _max_fd())  # no other pipe's write end: EOF must work
                sys.stdin = open(0, closefd=False)  # noqa: SIM115
                from iris.worker._process import main

                main()
                code = 0
            except BaseException:  # noqa: BLE001
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(r)
        workers.append(ForkedWorker(pid, w))
    return workers


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 1024
