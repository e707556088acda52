"""Structured concurrency: children and grandchildren die with their parent; pools."""

from __future__ import annotations

import threading

import pytest
from _mesh_testing import wait_until

import iris
from iris.mesh import Mailbox, Runtime


def _tree(rt: Runtime, parent_handler=lambda m: None):  # type: ignore[no-untyped-def]
    parent = rt.spawn(parent_handler)
    child = rt.spawn_child(parent, lambda m: None)
    grandchild = rt.spawn_child(child, lambda m: None)
    pull_child = rt.spawn_child_with_mailbox(parent, lambda mb: mb.recv())
    return parent, child, grandchild, pull_child


@pytest.mark.parametrize("how", ["stop", "crash", "normal"])
def test_children_and_grandchildren_die_with_parent(rt: Runtime, how: str) -> None:
    def parent_handler(msg: object) -> None:
        if msg == b"crash":
            raise RuntimeError("parent crashed")
        if msg == b"quit":
            raise SystemExit

    watcher = rt.spawn_observed_handler()
    parent, child, grandchild, pull_child = _tree(rt, parent_handler)
    rt.monitor(watcher, grandchild)
    if how == "stop":
        rt.stop(parent)
    else:
        rt.send(parent, b"crash" if how == "crash" else b"quit")
    assert rt.join(parent, 10)
    for pid in (child, grandchild, pull_child):
        assert rt.join(pid, 10)
        assert not rt.is_alive(pid)
    wait_until(lambda: rt.get_messages(watcher))
    msg = rt.get_messages(watcher)[0]
    assert msg.reason == "Killed" and msg.metadata == {"parent": child}


def test_child_exit_does_not_touch_parent(rt: Runtime) -> None:
    parent, child, grandchild, _ = _tree(rt)
    rt.stop(child)
    assert rt.is_alive(parent) and not rt.is_alive(grandchild)
    assert rt.actor_info(parent)["children"] != []  # type: ignore[index]
    assert child not in rt.actor_info(parent)["children"]  # type: ignore[index]


def test_pull_parent_finishing_stops_children(rt: Runtime) -> None:
    go = threading.Event()

    def parent_fn(mailbox: Mailbox) -> None:
        go.wait(10)

    parent = rt.spawn_with_mailbox(parent_fn)
    child = rt.spawn_child(parent, lambda m: None)
    go.set()
    assert rt.join(parent, 10)
    assert not rt.is_alive(child)


def test_child_pool(rt: Runtime) -> None:
    parent = rt.spawn(lambda m: None)
    workers = iris.spawn_child_pool(rt, parent, size=4)
    assert len(workers) == 4 and len(set(workers)) == 4
    assert rt.call(workers[0], lambda: 6 * 7).result() == 42
    assert rt.call(workers[1], b"not callable").result() is None
    doubled = rt.spawn_child_pool(parent, lambda m: m * 2, workers=2)
    assert [rt.call(w, 5).result() for w in doubled] == [10, 10]
    rt.stop(parent)
    assert not any(rt.is_alive(w) for w in workers + doubled)
    with pytest.raises(ValueError, match="workers >= 1"):
        rt.spawn_child_pool(rt.spawn(lambda m: None), None, workers=0)
