"""Spawning, sending, call, crash semantics, stop/join, introspection, shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest
from _mesh_testing import Collector, mesh_threads, wait_until

import iris
from iris.exceptions import ActorDiedError, GetTimeoutError, TaskError
from iris.mesh import Runtime, SystemMessage


def test_send_delivers_in_order(rt: Runtime, collector: Collector) -> None:
    pid = rt.spawn(collector)
    for i in range(1000):
        assert rt.send(pid, i)
    assert collector.wait_for(1000) == list(range(1000))


def test_send_to_unknown_or_dead_pid_returns_false(rt: Runtime) -> None:
    assert rt.send(987654, b"x") is False
    pid = rt.spawn(lambda m: None)
    rt.stop(pid)
    assert rt.send(pid, b"x") is False
    assert rt.send_named("nobody", b"x") is False
    assert rt.send_many(pid, [b"a", b"b"]) == 0


def test_bad_arguments_raise_clear_errors(rt: Runtime) -> None:
    with pytest.raises(TypeError, match="handler must be callable"):
        rt.spawn("not a function")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget"):
        rt.spawn(lambda m: None, budget=0)
    with pytest.raises(TypeError, match="mailbox handler must be callable"):
        rt.spawn_with_mailbox(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parent pid"):
        rt.spawn_child(99999, lambda m: None)


def test_send_many_counts_and_keeps_order(rt: Runtime, collector: Collector) -> None:
    pid = rt.spawn(collector)
    assert rt.send_many(pid, [1, 2, 3]) == 3
    rt.send(pid, 4)
    assert collector.wait_for(4) == [1, 2, 3, 4]


def test_call_blocking_returns_handler_result(rt: Runtime) -> None:
    pid = rt.spawn(lambda m: m * 2)
    assert rt.call(pid, 21).result() == 42
    assert rt.call(pid, b"ab", timeout=5.0).result() == b"abab"


def test_call_is_awaitable(rt: Runtime) -> None:
    pid = rt.spawn(lambda m: m + 1)

    async def main() -> list[int]:
        return [await rt.call(pid, i) for i in range(3)]

    assert asyncio.run(main()) == [1, 2, 3]


def test_call_timeout(rt: Runtime) -> None:
    release = threading.Event()
    pid = rt.spawn(lambda m: release.wait(10), release_gil=True)
    reply = rt.call(pid, b"slow", timeout=0.05)
    with pytest.raises(GetTimeoutError, match=f"actor {pid}"):
        reply.result()
    with pytest.raises(TimeoutError):  # GetTimeoutError is a TimeoutError too

        async def main() -> None:
            await rt.call(pid, b"slow", timeout=0.05)

        asyncio.run(main())
    release.set()


def test_call_to_dead_actor_fails_at_once(rt: Runtime) -> None:
    with pytest.raises(ActorDiedError):
        rt.call(424242, b"x").result()


def test_call_to_crashing_handler_raises_task_error(rt: Runtime) -> None:
    def handler(msg: object) -> None:
        raise ValueError("bad input")

    pid = rt.spawn(handler)
    with pytest.raises(TaskError, match="bad input") as info:
        rt.call(pid, b"x").result()
    assert isinstance(info.value, ValueError)
    assert rt.join(pid, 10)
    assert not rt.is_alive(pid)


def test_queued_calls_fail_when_actor_stops(rt: Runtime) -> None:
    gate = threading.Event()
    pid = rt.spawn(lambda m: gate.wait(10), release_gil=True)
    rt.send(pid, b"block")
    wait_until(lambda: rt.mailbox_size(pid) == 0)
    pending = rt.call(pid, b"queued")
    rt.stop(pid)
    gate.set()
    with pytest.raises(ActorDiedError):
        pending.result()


def test_handler_exception_stops_actor_with_crash_and_traceback(rt: Runtime) -> None:
    watcher = rt.spawn_observed_handler()

    def boom(msg: object) -> None:
        raise RuntimeError("kaboom")

    pid = rt.spawn(boom)
    other = rt.spawn(lambda m: m)
    assert rt.monitor(watcher, pid)
    rt.send(pid, b"x")
    assert rt.join(pid, 10)
    wait_until(lambda: rt.get_messages(watcher))
    (msg,) = rt.get_messages(watcher)
    assert isinstance(msg, SystemMessage)
    assert (msg.type_name, msg.reason, msg.from_pid, msg.target_pid) == (
        "EXIT", "Crash", pid, pid)
    assert "kaboom" in msg.metadata["traceback"]
    assert "RuntimeError" in msg.metadata["exception"]
    assert rt.send(pid, b"y") is False
    assert rt.call(other, 5).result() == 5  # other actors go on


def test_system_exit_in_handler_is_a_normal_exit(rt: Runtime) -> None:
    watcher = rt.spawn_observed_handler()

    def quitter(msg: object) -> None:
        raise SystemExit

    pid = rt.spawn(quitter)
    rt.monitor(watcher, pid)
    rt.send(pid, b"quit")
    assert rt.join(pid, 10)
    wait_until(lambda: rt.get_messages(watcher))
    assert rt.get_messages(watcher)[0].reason == "Normal"


def test_stop_reports_killed_and_removes_names_and_paths(rt: Runtime) -> None:
    watcher = rt.spawn_observed_handler()
    pid = rt.spawn(lambda m: None)
    rt.register("svc", pid)
    rt.register_path("/a/b", pid)
    rt.monitor(watcher, pid)
    assert rt.stop(pid) is True
    assert rt.stop(pid) is False
    assert not rt.is_alive(pid)
    assert rt.whereis("svc") is None
    assert rt.whereis_path("/a/b") is None
    assert rt.get_messages(watcher)[0].reason == "Killed"
    assert rt.join(pid, 1)


def test_join_waits_for_pull_actor_to_return(rt: Runtime) -> None:
    pid = rt.spawn_with_mailbox(lambda mb: mb.recv())
    assert rt.join(pid, timeout=0.01) is False
    rt.send(pid, b"go")
    assert rt.join(pid, timeout=10)
    assert rt.join(123456789) is True  # unknown pid: nothing to wait for


def test_link_notifies_both_sides(rt: Runtime) -> None:
    a = rt.spawn_observed_handler()
    b = rt.spawn_observed_handler()
    assert rt.link(a, b)
    rt.stop(b)
    assert [m.target_pid for m in rt.get_messages(a)] == [b]
    c = rt.spawn_observed_handler()
    assert rt.link(a, c) and rt.unlink(a, c)
    rt.stop(c)
    assert len(rt.get_messages(a)) == 1
    assert rt.link(a, 999999) is False
    assert rt.monitor(a, 999999) is False


def test_introspection(rt: Runtime) -> None:
    gate = threading.Event()
    pid = rt.spawn(lambda m: gate.wait(10), budget=7, release_gil=True)
    rt.register("x", pid)
    rt.send(pid, b"1")
    rt.send(pid, b"2")
    wait_until(lambda: rt.mailbox_size(pid) == 1)
    info = rt.actor_info(pid)
    assert info is not None
    assert info["budget"] == 7 and info["names"] == ["x"] and info["release_gil"]
    assert info["kind"] == "push" and info["version"] == 1
    assert pid in rt.list_actors()
    gate.set()
    wait_until(lambda: rt.metrics()["messages_processed"] >= 2)
    m = rt.metrics()
    assert m["actor_count"] >= 1 and m["spawned"] >= 1
    assert rt.actor_info(999999) is None
    assert rt.mailbox_size(999999) is None


def test_shutdown_stops_everything_and_is_idempotent() -> None:
    before = set(mesh_threads())
    rt = Runtime()
    rt.spawn(lambda m: None)
    rt.spawn(lambda m: None, release_gil=True)
    pull = rt.spawn_with_mailbox(lambda mb: mb.recv())
    rt.send_after(pull, 100_000, b"late")
    rt.shutdown()
    rt.shutdown()
    assert rt.list_actors() == []
    with pytest.raises(RuntimeError, match="shut down"):
        rt.spawn(lambda m: None)
    wait_until(lambda: not (set(mesh_threads()) - before))


def test_context_manager_and_package_names() -> None:
    with iris.Runtime() as rt:
        assert rt.call(rt.spawn(lambda m: m), 1).result() == 1
    assert rt.list_actors() == []
    assert iris.SystemMessage is SystemMessage
    assert iris.Mailbox is iris.mesh.Mailbox
    assert callable(iris.spawn_child_pool)


def test_two_runtimes_are_independent() -> None:
    with Runtime() as a, Runtime() as b:
        pa = a.spawn(lambda m: "a")
        pb = b.spawn(lambda m: "b")
        assert a.call(pa, 0).result() == "a"
        assert b.call(pb, 0).result() == "b"
        a.register("n", pa)
        assert b.whereis("n") is None
