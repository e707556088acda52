"""Timers (one-shot, interval, cancel, dying with their actor) and virtual actors."""

from __future__ import annotations

import threading

from _mesh_testing import Collector, wait_until

from iris.mesh import Runtime


def test_send_after_delivers_once(rt: Runtime, collector: Collector) -> None:
    pid = rt.spawn(collector)
    timer = rt.send_after(pid, 1, b"tick")
    assert collector.wait_for(1) == [b"tick"]
    assert rt.cancel_timer(timer) is False  # already fired


def test_send_interval_repeats_until_cancelled(rt: Runtime, collector: Collector) -> None:
    pid = rt.spawn(collector)
    timer = rt.send_interval(pid, 1, b"beat")
    collector.wait_for(3)
    assert rt.cancel_timer(timer) is True
    assert rt.cancel_timer(timer) is False  # cancelling twice is harmless
    count = rt.call(pid, "sync").result() or len(collector.items)
    assert count >= 4


def test_cancel_before_firing(rt: Runtime, collector: Collector) -> None:
    pid = rt.spawn(collector)
    timer = rt.send_after(pid, 60_000, b"never")
    assert rt.cancel_timer(timer) is True
    assert rt.cancel_timer(timer) is False
    assert rt.cancel_timer(123456) is False
    assert rt.metrics()["timers_pending"] == 0


def test_timers_die_with_their_actor(rt: Runtime) -> None:
    pid = rt.spawn(lambda m: None)
    rt.send_interval(pid, 1, b"beat")
    later = rt.send_after(pid, 60_000, b"later")
    assert rt.metrics()["timers_pending"] == 2
    rt.stop(pid)
    assert rt.metrics()["timers_pending"] == 0
    assert rt.cancel_timer(later) is False


def test_timer_argument_errors(rt: Runtime) -> None:
    import pytest

    pid = rt.spawn(lambda m: None)
    with pytest.raises(ValueError, match="interval_ms must be a number > 0"):
        rt.send_interval(pid, 0, b"x")
    with pytest.raises(ValueError, match="delay_ms"):
        rt.send_after(pid, -5, b"x")
    with pytest.raises(ValueError, match="not a live actor"):
        rt.send_after(99999, 5, b"x")


def test_virtual_actor_activates_on_first_message(rt: Runtime, collector: Collector) -> None:
    pid = rt.spawn_virtual(collector, budget=100)
    assert rt.is_alive(pid)
    assert rt.actor_info(pid)["state"] == "dormant"  # type: ignore[index]
    assert rt.send(pid, b"hello")
    assert collector.wait_for(1) == [b"hello"]
    assert rt.actor_info(pid)["state"] == "active"  # type: ignore[index]


def test_virtual_actor_deactivates_and_reactivates(rt: Runtime, collector: Collector) -> None:
    pid = rt.spawn_virtual(collector, idle_timeout_ms=20)
    rt.send(pid, 1)
    collector.wait_for(1)
    wait_until(lambda: rt.actor_info(pid)["state"] == "dormant")  # type: ignore[index]
    assert rt.is_alive(pid)
    assert rt.send(pid, 2)
    assert collector.wait_for(2) == [1, 2]
    wait_until(lambda: rt.actor_info(pid)["state"] == "dormant")  # type: ignore[index]
    assert rt.call(pid, 3).result() is None  # a call activates it too
    assert collector.items == [1, 2, 3]


def test_virtual_actor_sends_racing_with_deactivation_are_not_lost(
        rt: Runtime, collector: Collector) -> None:
    pid = rt.spawn_virtual(collector, idle_timeout_ms=1)
    for i in range(2000):
        assert rt.send(pid, i)
        if i % 200 == 0:
            wait_until(lambda: rt.actor_info(pid)["state"] == "dormant")  # type: ignore
    assert collector.wait_for(2000) == list(range(2000))


def test_stop_before_activation(rt: Runtime) -> None:
    watcher = rt.spawn_observed_handler()
    pid = rt.spawn_virtual(lambda m: None)
    rt.monitor(watcher, pid)
    assert rt.stop(pid)
    assert not rt.is_alive(pid) and rt.send(pid, b"x") is False
    assert rt.get_messages(watcher)[0].reason == "Killed"


def test_virtual_timer_activates(rt: Runtime) -> None:
    got = threading.Event()
    pid = rt.spawn_virtual(lambda m: got.set())
    rt.send_after(pid, 1, b"wake")
    assert got.wait(10)
