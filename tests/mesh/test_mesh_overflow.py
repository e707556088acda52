"""Bounded mailboxes and each overflow policy."""

from __future__ import annotations

import threading

import pytest
from _mesh_testing import Collector, wait_until

from iris.exceptions import ActorDiedError
from iris.mesh import Runtime
from iris.mesh._overflow import decide, parse_policy


def _gated(rt: Runtime, collector: Collector, capacity: int) -> tuple[int, threading.Event]:
    """A bounded actor whose handler is held on its first message until the gate opens."""
    gate = threading.Event()

    def handler(msg: object) -> None:
        gate.wait(10)
        collector(msg)

    pid = rt.spawn_py_handler_bounded(handler, budget=100, capacity=capacity,
                                      release_gil=True)
    rt.send(pid, "first")
    wait_until(lambda: rt.mailbox_size(pid) == 0)  # "first" is in flight
    return pid, gate


def test_decide_is_pure() -> None:
    assert decide(0, 1, "dropnew") == "enqueue"
    assert decide(1, 1, "dropnew") == "reject"
    assert decide(1, 1, "dropold") == "evict_then_enqueue"
    assert decide(1, 1, "redirect") == "redirect"
    assert decide(1, 1, "spill") == "spill_then_wait"
    assert decide(1, 1, "block") == "wait"
    assert decide(5, None, "block") == "enqueue"


def test_parse_policy_errors() -> None:
    with pytest.raises(ValueError, match=r"valid policies: \['block', 'dropnew'"):
        parse_policy("dropall", None, None)
    with pytest.raises(ValueError, match="needs a target"):
        parse_policy("redirect", None, None)
    assert parse_policy("Drop_New", None, None).policy == "dropnew"


def test_dropnew_is_the_default(rt: Runtime, collector: Collector) -> None:
    pid, gate = _gated(rt, collector, capacity=2)
    assert rt.send(pid, "one") and rt.send(pid, "two")
    assert not rt.send(pid, "three")
    gate.set()
    assert collector.wait_for(3) == ["first", "one", "two"]


def test_dropold_evicts_the_oldest(rt: Runtime, collector: Collector) -> None:
    pid, gate = _gated(rt, collector, capacity=2)
    rt.set_overflow_policy(pid, "dropold")
    evicted = rt.call(pid, "one")
    assert rt.send(pid, "two") and rt.send(pid, "three")
    with pytest.raises(ActorDiedError, match="evicted"):
        evicted.result()
    gate.set()
    assert collector.wait_for(3) == ["first", "two", "three"]


def test_redirect_sends_overflow_to_target(rt: Runtime, collector: Collector) -> None:
    fallback = Collector()
    fb = rt.spawn(fallback)
    pid, gate = _gated(rt, collector, capacity=1)
    rt.set_overflow_policy(pid, "redirect", fb)
    assert rt.send(pid, "one")
    assert rt.send(pid, "two")
    assert fallback.wait_for(1) == ["two"]
    gate.set()
    assert collector.wait_for(2) == ["first", "one"]


def test_spill_copies_to_target_and_still_enqueues(rt: Runtime, collector: Collector) -> None:
    fallback = Collector()
    fb = rt.spawn(fallback)
    pid, gate = _gated(rt, collector, capacity=1)
    rt.set_overflow_policy(pid, "spill", fb)
    assert rt.send(pid, "one")
    result: list[bool] = []
    sender = threading.Thread(target=lambda: result.append(rt.send(pid, "two")))
    sender.start()
    assert fallback.wait_for(1) == ["two"]
    gate.set()
    sender.join(10)
    assert result == [True]
    assert collector.wait_for(3) == ["first", "one", "two"]


def test_block_waits_for_room(rt: Runtime, collector: Collector) -> None:
    pid, gate = _gated(rt, collector, capacity=1)
    rt.set_overflow_policy(pid, "block", None)
    assert rt.send(pid, "one")
    result: list[bool] = []
    sender = threading.Thread(target=lambda: result.append(rt.send(pid, "two")))
    sender.start()
    wait_until(lambda: rt._k.actors[pid].overflow.waiting == 1)  # type: ignore[union-attr]
    assert result == []
    gate.set()
    sender.join(10)
    assert result == [True]
    assert collector.wait_for(3) == ["first", "one", "two"]


def test_block_with_timeout_gives_up(rt: Runtime, collector: Collector) -> None:
    pid, gate = _gated(rt, collector, capacity=1)
    rt.set_overflow_policy(pid, "block", None, timeout_s=0.01)
    assert rt.send(pid, "one")
    assert rt.send(pid, "two") is False
    gate.set()
    assert collector.wait_for(2) == ["first", "one"]


def test_blocked_sender_is_released_when_receiver_dies(rt: Runtime,
                                                       collector: Collector) -> None:
    pid, gate = _gated(rt, collector, capacity=1)
    rt.set_overflow_policy(pid, "block")
    rt.send(pid, "one")
    result: list[bool] = []
    sender = threading.Thread(target=lambda: result.append(rt.send(pid, "two")))
    sender.start()
    wait_until(lambda: rt._k.actors[pid].overflow.waiting == 1)  # type: ignore[union-attr]
    rt.stop(pid)
    sender.join(10)
    gate.set()
    assert result == [False]


def test_blocked_push_actor_does_not_stall_the_scheduler(rt: Runtime) -> None:
    """A push actor blocked sending to a full mailbox leaves other actors running."""
    sink_gate = threading.Event()
    sink_seen = Collector()
    other_seen = Collector()

    def sink_handler(msg: object) -> None:
        sink_gate.wait(10)
        sink_seen(msg)

    sink = rt.spawn_py_handler_bounded(sink_handler, budget=100, capacity=1,
                                       release_gil=True)
    rt.set_overflow_policy(sink, "block")
    producer = rt.spawn(lambda n: [rt.send(sink, i) for i in range(n)])
    other = rt.spawn(other_seen)
    rt.send(producer, 5)  # fills the sink, then blocks inside its handler
    wait_until(lambda: rt._k.actors[sink].overflow.waiting == 1)  # type: ignore[union-attr]
    rt.send(other, "still running")
    assert other_seen.wait_for(1) == ["still running"]
    sink_gate.set()
    assert sink_seen.wait_for(5) == [0, 1, 2, 3, 4]


def test_policy_errors(rt: Runtime) -> None:
    pid = rt.spawn(lambda m: None)
    with pytest.raises(ValueError, match="unbounded"):
        rt.set_overflow_policy(pid, "block")
    bounded = rt.spawn_py_handler_bounded(lambda m: None, 10, 2)
    with pytest.raises(ValueError, match="valid policies"):
        rt.set_overflow_policy(bounded, "sometimes")
    with pytest.raises(ValueError, match="not a live actor"):
        rt.set_overflow_policy(99999, "block")
    with pytest.raises(ValueError, match="capacity"):
        rt.spawn_py_handler_bounded(lambda m: None, 10, -1)


def test_timers_never_block_on_a_full_mailbox(rt: Runtime, collector: Collector) -> None:
    pid, gate = _gated(rt, collector, capacity=1)
    rt.set_overflow_policy(pid, "block")
    assert rt.send(pid, "one")
    fired = rt.send_after(pid, 0, "tick")
    wait_until(lambda: rt.metrics()["timers_pending"] == 0)
    assert rt.cancel_timer(fired) is False
    gate.set()
    assert collector.wait_for(2) == ["first", "one"]
    assert rt.call(pid, "last").result() is None
    assert collector.items == ["first", "one", "last"]  # "tick" was dropped
