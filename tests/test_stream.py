"""Local links (iris._stream): framing, the token handshake, and what they do with bad input."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from iris._reactor import Reactor
from iris._stream import StreamLink, StreamListener, link_key

KEY = link_key(b"k" * 40)
MAX = 8 << 20


class Pair:
    """A listener and a client link on one reactor, with what each side received."""

    def __init__(self, path: str, client_key: bytes = KEY, server_key: bytes = KEY) -> None:
        self.reactor = Reactor()
        self.server_got: list[list[bytes]] = []
        self.client_got: list[list[bytes]] = []
        self.links: list[StreamLink] = []
        with self.reactor.lock:
            self.listener = StreamListener(
                path, server_key, self.reactor, max_frame_bytes=MAX, on_link=self.links.append,
                on_input=lambda link: self.server_got.extend(link.recv_messages()))
            self.client = StreamLink.connect(
                path, client_key, self.reactor, max_frame_bytes=MAX,
                on_input=lambda: self.client_got.extend(self.client.recv_messages()))

    def run_until(self, cond: Callable[[], bool], timeout: float = 10.0) -> None:
        import time

        assert self.reactor.run(until=cond, deadline=time.monotonic() + timeout), \
            "condition not met in time"

    def close(self) -> None:
        with self.reactor.lock:
            self.client.close()
            for link in self.links:
                link.close()
            self.listener.close()
        self.reactor.close()


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "w")


@pytest.fixture
def pair(sock_path: str) -> Iterator[Pair]:
    p = Pair(sock_path)
    try:
        yield p
    finally:
        p.close()


def test_messages_cross_in_order_both_ways(pair: Pair) -> None:
    msgs = [[b"a"], [b"", b"x" * 1000, b""], [bytes(range(256)) * 7]]
    with pair.reactor.lock:
        for m in msgs:
            pair.client.send_multipart(m)  # held until the handshake is done
    pair.run_until(lambda: len(pair.server_got) == len(msgs))
    assert pair.server_got == msgs
    server = pair.links[0]
    with pair.reactor.lock:
        server.send_multipart([memoryview(b"reply"), bytearray(b"!")])
    pair.run_until(lambda: len(pair.client_got) == 1)
    assert pair.client_got == [[b"reply", b"!"]]
    assert pair.client.is_open and server.is_open


def test_large_frames_survive_partial_writes(pair: Pair) -> None:
    import numpy as np

    with pair.reactor.lock:
        pair.client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    rng = np.random.default_rng(1)
    big = [rng.integers(0, 255, n, dtype=np.uint8) for n in (3_000_000, 1, 700_001)]
    with pair.reactor.lock:
        for i, a in enumerate(big):
            pair.client.send_multipart([f"m{i}".encode(), a, a[::1].astype(np.float64)[:10]])
    pair.run_until(lambda: len(pair.server_got) == len(big))
    for i, (a, got) in enumerate(zip(big, pair.server_got)):
        assert got[0] == f"m{i}".encode()
        assert bytes(got[1]) == a.tobytes()
        assert bytes(got[2]) == a.astype(np.float64)[:10].tobytes()


def test_a_client_with_the_wrong_key_is_refused(sock_path: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    p = Pair(sock_path, client_key=link_key(b"x" * 40))
    try:
        with p.reactor.lock:
            p.client.send_multipart([b"secret"])
        p.run_until(lambda: p.client.closed)
        assert not p.server_got and "failed to prove" in p.client.why
        assert "failed to prove" in caplog.text
    finally:
        p.close()


def test_a_server_with_the_wrong_key_gets_nothing(sock_path: str) -> None:
    p = Pair(sock_path, server_key=link_key(b"x" * 40))
    try:
        with p.reactor.lock:
            p.client.send_multipart([b"secret"])
        p.run_until(lambda: p.client.closed)
        assert not p.server_got
        assert p.links and not p.links[0].is_open
    finally:
        p.close()


def _raw(path: str, data: bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(data)
    return s


@pytest.mark.parametrize("seed", range(5))
def test_garbage_before_authentication_closes_only_that_link(pair: Pair, seed: int) -> None:
    rng = random.Random(seed)
    raw = _raw(pair.listener.path, rng.randbytes(rng.randint(1, 2000)))
    raw.close()  # refused at once, or left waiting for more: either way never open
    pair.run_until(lambda: len(pair.links) == 2 and pair.links[1].closed)
    assert not pair.server_got
    with pair.reactor.lock:
        pair.client.send_multipart([b"still", b"here"])
    pair.run_until(lambda: pair.server_got == [[b"still", b"here"]])


def test_a_huge_length_before_authentication_is_refused(pair: Pair) -> None:
    # A count of one frame of 1 GiB: nothing that large is read before the handshake.
    raw = _raw(pair.listener.path, (1).to_bytes(4, "little") + (1 << 30).to_bytes(4, "little"))
    try:
        pair.run_until(lambda: len(pair.links) == 2 and pair.links[1].closed)
        assert "at most 64" in pair.links[1].why
    finally:
        raw.close()


def test_a_broken_frame_on_an_open_link_closes_it(pair: Pair) -> None:
    pair.run_until(lambda: pair.client.is_open and pair.links and pair.links[0].is_open)
    with pair.reactor.lock:
        pair.client.sock.sendall((0).to_bytes(4, "little"))  # a message of zero frames
    pair.run_until(lambda: pair.links[0].closed)
    pair.run_until(lambda: pair.client.closed)  # the server hung up: the client sees it
    assert "closed by the peer" in pair.client.why
    with pair.reactor.lock:
        pair.client.send_multipart([b"dropped"])  # no error: like a peer that went away


def test_frames_over_the_ceiling_close_the_link(sock_path: str) -> None:
    p = Pair(sock_path)
    try:
        p.run_until(lambda: p.client.is_open and bool(p.links) and p.links[0].is_open)
        with p.reactor.lock:
            p.client.send_multipart([b"x" * (MAX + 1)])
        p.run_until(lambda: p.links[0].closed)
        assert "at most" in p.links[0].why and not p.server_got
    finally:
        p.close()


def test_the_listener_socket_is_private(pair: Pair) -> None:
    assert os.stat(pair.listener.path).st_mode & 0o777 == 0o600
    pair.close()
    assert not os.path.exists(pair.listener.path)


def test_connect_to_nothing_raises(tmp_path: Path) -> None:
    r = Reactor()
    try:
        with pytest.raises(OSError), r.lock:
            StreamLink.connect(str(tmp_path / "none"), KEY, r, max_frame_bytes=MAX,
                               on_input=lambda: None)
    finally:
        r.close()


def test_what_arrived_before_the_peer_left_is_still_read(pair: Pair) -> None:
    pair.run_until(lambda: pair.client.is_open and bool(pair.links) and pair.links[0].is_open)
    server = pair.links[0]
    with pair.reactor.lock:
        server.send_multipart([b"result of task A"])
        server.sock.shutdown(socket.SHUT_RDWR)  # the worker dies right after
        for _ in range(3):  # sends fail (EPIPE): no error, and nothing is lost
            pair.client.send_multipart([b"task C"])
    pair.run_until(lambda: pair.client.closed)
    assert pair.client_got == [[b"result of task A"]]
