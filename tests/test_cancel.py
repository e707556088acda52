"""``iris.cancel``: tasks not started are dropped, running ones interrupted (or their worker
killed with ``force``), finished ones left alone; bad use gets a clear error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import iris
from iris.testing import wait_until


@iris.remote
def hold(flag: str, started: str) -> str:
    """Runs until ``flag`` exists (a file), after saying it started."""
    Path(started).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.005)
    return "released"


@iris.remote
def spin(started: str) -> str:
    """Runs Python code for up to a minute, after saying it started."""
    Path(started).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return "ran to the end"


@iris.remote
def sleeper(started: str) -> str:
    """Sleeps in one long call into C, after saying it started."""
    Path(started).write_text(str(os.getpid()))
    time.sleep(120)
    return "slept"


@iris.remote(num_returns=2)
def pair(flag: str, started: str) -> tuple[str, str]:
    Path(started).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.005)
    return "a", "b"


@iris.remote
def waits_for_its_own(flag: str, started: str, marker: str) -> str:
    """Submits a task that holds on until ``flag``, and waits for it in iris.get (the task
    runs beside it, whichever worker this is: a waiting task gives up its worker); writes
    what ended the wait."""
    inner = hold.remote(flag, started)
    try:
        return str(iris.get(inner))
    except BaseException as exc:
        Path(marker).write_text(type(exc).__name__)
        raise


@iris.remote
def mark(path: str) -> int:
    with open(path, "a") as f:
        f.write("ran\n")
    return os.getpid()


@iris.remote
def use(x: str) -> str:
    return x


def _busy_workers(flag: str, tmp_path: Path, n: int) -> list[iris.ObjectRef]:
    """Occupy ``n`` workers with tasks that hold them until ``flag`` (a file) is made."""
    from iris import _api

    # Right after init the client may know one worker only: both holders would go there.
    wait_until(lambda: len(_api._client.workers) >= n, 30, f"{n} workers")
    started = [str(tmp_path / f"started-{i}") for i in range(n)]
    holders = [hold.remote(flag, s) for s in started]
    wait_until(lambda: all(os.path.exists(s) for s in started), 30, "the holders to start")
    return holders


def test_a_task_not_started_yet_is_dropped(cluster: iris.ClusterContext,
                                           tmp_path: Path) -> None:
    flag = str(tmp_path / "go")
    try:
        _check_dropped(flag, tmp_path)
    finally:
        Path(flag).touch()  # whatever happened, the holders end (other tests need the workers)


def _check_dropped(flag: str, tmp_path: Path) -> None:
    holders = _busy_workers(flag, tmp_path, 2)
    ran = str(tmp_path / "victim-ran")
    victim = mark.remote(ran)  # queued behind a holder
    waiting = use.remote(holders[0])  # waits for its argument, at the driver
    iris.cancel(victim)
    iris.cancel(waiting)
    with pytest.raises(iris.TaskCancelledError, match="cancelled"):
        iris.get(victim, timeout=10)
    with pytest.raises(iris.TaskCancelledError):
        iris.get(waiting, timeout=10)
    Path(flag).touch()
    assert iris.get(holders, timeout=60) == ["released"] * 2
    # Tasks ran on both workers after the victim's turn came (a worker runs its tasks in
    # order): it never ran.
    after = str(tmp_path / "after")
    assert len(set(iris.get([mark.remote(after) for _ in range(40)], timeout=60))) == 2
    assert not os.path.exists(ran)


def test_a_running_task_is_interrupted_and_its_worker_carries_on(
        cluster: iris.ClusterContext, tmp_path: Path) -> None:
    from iris import _api

    wait_until(lambda: len(_api._client.workers) >= 2, 30, "2 workers")
    started = tmp_path / "spin-started"
    ref = spin.remote(str(started))
    pid = _started(started)
    iris.cancel(ref)
    with pytest.raises(iris.TaskCancelledError):
        iris.get(ref, timeout=10)
    # The interrupted worker is the same process, and free again: of a burst of tasks,
    # shared out between both workers, those it gets run at once (had the task not been
    # interrupted, they would wait behind its minute of spinning).
    pids = set(iris.get([mark.remote(str(tmp_path / "m")) for _ in range(40)], timeout=20))
    assert pid in pids


def test_cancel_leaves_finished_tasks_alone_and_refuses_bad_use(
        cluster: iris.ClusterContext, tmp_path: Path) -> None:
    done = use.remote("value")
    assert iris.get(done) == "value"
    iris.cancel(done)
    assert iris.get(done) == "value"
    with pytest.raises(TypeError, match="ObjectRef"):
        iris.cancel("not a ref")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="iris.put"):
        iris.cancel(iris.put(1))
    with pytest.raises(TypeError, match="force must be a bool"):
        iris.cancel(done, force=1)  # type: ignore[arg-type]
    stranger = iris.ObjectRef(1, "tcp://127.0.0.1:1#0000000000000000", counted=False)
    with pytest.raises(ValueError, match="only the process that submitted"):
        iris.cancel(stranger)

    @iris.remote
    class Counter:
        def add(self) -> int:
            return 1

    c = Counter.remote()
    with pytest.raises(TypeError, match="actor"):
        iris.cancel(c.add.remote())
    iris.kill(c)


def test_a_task_waiting_in_get_is_stopped_at_once(cluster: iris.ClusterContext,
                                                 tmp_path: Path) -> None:
    flag = str(tmp_path / "go")
    try:
        marker = tmp_path / "marker"
        ref = waits_for_its_own.remote(flag, str(tmp_path / "held"), str(marker))
        wait_until(lambda: (tmp_path / "held").exists(), 30, "the held task to start")
        iris.cancel(ref)
        with pytest.raises(iris.TaskCancelledError):
            iris.get(ref, timeout=10)
        # Its wait ended by the cancel (the task it waits for holds on for a minute).
        what = wait_until(lambda: marker.exists() and marker.read_text(), 20,
                          "the waiting task to be stopped")
        assert what == "_TaskInterrupt"  # not an Exception: not swallowed
    finally:
        Path(flag).touch()


def test_a_thread_waiting_for_a_cancelled_task_wakes_and_any_result_cancels(
        cluster: iris.ClusterContext, tmp_path: Path) -> None:
    import threading

    flag = str(tmp_path / "go")
    try:
        first, second = pair.remote(flag, str(tmp_path / "p"))
        del first  # the task's first result is dropped: its second still names it
        wait_until((tmp_path / "p").exists, 30, "the task to start")
        seen: list[BaseException] = []

        def wait() -> None:
            try:
                iris.get(second)  # no timeout: only the cancel ends this wait
            except BaseException as exc:  # noqa: BLE001
                seen.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        wait_until(lambda: _api_waiters() > 0, 10, "the thread to wait")
        iris.cancel(second)
        waiter.join(10)
        assert not waiter.is_alive(), "the waiting thread was not woken"
        assert len(seen) == 1 and isinstance(seen[0], iris.TaskCancelledError)
    finally:
        Path(flag).touch()


def _api_waiters() -> int:
    from iris import _api

    return int(_api._client.waiters)


def test_force_kills_the_worker_of_a_task_stuck_in_c(fresh_cluster: iris.ClusterContext,
                                                    tmp_path: Path) -> None:
    started = tmp_path / "started"
    ref = sleeper.remote(str(started))  # one long call into C: no bytecode to interrupt
    pid = _started(started)
    iris.cancel(ref)
    with pytest.raises(iris.TaskCancelledError):
        iris.get(ref, timeout=10)
    assert _alive(pid)  # a plain cancel does not stop a call into C ...
    iris.cancel(ref, force=True)  # ... escalating to force does
    wait_until(lambda: not _alive(pid), 30, "the task's worker to exit")
    # The cluster carries on (the worker is replaced), and the cancelled task is not
    # retried: it started once.
    assert iris.get([use.remote(i) for i in range(10)], timeout=60) == list(range(10))
    assert started.read_text() == str(pid)
    forced = tmp_path / "forced"
    ref = sleeper.remote(str(forced))
    second = _started(forced)
    iris.cancel(ref, force=True)
    with pytest.raises(iris.TaskCancelledError, match="cancelled with force"):
        iris.get(ref, timeout=10)
    wait_until(lambda: not _alive(second), 30, "its worker to exit")


def _started(path: Path) -> int:
    """The pid a task wrote to ``path`` as it started (the file may exist, empty, a moment
    before the number is in it)."""
    return int(wait_until(lambda: path.exists() and path.read_text().strip(), 30,
                          "the task to start"))


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
