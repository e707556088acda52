"""The leader/follower reactor: any thread may lead; sends from any thread; nothing lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import zmq

from iris._reactor import Reactor
from iris.testing import wait_until


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    ctx = zmq.Context()
    server = ctx.socket(zmq.ROUTER)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    client = ctx.socket(zmq.DEALER)
    client.connect(f"tcp://127.0.0.1:{port}")
    yield server, client
    server.close(0)
    client.close(0)
    ctx.term()


def _echo_server(reactor: Reactor, server: zmq.Socket, seen: list[bytes]) -> None:
    def on_input() -> None:
        while True:
            try:
                peer, body = server.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            seen.append(body)
            server.send_multipart([peer, body])
            reactor.sent(server)

    with reactor.lock:
        reactor.add_reader(server, on_input)


def test_a_foreground_thread_takes_the_lead_from_the_background_one(pair) -> None:
    server, client = pair
    reactor = Reactor()
    seen: list[bytes] = []
    _echo_server(reactor, server, seen)
    leaders: set[int] = set()

    def background() -> None:
        while not reactor.stopped:
            reactor.run(background=True)

    def note_leader() -> None:
        leaders.add(threading.get_ident())

    bg = threading.Thread(target=background, daemon=True)
    bg.start()
    try:
        client.send(b"one")
        assert client.poll(10_000) and client.recv() == b"one"  # served in background
        # A foreground thread leads until its condition holds; replies come meanwhile.
        client.send(b"two")
        reactor.call_soon_threadsafe(note_leader)
        assert reactor.run(until=lambda: len(seen) == 2, deadline=time.monotonic() + 10)
        assert client.poll(10_000) and client.recv() == b"two"
        wait_until(lambda: leaders, 10, "the call to run")
        # The background thread serves again once the foreground one has left.
        client.send(b"three")
        assert client.poll(10_000) and client.recv() == b"three"
    finally:
        reactor.stop()
        bg.join(10)
        reactor.close()
    assert not bg.is_alive()
    assert seen == [b"one", b"two", b"three"]


def test_run_returns_false_at_its_deadline_and_at_stop() -> None:
    reactor = Reactor()
    t = time.monotonic()
    assert reactor.run(until=lambda: False, deadline=t + 0.05) is False
    assert time.monotonic() - t >= 0.05
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(reactor.run(until=lambda: False)))
    waiter.start()
    wait_until(lambda: reactor.leader is not None, 10, "the waiter to lead")
    reactor.stop()
    waiter.join(10)
    assert result == [False]
    reactor.close()


def test_a_parked_thread_takes_over_when_the_leader_abdicates() -> None:
    reactor = Reactor()
    abdicated = threading.Event()
    order: list[str] = []

    def first() -> None:
        def give_up() -> None:
            order.append("first abdicates")
            reactor.abdicate()
            abdicated.set()
        reactor.call_soon_threadsafe(give_up)
        reactor.run(until=lambda: abdicated.is_set())

    def second() -> None:
        wait_until(lambda: reactor.leader is not None or abdicated.is_set(), 10, "a leader")
        reactor.run(until=lambda: bool(order) and order[-1] == "second leads")

    t2 = threading.Thread(target=second)
    t2.start()
    t1 = threading.Thread(target=first)
    t1.start()
    t1.join(10)
    wait_until(lambda: abdicated.is_set(), 10, "the abdication")
    reactor.call_soon_threadsafe(lambda: order.append("second leads"))
    t2.join(10)
    assert not t1.is_alive() and not t2.is_alive()
    assert order == ["first abdicates", "second leads"]
    reactor.close()


def test_calls_from_many_threads_all_run_once() -> None:
    reactor = Reactor()
    ran: list[int] = []
    threads = [threading.Thread(target=lambda i=i: [reactor.call_soon_threadsafe(
        lambda j=j: ran.append(j)) for j in range(i * 1000, (i + 1) * 1000)])
        for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reactor.run(until=lambda: len(ran) == 4000, deadline=time.monotonic() + 10)
    assert sorted(ran) == list(range(4000))
    reactor.close()


def test_a_callback_that_waits_again_leads_nested_and_the_outer_wait_goes_on() -> None:
    # A future's callback runs on whichever thread leads; if it calls iris.get, the
    # reactor is led re-entrantly. The outer wait must not be cut short by that.
    reactor = Reactor()
    state: dict[str, object] = {"a": False, "b": False, "nested": None}

    def inner() -> None:
        reactor.call_soon_threadsafe(lambda: state.__setitem__("b", True))
        state["nested"] = reactor.run(until=lambda: bool(state["b"]))
        reactor.call_soon_threadsafe(lambda: state.__setitem__("a", True))

    reactor.call_soon_threadsafe(inner)
    assert reactor.run(until=lambda: bool(state["a"]), deadline=time.monotonic() + 10)
    assert state["nested"] is True
    assert reactor.leader is None
    reactor.close()
