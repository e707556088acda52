"""Scheduling: budgets keep a flooded actor from starving others; release_gil pools."""

from __future__ import annotations

import threading

from _mesh_testing import Collector, wait_until

from iris.mesh import Runtime


def test_flooded_actor_does_not_starve_others(rt: Runtime) -> None:
    """While a flooded actor has thousands of messages queued, another actor's single
    message is handled after at most a few of the flooded actor's turns."""
    gate = threading.Event()
    handled = {"flood": 0}
    seen_at: list[int] = []

    def flood(msg: object) -> None:
        gate.wait(10)
        handled["flood"] += 1

    def quick(msg: object) -> None:
        seen_at.append(handled["flood"])

    budget = 10
    flooded = rt.spawn(flood, budget=budget)
    other = rt.spawn(quick)
    rt.send_many(flooded, range(5000))
    rt.send(other, b"hi")
    gate.set()
    wait_until(lambda: seen_at)
    # Fair: the quick actor ran long before the flood was drained.
    assert seen_at[0] <= 2 * budget
    wait_until(lambda: handled["flood"] == 5000)


def test_budget_interleaves_two_flooded_actors(rt: Runtime) -> None:
    order: list[str] = []
    gate = threading.Event()

    def make(tag: str):  # type: ignore[no-untyped-def]
        def handler(msg: object) -> None:
            gate.wait(10)
            order.append(tag)
        return handler

    a = rt.spawn(make("a"), budget=5)
    b = rt.spawn(make("b"), budget=5)
    rt.send_many(a, range(50))
    rt.send_many(b, range(50))
    gate.set()
    wait_until(lambda: len(order) == 100)
    # Never more than one budget of one actor in a row (after the first turn).
    runs, current, longest = [], None, 0
    for tag in order:
        if tag == current:
            longest += 1
        else:
            if current is not None:
                runs.append(longest)
            current, longest = tag, 1
    runs.append(longest)
    assert max(runs) <= 5


def test_release_gil_runs_elsewhere_and_stays_serial(rt: Runtime) -> None:
    threads: dict[str, set[int]] = {"no": set(), "yes": set()}
    active = {"n": 0, "max": 0}
    lock = threading.Lock()
    done = Collector()

    def no_release(msg: object) -> None:
        threads["no"].add(threading.get_ident())

    def release(msg: object) -> None:
        with lock:
            active["n"] += 1
            active["max"] = max(active["max"], active["n"])
        threads["yes"].add(threading.get_ident())
        with lock:
            active["n"] -= 1
        done(msg)

    p1 = rt.spawn(no_release, budget=10, release_gil=False)
    p2 = rt.spawn(release, budget=10, release_gil=True)
    rt.send(p1, b"ping")
    for i in range(200):
        rt.send(p2, i)
    assert done.wait_for(200) == list(range(200))  # in order
    wait_until(lambda: threads["no"])
    assert active["max"] == 1  # never two messages of one actor at once
    assert threads["no"].isdisjoint(threads["yes"])


def test_many_scheduler_threads_keep_per_actor_order() -> None:
    with Runtime(scheduler_threads=3) as rt:
        cols = [Collector() for _ in range(4)]
        pids = [rt.spawn(c, budget=3) for c in cols]
        for i in range(300):
            for pid in pids:
                rt.send(pid, i)
        for c in cols:
            assert c.wait_for(300) == list(range(300))


def test_handler_may_send_and_stop_itself(rt: Runtime, collector: Collector) -> None:
    box: dict[str, int] = {}

    def selfish(msg: int) -> None:
        collector(msg)
        if msg < 3:
            rt.send(box["me"], msg + 1)
        else:
            rt.stop(box["me"])

    box["me"] = rt.spawn(selfish)
    rt.send(box["me"], 0)
    assert collector.wait_for(4) == [0, 1, 2, 3]
    assert rt.join(box["me"], 10)
