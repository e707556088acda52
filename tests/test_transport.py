"""Transport: CURVE-authenticated sockets on loopback, and the I/O loop."""

from __future__ import annotations

import threading

import pytest
import zmq

from iris._transport import Credentials, Loop, bind_server, connect_client, get_context
from iris.exceptions import AuthenticationError


@pytest.fixture
def creds() -> Credentials:
    return Credentials.generate()


def test_token_round_trip(creds: Credentials) -> None:
    again = Credentials.from_token(creds.token)
    assert again == creds


@pytest.mark.parametrize("token", ["", "short", "x" * 40 + "y", "\u00e9" * 40])
def test_malformed_tokens_are_authentication_errors(token: str) -> None:
    with pytest.raises(AuthenticationError):
        Credentials.from_token(token)


def test_authenticated_round_trip(creds: Credentials) -> None:
    server, endpoint = bind_server(zmq.ROUTER, creds, "tcp://127.0.0.1:0")
    client = connect_client(zmq.DEALER, creds, endpoint)
    try:
        client.send_multipart([b"ping"])
        assert server.poll(5000)
        ident, body = server.recv_multipart()
        assert body == b"ping"
        server.send_multipart([ident, b"pong"])
        assert client.poll(5000)
        assert client.recv_multipart() == [b"pong"]
    finally:
        client.close(0)
        server.close(0)


def test_plain_peer_is_refused(creds: Credentials) -> None:
    server, endpoint = bind_server(zmq.ROUTER, creds, "tcp://127.0.0.1:0")
    plain = get_context().socket(zmq.DEALER)
    plain.linger = 0
    plain.connect(endpoint)
    try:
        plain.send_multipart([b"garbage"], zmq.NOBLOCK)
        assert server.poll(300) == 0
    except zmq.Again:
        pass  # never connected, so nothing could be queued: refused all the same
    finally:
        plain.close(0)
        server.close(0)


def test_peer_with_other_keys_is_refused(creds: Credentials) -> None:
    server, endpoint = bind_server(zmq.ROUTER, creds, "tcp://127.0.0.1:0")
    intruder_keys = Credentials.generate()
    intruder = get_context().socket(zmq.DEALER)
    intruder.linger = 0
    intruder.curve_serverkey = creds.public  # knows the server's public key, not the secret
    intruder.curve_publickey = intruder_keys.public
    intruder.curve_secretkey = intruder_keys.secret
    intruder.connect(endpoint)
    try:
        try:
            intruder.send_multipart([b"garbage"], zmq.NOBLOCK)
        except zmq.Again:
            pass
        assert server.poll(300) == 0
    finally:
        intruder.close(0)
        server.close(0)


def test_loop_runs_calls_from_other_threads_and_timers() -> None:
    loop = Loop()
    seen: list[str] = []
    done = threading.Event()
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        def timer() -> None:
            seen.append("timer")
            done.set()

        loop.call_soon_threadsafe(lambda: seen.append("call"))
        loop.call_soon_threadsafe(lambda: loop.call_later(0.01, timer))
        assert done.wait(5)
        assert seen == ["call", "timer"]
    finally:
        loop.stop()
        thread.join(5)
        loop.close()
    assert not thread.is_alive()


def test_loop_survives_a_failing_callback(caplog: pytest.LogCaptureFixture) -> None:
    loop = Loop()
    done = threading.Event()
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        loop.call_soon_threadsafe(lambda: 1 / 0)
        loop.call_soon_threadsafe(done.set)
        assert done.wait(5)
    finally:
        loop.stop()
        thread.join(5)
        loop.close()
    assert "failed" in caplog.text


def test_loop_runs_every_call_from_many_threads() -> None:
    # Regression: a lost wake-up once left a call queued while the loop slept in poll.
    loop = Loop()
    thread = threading.Thread(target=loop.run)
    thread.start()
    count = [0]
    total = 4 * 3000
    done = threading.Event()

    def bump() -> None:
        count[0] += 1
        if count[0] == total:
            done.set()

    def spam() -> None:
        for _ in range(3000):
            loop.call_soon_threadsafe(bump)

    senders = [threading.Thread(target=spam) for _ in range(4)]
    try:
        for s in senders:
            s.start()
        for s in senders:
            s.join()
        assert done.wait(10), f"only {count[0]} of {total} calls ran"
    finally:
        loop.stop()
        thread.join(5)
        loop.close()


def test_failed_bind_is_a_clear_error_and_leaks_nothing(creds: Credentials) -> None:
    server, endpoint = bind_server(zmq.ROUTER, creds, "tcp://127.0.0.1:0")
    try:
        with pytest.raises(zmq.ZMQError):
            bind_server(zmq.ROUTER, creds, endpoint)  # the port is taken
    finally:
        server.close(0)


def test_generated_tokens_never_look_like_options() -> None:
    assert all(not Credentials.generate().token.startswith("-") for _ in range(200))
