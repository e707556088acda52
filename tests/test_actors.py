"""Ray-style actors: @iris.remote on a class, ordered calls, names, kill, restarts."""

from __future__ import annotations

import os
import signal

import pytest

import iris
from iris.testing import wait_until


@iris.remote
class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start
        self.log: list[str] = []

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n

    def get(self) -> int:
        return self.n

    def pid(self) -> int:
        return os.getpid()

    def fail(self) -> None:
        raise ValueError("boom")

    def wait_then_log(self, tag: str, ref_list: list[iris.ObjectRef]) -> str:
        iris.get(ref_list[0])  # blocks inside the actor
        self.log.append(tag)
        return tag

    def log_now(self, tag: str) -> list[str]:
        self.log.append(tag)
        return list(self.log)


@iris.remote
def slow_value(x: int) -> int:
    import time
    time.sleep(0.2)
    return x


@iris.remote
def call_from_a_task(counter: iris.ActorHandle, k: int) -> int:
    return iris.get(counter.incr.remote(k))


def test_calls_run_in_order_and_keep_state(cluster: iris.ClusterContext) -> None:
    c = Counter.remote(10)
    refs = [c.incr.remote() for _ in range(200)]
    assert iris.get(refs) == list(range(11, 211))
    assert iris.get(c.get.remote()) == 210
    assert iris.get(call_from_a_task.remote(c, 1000)) == 1210  # a handle travels to tasks


def test_calls_of_every_record_shape_keep_their_order(cluster: iris.ClusterContext) -> None:
    """Small inline calls travel in plain (columnar) batches, calls with a ready ref or an
    arena-sized argument in other records: one burst mixing them still runs in order."""
    import numpy as np

    c = Counter.remote()
    one = iris.put(1)
    iris.get(one)
    medium = np.ones(4000, dtype=np.int64)  # 32 KB: through the arena
    refs = []
    for i in range(300):
        shape = i % 3
        arg = 1 if shape == 0 else one if shape == 1 else int(medium.sum()) - 3999
        refs.append(c.incr.remote(arg))
        if shape == 2:
            refs.append(c.log_now.remote(medium))  # type: ignore[arg-type]
    got = iris.get(refs)
    counts = [v for v in got if isinstance(v, int)]
    assert counts == list(range(1, 301))


def test_a_call_that_waits_does_not_let_the_next_call_in(cluster: iris.ClusterContext) -> None:
    c = Counter.remote()
    first = c.wait_then_log.remote("first", [slow_value.remote(1)])
    second = c.log_now.remote("second")
    assert iris.get(first) == "first"
    assert iris.get(second) == ["first", "second"]


def test_errors_in_methods_and_constructors(cluster: iris.ClusterContext) -> None:
    c = Counter.remote()
    with pytest.raises(ValueError, match="boom"):
        iris.get(c.fail.remote())
    assert iris.get(c.incr.remote()) == 1  # the actor lives on

    @iris.remote
    class Broken:
        def __init__(self) -> None:
            raise RuntimeError("constructor broke")

        def m(self) -> int:
            return 1

    b = Broken.remote()
    with pytest.raises(iris.ActorDiedError, match="constructor broke"):
        iris.get(b.m.remote(), timeout=30)
    with pytest.raises(iris.ActorDiedError):
        iris.get(b.m.remote(), timeout=30)  # later calls fail at once, the same way


def test_named_actors_and_kill(cluster: iris.ClusterContext) -> None:
    c = Counter.options(name="the-counter").remote(5)
    assert iris.get(iris.get_actor("the-counter").incr.remote(2)) == 7
    with pytest.raises(ValueError, match="exists already"):
        Counter.options(name="the-counter").remote()
    with pytest.raises(ValueError, match="no actor named"):
        iris.get_actor("nobody")
    iris.kill(c)
    with pytest.raises(iris.ActorDiedError, match="killed"):
        iris.get(c.get.remote(), timeout=30)
    with pytest.raises(ValueError):
        iris.get_actor("the-counter")
    iris.kill(c)  # twice is harmless
    again = Counter.options(name="the-counter").remote(1)  # the name is free again
    assert iris.get(again.get.remote()) == 1


def test_bad_use_gets_clear_errors(cluster: iris.ClusterContext) -> None:
    with pytest.raises(TypeError, match=r"\.remote\("):
        Counter()
    c = Counter.remote()
    with pytest.raises(TypeError, match=r"\.remote\("):
        c.incr(1)
    with pytest.raises(AttributeError, match="no method"):
        c.no_such_method
    with pytest.raises(TypeError, match="unknown actor option"):
        Counter.options(colour="red")
    with pytest.raises(ValueError, match="max_restarts"):
        Counter.options(max_restarts=-1)
    with pytest.raises(ValueError, match="lifetime"):
        Counter.options(lifetime="forever")
    with pytest.raises(TypeError, match="ActorHandle"):
        iris.kill("not an actor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_returns"):
        c.incr.options(num_returns=0)


@iris.remote
class Log:
    def __init__(self, first: list[iris.ObjectRef] | None = None) -> None:
        # A constructor may wait for a value: calls queue behind it.
        self.log = [iris.get(first[0])] if first else ["init"]

    def add(self, tag: str) -> list[str]:
        self.log.append(tag)
        return list(self.log)


@iris.remote
def call_add(log: iris.ActorHandle, tag: str) -> list[str]:
    return iris.get(log.add.remote(tag))


def test_a_call_waiting_for_an_argument_holds_later_calls_back(
        cluster: iris.ClusterContext) -> None:
    a = Log.remote()
    first = a.add.remote(slow_value.remote("first"))  # its argument is not ready yet
    second = a.add.remote("second")
    assert iris.get(second) == ["init", "first", "second"]
    assert iris.get(first) == ["init", "first"]


def test_calls_wait_for_a_constructor_that_waits(cluster: iris.ClusterContext) -> None:
    a = Log.remote([slow_value.remote("made")])
    assert iris.get(a.add.remote("then")) == ["made", "then"]


def test_a_handle_sent_to_a_task_at_once_reaches_the_actor(
        cluster: iris.ClusterContext) -> None:
    busy = [slow_value.remote(i) for i in range(4)]  # the workers have work in flight
    a = Log.remote()
    assert iris.get(call_add.remote(a, "from a task")) == ["init", "from a task"]
    iris.get(busy)


def test_kill_lets_the_calls_made_before_it_run(cluster: iris.ClusterContext) -> None:
    a = Log.remote()
    busy = [slow_value.remote(i) for i in range(4)]
    before = [a.add.remote(str(i)) for i in range(5)]
    iris.kill(a)
    after = a.add.remote("late")
    assert iris.get(before)[-1] == ["init", "0", "1", "2", "3", "4"]
    with pytest.raises(iris.ActorDiedError, match="killed"):
        iris.get(after, timeout=30)
    iris.get(busy)


def test_a_failed_creation_keeps_no_name(cluster: iris.ClusterContext) -> None:
    import threading

    with pytest.raises(TypeError):
        Log.options(name="unpicklable").remote(threading.Lock())  # not serializable
    with pytest.raises(ValueError, match="no actor named"):
        iris.get_actor("unpicklable")
    ok = Log.options(name="unpicklable").remote()  # the name was never taken
    assert iris.get(ok.add.remote("x")) == ["init", "x"]


@iris.remote
class Keeper:
    def store(self, refs: list[iris.ObjectRef]) -> bool:
        self.kept = refs[0]  # a ref from the arguments, kept in the actor's state
        return True

    def fetch(self) -> str:
        return iris.get(self.kept, timeout=30)


def test_a_ref_an_actor_keeps_outlives_the_callers_own(cluster: iris.ClusterContext) -> None:
    import gc

    from iris import _api

    client = _api._client
    k = Keeper.remote()
    x = iris.put("precious")
    oid = x.oid
    assert iris.get(k.store.remote([x]))
    del x
    gc.collect()
    # Once the call's own pins are gone, only the actor's registration holds the object.
    wait_until(lambda: (o := client.objects.get(oid)) is not None and o.unreferenced
               and o.borrowers >= 1, 30, "the actor to be the object's only holder")
    assert iris.get(k.fetch.remote()) == "precious"
    iris.kill(k)
    wait_until(lambda: oid not in client.objects, 30, "the object to be freed with the actor")


def test_a_returned_state_is_a_snapshot(cluster: iris.ClusterContext) -> None:
    import numpy as np

    @iris.remote
    class State:
        def __init__(self) -> None:
            self.buf = np.zeros(5000)  # 40 KB: an inline result with a buffer

        def get(self) -> np.ndarray:
            return self.buf

        def bump(self) -> None:
            self.buf += 1

    s = State.remote()
    pairs = [(s.get.remote(), s.bump.remote()) for _ in range(50)]
    values = iris.get([g for g, _ in pairs])
    # Each result is the state when its call ran, whatever the next call did to it after.
    assert [float(v[0]) for v in values] == [float(i) for i in range(50)]
    iris.kill(s)


def test_an_actor_restarts_after_its_worker_dies(fresh_cluster: iris.ClusterContext) -> None:
    c = Counter.options(max_restarts=1).remote(100)
    assert iris.get(c.incr.remote()) == 101
    pid = iris.get(c.pid.remote())
    os.kill(pid, signal.SIGKILL)
    # Its next calls run on a new instance, made from the constructor's arguments again.
    def restarted() -> bool:
        try:
            return iris.get(c.get.remote(), timeout=30) == 100
        except iris.ActorDiedError:  # a call that met the dying worker
            return False
    wait_until(restarted, 60, "the actor to run again on another worker")
    assert iris.get(c.pid.remote()) != pid
    os.kill(iris.get(c.pid.remote()), signal.SIGKILL)  # no restarts left now
    def dead() -> bool:
        try:
            iris.get(c.get.remote(), timeout=30)
            return False
        except iris.ActorDiedError:
            return True
    wait_until(dead, 60, "the actor to be declared dead")
    with pytest.raises(iris.ActorDiedError, match="no restarts left"):
        iris.get(c.get.remote(), timeout=30)


def test_an_actor_made_right_after_init_can_be_sent_to_tasks_at_once() -> None:
    from iris.testing import local_cluster

    with local_cluster(num_workers=2):  # its workers are still starting
        a = Log.remote()
        assert iris.get(call_add.remote(a, "early"), timeout=60) == ["init", "early"]



def test_a_gone_client_takes_its_attached_actors_along(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    # The worker-side half, in this process: what a worker does on the head's word that
    # a client is gone (the cluster-level test is in test_cli.py).
    from iris.worker import _actor_host as host

    monkeypatch.setattr(host, "_connect_client", lambda: None)

    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def add(self) -> int:
            self.n += 1
            return self.n

    ids = {"attached": "t-att", "detached": "t-det", "other": "t-oth"}
    try:
        host.CreateActor(ids["attached"], Counter, "client-a")()
        host.CreateActor(ids["detached"], Counter, "client-a", detached=True)()
        host.CreateActor(ids["other"], Counter, "client-b")()
        assert host.drop_actors_of("client-a") == 1
        with pytest.raises(iris.ActorDiedError, match="does not live"):
            host.CallActor(ids["attached"], "add")()
        assert host.CallActor(ids["detached"], "add")() == 1
        assert host.CallActor(ids["other"], "add")() == 1
        # A creation of a gone client that was still queued is refused.
        with pytest.raises(iris.ActorDiedError, match="client that made it is gone"):
            host.CreateActor("t-late", Counter, "client-a")()
        assert host.drop_actors_of("client-unknown") == 0
    finally:
        for aid in ids.values():
            if aid in host._instances:
                host.CallActor(aid, host.KILL)()
        host._gone_owners.pop("client-a", None)
        host._gone_owners.pop("client-unknown", None)
