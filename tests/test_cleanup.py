"""Clean-up of what dead processes leave: Unix-socket directories, arena chunks."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from iris._arena import remove_arenas_of
from iris._store import SHM_DIR
from iris._transport import Credentials


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_ipc_directories_of_dead_node_managers_are_swept() -> None:
    from iris.worker._node import _sweep_ipc_dirs

    dead = tempfile.mkdtemp(prefix=f"iris-0badc0de-ipc-{_dead_pid()}-")
    alive = tempfile.mkdtemp(prefix=f"iris-0badc0de-ipc-{os.getpid()}-")
    try:
        _sweep_ipc_dirs()
        assert not os.path.exists(dead)
        assert os.path.exists(alive)
    finally:
        for path in (dead, alive):
            if os.path.exists(path):
                os.rmdir(path)


def test_the_arena_of_a_dead_process_is_removed() -> None:
    code = ("import os, iris._arena as a\n"
            "ar = a.Arena('0badcafe', chunk_bytes=1 << 20)\n"
            "ar.write(b'x' * 100, [])\n"
            "print(os.getpid(), flush=True)\n"
            "os._exit(0)\n")  # no close: its chunk stays behind
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    pid = int(out.stdout)
    left = [n for n in os.listdir(SHM_DIR) if n.startswith(f"iris-0badcafe-arena-{pid}-")]
    assert left
    assert remove_arenas_of("0badcafe", pid) == len(left)
    assert not [n for n in os.listdir(SHM_DIR) if n.startswith(f"iris-0badcafe-arena-{pid}-")]


def test_a_worker_without_its_ipc_directory_serves_over_tcp() -> None:
    from iris.worker._process import WorkerProcess

    w = WorkerProcess({"worker_id": "w-test", "cluster_id": "0badbeef",
                       "token": Credentials.generate().token,
                       "node_endpoint": "tcp://127.0.0.1:9",
                       "ipc_dir": "/nonexistent/iris-ipc"})
    try:
        assert w.local_address == ""
        assert w.address.startswith("tcp://127.0.0.1:")
    finally:
        w.close_sockets()
        w.loop.close()
