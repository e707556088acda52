"""The head's view of clients: heartbeats, goodbyes, and what goes when a client does.

The head's handlers are driven directly here (its sends recorded); the end-to-end case, a
driver killed with SIGKILL whose actors go, is in test_cli.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from iris._protocol import MsgType, decode_control, decode_frames, encode, encode_control
from iris._transport import Credentials, Loop
from iris.head._actor_names import ActorEntry
from iris.head._service import HeadService


@pytest.fixture
def head() -> Iterator[tuple[HeadService, list[tuple[bytes, dict[str, Any]]]]]:
    loop = Loop()
    service = HeadService(loop, Credentials.generate(), "tcp://127.0.0.1:0", "cid",
                          node_ttl_s=5.0, client_ttl_s=5.0)
    sent: list[tuple[bytes, dict[str, Any]]] = []

    def record(ident: bytes, frames: list[Any]) -> bool:
        m = decode_frames(frames)[0]
        sent.append((ident, decode_control(m) if m.payload else {"type": m.type}))
        return True

    service._send = record  # type: ignore[method-assign]
    service._handle(b"node-1", decode_frames(encode_control(MsgType.HELLO, {
        "role": "node", "node_id": "n1", "host": "h"}))[0])
    try:
        yield service, sent
    finally:
        service.close()
        loop.close()


def _hello(service: HeadService, ident: bytes, worker_id: str = "", lease: bool = True
           ) -> None:
    service._handle(ident, decode_frames(encode_control(MsgType.HELLO, {
        "role": "client", "address": f"tcp://h:1#{ident.decode()}",
        "worker_id": worker_id, "lease": lease}))[0])


def _ask(service: HeadService, ident: bytes, body: dict[str, Any]) -> None:
    service._handle(ident, decode_frames(encode_control(MsgType.REQUEST, body, 7))[0])


def _age(service: HeadService, ident: bytes, seconds: float) -> None:
    service.clients[ident].seen = time.monotonic() - seconds


def test_a_silent_client_is_given_up_with_its_attached_actors(head: Any) -> None:
    service, sent = head
    _hello(service, b"c1")
    assert sent[-1][1]["heartbeat_s"] == pytest.approx(1.0)  # a fifth of the TTL
    service.actor_names.register("attached", ActorEntry("a1", "w1", b"c1", False, [], ""))
    service.actor_names.register("detached", ActorEntry("a2", "w1", b"c1", True, [], ""))
    sent.clear()
    _age(service, b"c1", 4.0)
    service._check_leases()
    assert b"c1" in service.clients and not sent  # within its TTL: nothing happens
    _age(service, b"c1", 6.0)
    service._check_leases()
    assert b"c1" not in service.clients
    assert set(service.actor_names.entries) == {"detached"}
    assert sent == [(b"node-1", {"kind": "client_gone", "address": "tcp://h:1#c1",
                                 "owner": "c1"})]


def test_heartbeats_keep_a_client_and_a_goodbye_lets_it_go(head: Any) -> None:
    service, sent = head
    _hello(service, b"c2")
    _age(service, b"c2", 6.0)
    service._handle(b"c2", decode_frames(encode(MsgType.PING))[0])  # a heartbeat
    assert sent[-1] == (b"c2", {"type": MsgType.PONG})  # answered
    service._check_leases()
    assert b"c2" in service.clients
    _hello(service, b"c3")  # another client, told that c2's objects are gone
    sent.clear()
    service._handle(b"c2", decode_frames(encode_control(MsgType.REQUEST, {"op": "bye"}))[0])
    assert b"c2" not in service.clients
    assert sent == [(b"node-1", {"kind": "client_gone", "address": "tcp://h:1#c2",
                                 "owner": "c2"}),
                    (b"c3", {"kind": "client_gone", "address": "tcp://h:1#c2",
                             "owner": "c2"})]
    # Said twice (or a late heartbeat check): told once.
    service._handle(b"c2", decode_frames(encode_control(MsgType.REQUEST, {"op": "bye"}))[0])
    assert len(sent) == 2


def test_a_workers_client_goes_with_its_worker_and_owners_can_be_asked_about(
        head: Any) -> None:
    service, sent = head
    service._handle(b"node-1", decode_frames(encode_control(MsgType.REGISTER_WORKER, {
        "worker_id": "w1", "address": "tcp://h:2"}))[0])
    _hello(service, b"in-w1", worker_id="w1")
    _hello(service, b"driver")
    _ask(service, b"driver", {"op": "client.alive", "address": "tcp://h:1#in-w1"})
    assert sent[-1] == (b"driver", {"alive": True})
    sent.clear()
    service._handle(b"node-1", decode_frames(encode_control(MsgType.WORKER_EXITED, {
        "worker_id": "w1", "reason": "signal SIGKILL"}))[0])
    assert b"in-w1" not in service.clients  # at once: no heartbeat timeout to wait for
    assert (b"driver", {"kind": "client_gone", "address": "tcp://h:1#in-w1",
                        "owner": "in-w1"}) in sent
    _ask(service, b"driver", {"op": "client.alive", "address": "tcp://h:1#in-w1"})
    assert sent[-1] == (b"driver", {"alive": False})
    # An owner the head never knew (it was restarted since, say) is not declared dead.
    _ask(service, b"driver", {"op": "client.alive", "address": "tcp://elsewhere:9#x"})
    assert sent[-1] == (b"driver", {"alive": True})


def test_only_what_is_known_to_be_over_ends_a_client(head: Any) -> None:
    service, sent = head
    service._handle(b"node-1", decode_frames(encode_control(MsgType.REGISTER_WORKER, {
        "worker_id": "w2", "address": "tcp://h:3", "node_id": "n1"}))[0])
    _hello(service, b"in-w2", worker_id="w2")
    _hello(service, b"embedded-driver", lease=False)
    _hello(service, b"joined-driver")
    # A worker exit without a worker id (malformed) ends no client.
    service._handle(b"node-1", decode_frames(encode_control(MsgType.WORKER_EXITED, {
        "worker_id": ""}))[0])
    assert {b"in-w2", b"embedded-driver", b"joined-driver"} <= set(service.clients)
    # Long silence ends only a leased client: a worker's client, or the driver of an
    # embedded cluster, may be in a long call that holds the GIL.
    for ident in (b"in-w2", b"embedded-driver", b"joined-driver"):
        _age(service, ident, 60.0)
    service.nodes["n1"].last_seen = time.monotonic()
    service._check_leases()
    assert set(service.clients) >= {b"in-w2", b"embedded-driver"}
    assert b"joined-driver" not in service.clients
    # A node cut off past its lease: its workers are unusable, but their processes (and
    # their clients) may live on: they are not given up for it.
    service.nodes["n1"].last_seen = time.monotonic() - 60
    service._check_leases()
    assert "w2" not in service.workers and b"in-w2" in service.clients
    # The given-up driver comes back (it was stopped): everyone hears it is back.
    sent.clear()
    _hello(service, b"joined-driver")
    assert (b"in-w2", {"kind": "client_back", "address": "tcp://h:1#joined-driver",
                       "owner": "joined-driver"}) in sent
    _ask(service, b"in-w2", {"op": "client.alive", "address": "tcp://h:1#joined-driver"})
    assert sent[-1] == (b"in-w2", {"alive": True})
