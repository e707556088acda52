"""Pull actors: recv, timeouts, system messages, selective receive, replies."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _mesh_testing import Collector, wait_until

from iris.exceptions import ActorDiedError
from iris.mesh import Mailbox, Runtime, SystemMessage


def test_recv_and_timeout(rt: Runtime, collector: Collector) -> None:
    def saga(mailbox: Mailbox) -> None:
        collector(mailbox.recv())
        collector(mailbox.recv(timeout=0.01))  # nothing comes: None
        collector(mailbox.recv(timeout=0))

    pid = rt.spawn_with_mailbox(saga)
    rt.send(pid, b"start")
    assert collector.wait_for(3) == [b"start", None, None]
    assert rt.join(pid, 10)


def test_recv_returns_none_after_stop(rt: Runtime, collector: Collector) -> None:
    started = threading.Event()

    def loop(mailbox: Mailbox) -> None:
        started.set()
        while (msg := mailbox.recv()) is not None:
            collector(msg)
        collector("closed")

    pid = rt.spawn_with_mailbox(loop)
    started.wait(10)
    rt.send(pid, 1)
    collector.wait_for(1)
    rt.stop(pid)
    assert collector.wait_for(2) == [1, "closed"]
    assert rt.join(pid, 10)


def test_system_messages_come_before_user_messages(rt: Runtime) -> None:
    gate = threading.Event()
    seen: list[Any] = []

    def watcher(mailbox: Mailbox) -> None:
        gate.wait(10)
        seen.append(mailbox.recv())
        seen.append(mailbox.recv())

    pid = rt.spawn_with_mailbox(watcher)
    other = rt.spawn(lambda m: None)
    rt.monitor(pid, other)
    rt.send(pid, b"user")
    rt.stop(other)
    gate.set()
    assert rt.join(pid, 10)
    assert isinstance(seen[0], SystemMessage) and seen[0].type_name == "EXIT"
    assert seen[0].target_pid == other and seen[0].reason == "Killed"
    assert seen[1] == b"user"


def test_selective_recv_keeps_the_rest_in_order(rt: Runtime, collector: Collector) -> None:
    gate = threading.Event()

    def picker(mailbox: Mailbox) -> None:
        gate.wait(10)
        collector(mailbox.selective_recv(lambda m: m == b"c"))
        collector(mailbox.selective_recv(lambda m: m == b"zz", timeout=0.01))
        collector(mailbox.selective_recv(lambda m: 1 / 0, timeout=0.01))  # raising: "no"
        for _ in range(3):
            collector(mailbox.recv())

    pid = rt.spawn_with_mailbox(picker)
    for m in (b"a", b"b", b"c", b"d"):
        rt.send(pid, m)
    wait_until(lambda: rt.mailbox_size(pid) == 4)
    gate.set()
    assert collector.wait_for(6) == [b"c", None, None, b"a", b"b", b"d"]


def test_selective_recv_waits_for_a_later_match(rt: Runtime, collector: Collector) -> None:
    def picker(mailbox: Mailbox) -> None:
        collector(mailbox.selective_recv(lambda m: m == b"wanted", timeout=10))
        collector(mailbox.recv())

    pid = rt.spawn_with_mailbox(picker)
    rt.send(pid, b"other")
    wait_until(lambda: rt.mailbox_size(pid) == 1 or collector.items)
    rt.send(pid, b"wanted")
    assert collector.wait_for(2) == [b"wanted", b"other"]


def test_pull_actor_answers_calls_with_reply(rt: Runtime) -> None:
    def server(mailbox: Mailbox) -> None:
        while (msg := mailbox.recv()) is not None:
            mailbox.reply(msg * 3)

    pid = rt.spawn_with_mailbox(server)
    assert rt.call(pid, 2).result() == 6
    assert rt.call(pid, "ab").result() == "ababab"


def test_pull_actor_crash_and_normal_exit(rt: Runtime) -> None:
    watcher = rt.spawn_observed_handler()

    def crash(mailbox: Mailbox) -> None:
        raise KeyError("nope")

    def finish(mailbox: Mailbox) -> None:
        return None

    a = rt.spawn_with_mailbox(crash)
    b = rt.spawn_with_mailbox(finish)
    rt.monitor(watcher, a)
    rt.monitor(watcher, b)
    assert rt.join(a, 10) and rt.join(b, 10)
    wait_until(lambda: len(rt.get_messages(watcher)) >= 2 or not (rt.is_alive(a)
                                                                     or rt.is_alive(b)))
    reasons = {m.target_pid: m.reason for m in rt.get_messages(watcher)}
    # A monitor set after the actor already died is refused, so only check what arrived.
    if a in reasons:
        assert reasons[a] == "Crash"
    if b in reasons:
        assert reasons[b] == "Normal"


def test_pull_actor_crash_metadata(rt: Runtime) -> None:
    gate = threading.Event()
    watcher = rt.spawn_observed_handler()

    def crash(mailbox: Mailbox) -> None:
        gate.wait(10)
        raise KeyError("nope")

    a = rt.spawn_with_mailbox(crash)
    assert rt.monitor(watcher, a)
    gate.set()
    assert rt.join(a, 10)
    wait_until(lambda: rt.get_messages(watcher))
    msg = rt.get_messages(watcher)[0]
    assert msg.reason == "Crash" and "KeyError" in msg.metadata["traceback"]


def test_mailbox_size_counts_queue_and_stash(rt: Runtime) -> None:
    gate = threading.Event()
    done = threading.Event()
    finish = threading.Event()

    def picker(mailbox: Mailbox) -> None:
        gate.wait(10)
        mailbox.selective_recv(lambda m: m == 3)
        done.set()
        finish.wait(10)

    pid = rt.spawn_with_mailbox(picker)
    rt.send_many(pid, [1, 2, 3, 4])
    assert rt.mailbox_size(pid) == 4
    gate.set()
    done.wait(10)
    assert rt.mailbox_size(pid) == 3
    finish.set()


def test_reply_answers_only_the_message_just_received(rt: Runtime) -> None:
    answered: list[bool] = []

    def server(mailbox: Mailbox) -> None:
        mailbox.recv()  # a call it does not answer
        mailbox.recv()  # a plain send
        answered.append(mailbox.reply("late"))

    pid = rt.spawn_with_mailbox(server)
    unanswered = rt.call(pid, 1, timeout=10)
    rt.send(pid, 2)
    assert rt.join(pid, 10)
    assert answered == [False]
    with pytest.raises(ActorDiedError, match="without answering"):
        unanswered.result()
