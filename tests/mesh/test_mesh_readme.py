"""Each Python example of the README, run in-process on the fixture's runtime.

The code follows the README; ``rt = iris.Runtime()`` is the fixture (so it is shut down),
``print`` is captured, and assertions check what the README says happens.
"""

from __future__ import annotations

import asyncio
import threading
from itertools import cycle

from _mesh_testing import Collector, wait_until

import iris
from iris.mesh import Runtime


def test_push_actors(rt: Runtime) -> None:
    def fast_worker(msg):  # type: ignore[no-untyped-def]
        print(f"Processed: {msg}")

    pids = [rt.spawn(fast_worker, budget=50) for _ in range(1000)]
    assert len(set(pids)) == 1000 and all(rt.is_alive(p) for p in pids)


def test_pull_actor_saga(rt: Runtime, collector: Collector) -> None:
    def saga_coordinator(mailbox):  # type: ignore[no-untyped-def]
        mailbox.recv()
        collector("Starting Saga...")
        confirm = mailbox.recv(timeout=5.0)
        collector("Confirmed" if confirm else "Timed out")

    pid = rt.spawn_with_mailbox(saga_coordinator, budget=100)
    rt.send(pid, b"begin")
    rt.send(pid, b"ok")
    assert collector.wait_for(2) == ["Starting Saga...", "Confirmed"]


def test_worker_pool(rt: Runtime) -> None:
    parent = rt.spawn(lambda m: None)
    workers = iris.spawn_child_pool(rt, parent, size=4)
    worker_cycle = cycle(workers)
    assert len(workers) == 4
    results = [rt.call(next(worker_cycle), lambda: 1).result() for _ in range(8)]
    assert results == [1] * 8
    rt.stop(parent)
    assert not any(rt.is_alive(w) for w in workers)


def test_structured_concurrency(rt: Runtime) -> None:
    # The README's parent only prints; its intent (children stop when the parent exits)
    # needs the parent to exit, so it exits on b"quit".
    def parent_handler(msg):  # type: ignore[no-untyped-def]
        print("parent got", msg)
        if msg == b"quit":
            raise SystemExit

    parent = rt.spawn(parent_handler)
    child = rt.spawn_child(parent, lambda msg: print("child got", msg))
    rt.send(parent, b"quit")
    assert rt.join(parent, 10)
    assert not rt.is_alive(child)


def test_virtual_actor(rt: Runtime, collector: Collector) -> None:
    pid = rt.spawn_virtual(lambda msg: collector(bytes(msg)), budget=100, idle_timeout_ms=500)
    rt.send(pid, b"hello")
    assert collector.wait_for(1) == [b"hello"]


def test_registry(rt: Runtime) -> None:
    def my_handler(msg):  # type: ignore[no-untyped-def]
        return msg

    pid = rt.spawn(my_handler)
    rt.register("auth_worker", pid)
    target = rt.whereis("auth_worker")
    assert target == pid


def test_path_scoped_supervisors(rt: Runtime) -> None:
    pid = rt.spawn_with_path_observed(10, "/svc/test/one")
    rt.create_path_supervisor("/svc/test")
    rt.path_supervisor_watch("/svc/test", pid)
    children = rt.path_supervisor_children("/svc/test")
    assert children == [pid]
    rt.remove_path_supervisor("/svc/test")
    assert rt.path_supervisor_children("/svc/test") == []


def test_structured_system_messages(rt: Runtime) -> None:
    observer_pid = rt.spawn_observed_handler()
    worker = rt.spawn(lambda m: 1 / 0)
    rt.monitor(observer_pid, worker)
    rt.send(worker, b"x")
    wait_until(lambda: rt.get_messages(observer_pid))
    crashed = []
    messages = rt.get_messages(observer_pid)
    for msg in messages:
        if isinstance(msg, iris.PySystemMessage):  # type: ignore[attr-defined]
            if msg.type_name == "EXIT":
                crashed.append(msg.target_pid)
    assert crashed == [worker]


def test_hot_swap(rt: Runtime, collector: Collector) -> None:
    def behavior_a(msg):  # type: ignore[no-untyped-def]
        collector("Logic A")

    def behavior_b(msg):  # type: ignore[no-untyped-def]
        collector("Logic B (Upgraded!)")

    pid = rt.spawn(behavior_a, budget=10)
    rt.send(pid, b"test")
    collector.wait_for(1)  # the README expects the first message handled before the swap
    rt.hot_swap(pid, behavior_b)
    rt.send(pid, b"test")
    assert collector.wait_for(2) == ["Logic A", "Logic B (Upgraded!)"]


def test_mailbox_introspection(rt: Runtime) -> None:
    gate = threading.Event()
    pid = rt.spawn(lambda m: gate.wait(10), release_gil=True)
    rt.send_many(pid, [b"a", b"b", b"c"])
    wait_until(lambda: rt.mailbox_size(pid) == 2)
    size = rt.mailbox_size(pid)
    print(f"Mailbox size for {pid}: {size}")
    gate.set()
    wait_until(lambda: rt.mailbox_size(pid) == 0)


def test_timers(rt: Runtime, collector: Collector) -> None:
    pid = rt.spawn(collector)
    timer_id = rt.send_after(pid, 200, b"tick")
    assert rt.cancel_timer(timer_id)
    timer_id = rt.send_interval(pid, 1000, b"heartbeat")
    assert rt.cancel_timer(timer_id)
    rt.send_after(pid, 5, b"tick")
    assert collector.wait_for(1) == [b"tick"]


def test_exit_reasons(rt: Runtime) -> None:
    supervisor_pid = rt.spawn_observed_handler()
    normal = rt.spawn_with_mailbox(lambda mb: mb.recv())
    killed = rt.spawn(lambda m: None)
    crash = rt.spawn(lambda m: {}[m])
    for pid in (normal, killed, crash):
        rt.link(supervisor_pid, pid)
    rt.send(normal, b"x")
    rt.stop(killed)
    rt.send(crash, b"x")
    wait_until(lambda: len(rt.get_messages(supervisor_pid)) == 3)
    reasons = {}
    for msg in rt.get_messages(supervisor_pid):
        if isinstance(msg, iris.PySystemMessage) and msg.type_name == "EXIT":  # type: ignore
            assert msg.from_pid == msg.target_pid
            reasons[msg.target_pid] = (msg.reason, msg.metadata)
    assert reasons[normal] == ("Normal", None)
    assert reasons[killed] == ("Killed", None)
    assert reasons[crash][0] == "Crash" and "KeyError" in reasons[crash][1]["traceback"]


def test_bounded_mailbox(rt: Runtime) -> None:
    # Three sends from one thread before the actor takes any: the scheduler thread needs
    # the GIL, which this thread keeps while it runs; a long switch interval makes sure.
    import sys

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        pid = rt.spawn_py_handler_bounded(lambda m: print("got", m), budget=100, capacity=2)
        assert rt.send(pid, b"one")
        assert rt.send(pid, b"two")
        assert not rt.send(pid, b"three")
    finally:
        sys.setswitchinterval(old)


def test_overflow_policy_examples(rt: Runtime) -> None:
    primary = rt.spawn_py_handler_bounded(lambda m: print("primary", bytes(m)), budget=100,
                                          capacity=1)
    fallback = rt.spawn(lambda m: print("fallback", bytes(m)), budget=100)
    rt.set_overflow_policy(primary, "redirect", fallback)
    rt.set_overflow_policy(primary, "spill", fallback)
    rt.set_overflow_policy(primary, "block", None)
    assert rt.actor_info(primary)["overflow_policy"] == "block"  # type: ignore[index]


def test_release_gil_toggle(rt: Runtime) -> None:
    idents: dict[str, int] = {}

    def handler_no(msg):  # type: ignore[no-untyped-def]
        idents["no"] = threading.get_ident()

    def handler_yes(msg):  # type: ignore[no-untyped-def]
        idents["yes"] = threading.get_ident()

    pid_no = rt.spawn(handler_no, budget=10, release_gil=False)
    pid_yes = rt.spawn(handler_yes, budget=10, release_gil=True)
    rt.send(pid_no, b"ping")
    rt.send(pid_yes, b"ping")
    wait_until(lambda: len(idents) == 2)
    assert idents["no"] != idents["yes"]


def test_path_registry(rt: Runtime) -> None:
    pid = rt.spawn(lambda m: None, 10)
    rt.register_path("/system/service/one", pid)
    assert rt.whereis_path("/system/service/one") == pid
    assert rt.list_children("/system/service") == [("/system/service/one", pid)]
    assert rt.list_children_direct("/system") == []
    rt.watch_path("/system/service")
    assert (rt.child_pids(), rt.children_count()) == ([pid], 1)


def test_call_awaitable_and_blocking(rt: Runtime) -> None:
    pid = rt.spawn(lambda m: m[::-1])

    async def main() -> bytes:
        return await rt.call(pid, b"abc", timeout=5.0)

    assert asyncio.run(main()) == b"cba"
    assert rt.call(pid, b"xy").result() == b"yx"
