"""Starting a worker process: nothing but the standard library, so that the embedded
daemon can start its workers before it imports anything heavy (internal)."""

from __future__ import annotations

import subprocess
import sys

__all__ = ["spawn_worker_process"]


def spawn_worker_process() -> subprocess.Popen[bytes]:
    """Start a worker process; it imports what it needs, then waits for its config line.

    A session of its own keeps the terminal's Ctrl-C (SIGINT to the whole foreground
    process group) away from the worker: the node manager gets it and stops its workers in
    order, instead of every worker dying with a KeyboardInterrupt traceback. Workers still
    die with the node manager: their stdin reaches EOF.
    """
    return subprocess.Popen([sys.executable, "-m", "iris.worker"], stdin=subprocess.PIPE,
                            close_fds=True, start_new_session=True)
