"""Hot code swap: in-flight on old code, everything later on new, nothing lost or doubled."""

from __future__ import annotations

import threading

import pytest
from _mesh_testing import Collector, wait_until

from iris.mesh import Runtime, SystemMessage


def test_hot_swap_under_load(rt: Runtime) -> None:
    seen = Collector()
    n = 20_000

    def behavior_a(msg: int) -> None:
        seen(("a", msg))

    def behavior_b(msg: int) -> None:
        seen(("b", msg))

    pid = rt.spawn(behavior_a, budget=10)

    def produce() -> None:
        for i in range(n):
            rt.send(pid, i)

    producer = threading.Thread(target=produce)
    producer.start()
    wait_until(lambda: len(seen.items) > 100)
    assert rt.hot_swap(pid, behavior_b) == 2
    producer.join(30)
    items = seen.wait_for(n)
    assert [m for _, m in items] == list(range(n))  # none lost, none twice, in order
    tags = [t for t, _ in items]
    first_b = tags.index("b")
    assert set(tags[:first_b]) == {"a"} and set(tags[first_b:]) == {"b"}


def test_in_flight_message_finishes_on_old_code_queued_ones_use_new(rt: Runtime) -> None:
    entered = threading.Event()
    release = threading.Event()
    seen = Collector()

    def old(msg: object) -> None:
        entered.set()
        release.wait(10)
        seen(("old", msg))

    pid = rt.spawn(old, release_gil=True)
    rt.send(pid, 1)
    entered.wait(10)
    rt.send(pid, 2)
    rt.send(pid, 3)
    rt.hot_swap(pid, lambda m: seen(("new", m)))
    release.set()
    assert seen.wait_for(3) == [("old", 1), ("new", 2), ("new", 3)]


def test_versions_rollback_and_notices(rt: Runtime) -> None:
    watcher = rt.spawn_observed_handler()
    pid = rt.spawn(lambda m: "v1")
    rt.monitor(watcher, pid)
    assert rt.behavior_version(pid) == 1
    assert rt.hot_swap(pid, lambda m: "v2") == 2
    assert rt.hot_swap(pid, lambda m: "v3") == 3
    assert rt.call(pid, 0).result() == "v3"
    assert rt.rollback_behavior(pid) == 2
    assert rt.call(pid, 0).result() == "v2"
    assert rt.rollback_behavior(pid, steps=1) == 1  # back to the spawn-time handler
    assert rt.call(pid, 0).result() == "v1"
    assert rt.rollback_behavior(pid, 0) == 1
    with pytest.raises(ValueError, match="cannot roll back"):
        rt.rollback_behavior(pid)
    notices = rt.get_messages(watcher)
    assert [m.type_name for m in notices] == ["HOT_SWAP"] * 4
    assert [m.metadata["version"] for m in notices] == [2, 3, 2, 1]
    own = [m for m in rt.get_messages(pid) if isinstance(m, SystemMessage)]
    assert len(own) == 4


def test_hot_swap_errors_and_pull_actor(rt: Runtime) -> None:
    with pytest.raises(TypeError, match="handler must be callable"):
        rt.hot_swap(rt.spawn(lambda m: None), 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a live actor"):
        rt.hot_swap(99999, lambda m: None)
    got: list[object] = []

    def pull(mailbox):  # type: ignore[no-untyped-def]
        got.append(mailbox.recv(timeout=10))

    pid = rt.spawn_with_mailbox(pull)
    rt.hot_swap(pid, print)
    assert rt.join(pid, 10)
    assert got[0].type_name == "HOT_SWAP" and got[0].metadata["handler"] is print
