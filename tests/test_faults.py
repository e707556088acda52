"""Crashes: workers dying mid-task, drivers dying, and clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import psutil
import pytest

import iris
from iris.testing import live_children as children
from iris.testing import wait_until

pytestmark = pytest.mark.slow

CRASHES = {
    "exit": "os._exit(3)",
    "sigkill": "os.kill(os.getpid(), signal.SIGKILL)",
    "segfault": "import ctypes; ctypes.string_at(0)",
}
EXPECTED = {"exit": "exit code 3", "sigkill": "SIGKILL", "segfault": "SIGSEGV"}


def _crasher(how: str) -> iris.remote:
    code = CRASHES[how]

    def crash_once(marker: str) -> str:
        import os  # noqa: F401  (used by the exec'd crash code)
        import signal  # noqa: F401
        if not os.path.exists(marker):
            open(marker, "w").close()
            exec(code)
        return "survived"

    return iris.remote(crash_once)


@pytest.mark.parametrize("how", sorted(CRASHES))
def test_crashed_task_is_retried_on_a_new_worker(fresh_cluster: iris.ClusterContext,
                                                 how: str, tmp_path: object) -> None:
    marker = os.path.join(str(tmp_path), "crashed")
    ref = _crasher(how).options(max_retries=1).remote(marker)
    assert iris.get(ref, timeout=60) == "survived"
    assert os.path.exists(marker)


@pytest.mark.parametrize("how", sorted(CRASHES))
def test_crash_without_retries_raises_worker_crashed(fresh_cluster: iris.ClusterContext,
                                                     how: str, tmp_path: object) -> None:
    marker = os.path.join(str(tmp_path), "crashed")
    ref = _crasher(how).options(max_retries=0).remote(marker)
    with pytest.raises(iris.WorkerCrashedError, match=EXPECTED[how]):
        iris.get(ref, timeout=60)
    # The node manager replaced the worker: the cluster still runs tasks on two workers.
    square = iris.remote(lambda x: x * x)
    assert iris.get([square.remote(i) for i in range(20)], timeout=60) == [
        i * i for i in range(20)]
    wait_until(lambda: len(iris._api._client.workers) == 2, 30, "a replacement worker")


def test_retries_are_bounded(fresh_cluster: iris.ClusterContext) -> None:
    @iris.remote(max_retries=2)
    def always_dies() -> None:
        os._exit(1)

    with pytest.raises(iris.WorkerCrashedError, match="no retries left"):
        iris.get(always_dies.remote(), timeout=60)


DRIVER = """
import iris, os, sys, psutil
iris.init(num_workers=2)
f = iris.remote(lambda: os.getpid())
iris.get([f.remote() for _ in range(4)])
pids = [p.pid for p in psutil.Process().children(recursive=True)]
print(" ".join(map(str, pids)), flush=True)
if sys.argv[1] == "hang":
    sys.stdin.read()
"""


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def _run_driver(mode: str) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    pids = [int(x) for x in line.split()]
    assert len(pids) == 3, line  # the daemon and its two workers
    return proc, pids


def test_cluster_dies_with_a_killed_driver() -> None:
    proc, pids = _run_driver("hang")
    try:
        proc.kill()
        proc.wait(30)
        wait_until(lambda: _gone(pids), 30, "the cluster to exit after its driver died")
    finally:
        _cleanup(proc, pids)


def _cleanup(proc: subprocess.Popen[str], pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()
    proc.kill()
    proc.wait()


def test_interpreter_exit_without_shutdown_stops_the_cluster() -> None:
    proc, pids = _run_driver("exit")
    try:
        assert proc.wait(30) == 0
        assert _gone(pids)  # atexit ran shutdown, which waits for the cluster
    finally:
        _cleanup(proc, pids)


def test_shutdown_leaves_nothing_behind() -> None:
    from iris._daemon import state_dir

    iris.shutdown()
    ctx = iris.init(num_workers=2)
    state_file = os.path.join(state_dir(), f"cluster-{ctx.cluster_id}.json")
    assert os.path.exists(state_file)
    import numpy as np

    keep = iris.put(np.ones(1_000_000))  # a shared-memory segment
    iris.get(iris.remote(lambda a: a * 2).remote(keep))
    # Workers on this machine are reached through Unix sockets in a private directory.
    from iris import _api

    links = [w.local for w in _api._client.workers.values()]
    assert links and all(a.startswith("unix://") for a in links), links
    ipc_dir = os.path.dirname(links[0][len("unix://"):])
    assert os.stat(ipc_dir).st_mode & 0o777 == 0o700
    iris.shutdown()
    wait_until(lambda: not children(), 10, "no child processes")
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"iris-{ctx.cluster_id}-")]
    assert not os.path.exists(ipc_dir)
    assert not os.path.exists(state_file)
    assert not iris.is_initialized()
    iris.shutdown()  # a second call is harmless


def test_calls_before_init_say_what_to_do() -> None:
    iris.shutdown()
    f = iris.remote(lambda: 1)
    with pytest.raises(iris.NotInitializedError, match=r"iris.init\(\)"):
        f.remote()
    with pytest.raises(iris.NotInitializedError):
        iris.put(1)


def test_join_without_credentials_is_refused() -> None:
    iris.shutdown()
    env_token = os.environ.pop("IRIS_TOKEN", None)
    try:
        with tempfile.TemporaryDirectory() as d:
            os.environ["IRIS_STATE_DIR"] = d
            with pytest.raises(iris.AuthenticationError, match="token"):
                iris.init(address="127.0.0.1:1")
    finally:
        os.environ.pop("IRIS_STATE_DIR", None)
        if env_token is not None:
            os.environ["IRIS_TOKEN"] = env_token


def test_results_are_not_held_behind_a_long_task(tmp_path: object) -> None:
    from iris.testing import local_cluster

    gate = os.path.join(str(tmp_path), "gate")

    @iris.remote
    def work(path: str | None) -> str:
        import time
        deadline = time.monotonic() + 60
        while path and not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.005)
        return "done"

    with local_cluster(num_workers=1):
        iris.get([work.remote(None) for _ in range(20)])  # the function is known to be fast
        refs = [work.remote(None), work.remote(None), work.remote(gate)]
        try:
            ready, _ = iris.wait(refs[:2], num_returns=2, timeout=30)
            assert ready == refs[:2]  # while the third still runs on the same worker
            assert iris.wait(refs[2:], timeout=0)[0] == []
        finally:
            open(gate, "w").close()
        assert iris.get(refs, timeout=60) == ["done"] * 3


def test_values_over_the_frame_limit_go_through_shared_memory() -> None:
    from iris.testing import local_cluster

    with local_cluster(num_workers=1, max_frame_bytes=1 << 20):
        echo = iris.remote(lambda b: len(b))
        assert iris.get(echo.remote(b"x" * 3_000_000), timeout=60) == 3_000_000
        assert iris.get(echo.remote(b"x"), timeout=60) == 1
        many = [echo.remote(b"y" * 60_000) for _ in range(100)]  # batches split to fit
        assert iris.get(many, timeout=60) == [60_000] * 100


def test_a_worker_busy_with_a_task_dies_with_its_daemon(tmp_path: object) -> None:
    import signal

    from iris import _api

    @iris.remote
    def started_then_spin(path: str) -> int:
        import time
        open(path, "w").close()
        while True:  # never ends: only the death of its node manager stops it
            time.sleep(0.01)

    iris.shutdown()
    iris.init(num_workers=1)
    cluster = _api._cluster
    assert cluster is not None
    import psutil

    try:
        flag = os.path.join(str(tmp_path), "started")
        started_then_spin.remote(flag)
        wait_until(lambda: os.path.exists(flag), 30, "the task to start")
        workers = psutil.Process(cluster.proc.pid).children()
        assert workers
        os.kill(cluster.proc.pid, signal.SIGKILL)
        cluster.proc.wait()
        wait_until(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE
                                   for w in workers), 15, "the orphaned worker to exit")
    finally:
        if _api._client is not None:
            _api._client.close()
        _api._client = _api._cluster = _api._ctx = None
        if cluster.proc.stdin is not None:
            cluster.proc.stdin.close()
        from iris._store import remove_cluster_segments

        remove_cluster_segments(cluster.cluster_id)


def test_a_resumed_task_is_not_held_behind_a_long_one(tmp_path: object) -> None:
    from iris.testing import local_cluster

    gate = os.path.join(str(tmp_path), "gate")
    child_gate = os.path.join(str(tmp_path), "child")

    started = os.path.join(str(tmp_path), "child-started")

    @iris.remote
    def child() -> int:
        import time
        open(started, "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(child_gate) and time.monotonic() < deadline:
            time.sleep(0.005)
        return 1

    @iris.remote
    def parent() -> int:
        return iris.get(child.remote()) + 1

    @iris.remote
    def long_task() -> int:
        import time
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)
        return 0

    with local_cluster(num_workers=1):
        try:
            p = parent.remote()  # blocks in get: its child runs on another thread
            wait_until(lambda: os.path.exists(started), 30, "the child to start")
            long = long_task.remote()  # queued behind the child on the one worker
            open(child_gate, "w").close()  # the child ends, the parent resumes and ends
            assert iris.get(p, timeout=30) == 2  # while long_task still runs
            assert iris.wait([long], timeout=0)[0] == []
        finally:
            open(gate, "w").close()
        assert iris.get(long, timeout=60) == 0


def test_a_broken_local_link_to_a_live_worker_is_made_again(fresh_cluster) -> None:
    import socket

    from iris import _api
    from iris._stream import StreamLink

    client = _api._client
    wait_until(lambda: len(client.workers) == 2, 30, "two workers")
    w = next(iter(client.workers.values()))
    old = w.sock
    assert isinstance(old, StreamLink)
    with client.lock:
        old.sock.shutdown(socket.SHUT_RDWR)  # the link breaks; the worker lives on
    f = iris.remote(lambda x: x * 2)
    # Meanwhile tasks run on the other worker.
    assert iris.get([f.remote(i) for i in range(50)], timeout=60) == [2 * i for i in range(50)]
    wait_until(lambda: w.worker_id in client.workers
               and client.workers[w.worker_id].sock is not old, 20, "linked again")
    assert old.closed and len(client.workers) == 2
    assert iris.get([f.remote(i) for i in range(200)], timeout=60) == [
        2 * i for i in range(200)]


def test_arena_views_kept_across_a_relink_are_let_go(fresh_cluster) -> None:
    import socket

    import numpy as np

    from iris import _api

    client = _api._client
    wait_until(lambda: len(client.workers) == 2, 30, "two workers")

    @iris.remote
    class Keeper:
        def keep(self, a: np.ndarray) -> float:
            self.kept = a[100:200]  # a view into the owner's arena, read in place
            return float(a.sum())

        def drop(self) -> None:
            self.kept = None

    k = Keeper.remote()
    assert iris.get(k.keep.remote(np.ones(5000))) == 5000.0
    wid = k._record.worker_id
    wait_until(lambda: client.workers[wid].kept, 10, "the slot kept")
    old = client.workers[wid].sock
    with client.lock:
        old.sock.shutdown(socket.SHUT_RDWR)  # the link breaks; the worker lives on
    wait_until(lambda: wid in client.workers and client.workers[wid].sock is not old, 20,
               "linked again")
    assert client.workers[wid].kept  # the worker still views it: still reserved
    iris.get(k.drop.remote())
    # The worker's word that the views are gone comes over the new link.
    wait_until(lambda: not client.workers[wid].kept, 20, "the slot let go")
    arena = client.arena
    assert arena is not None
    wait_until(lambda: all(c.live == 0 for c in arena.chunks), 10, "every slot released")
