"""The head's restarts of detached actors whose creator is gone, driven in-process: the
workers are fake sockets whose answers the tests write. (End to end: test_cli.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import zmq

from iris._protocol import (
    MsgType,
    ResultRecord,
    Value,
    ValueKind,
    decode_frames,
    decode_tasks,
    encode_results,
)
from iris._transport import Credentials
from iris.head import _restarts
from iris.head._actor_names import ActorEntry, ActorNames
from iris.head._restarts import ActorRestarts


class FakeSocket:
    def __init__(self, address: str) -> None:
        self.address = address
        self.sent: list[list[Any]] = []
        self.inbox: list[list[Any]] = []
        self.closed = False

    def send_multipart(self, frames: list[Any], *_: Any) -> None:
        self.sent.append(frames)

    def recv_multipart(self, *_: Any) -> list[Any]:
        if not self.inbox:
            raise zmq.Again()
        return self.inbox.pop(0)

    def close(self, *_: Any) -> None:
        self.closed = True

    def task_id(self) -> int:
        (rec,) = decode_tasks(decode_frames(self.sent[-1])[0])
        return rec.task_id

    def answer(self, kind: int = ValueKind.INLINE) -> None:
        self.inbox.append(encode_results([ResultRecord(self.task_id(), [Value(kind, b"N.")])]))


class FakeLoop:
    def add_reader(self, *_: Any) -> None:
        pass

    def remove_reader(self, *_: Any) -> None:
        pass


@pytest.fixture
def head(monkeypatch: pytest.MonkeyPatch) -> Any:
    sockets: list[FakeSocket] = []

    def connect(_kind: int, _creds: Any, address: str) -> FakeSocket:
        sockets.append(FakeSocket(address))
        return sockets[-1]

    monkeypatch.setattr(_restarts, "connect_client", connect)
    names = ActorNames()
    workers: dict[str, dict[str, Any]] = {"w1": {"address": "tcp://w1"},
                                          "w2": {"address": "tcp://w2"}}
    told: list[dict[str, Any]] = []
    restarts = ActorRestarts(FakeLoop(), Credentials.generate(), names, workers, told.append,
                             1 << 20, suspect_s=15.0)
    return restarts, names, workers, sockets, told


def _service(names: ActorNames, worker: str = "w1", restarts: int = 2,
             owner: bytes = b"gone") -> ActorEntry:
    entry = ActorEntry("a1", worker, owner, True, ["add"], "Service",
                       (b"BLOB", b"ARGS", restarts))
    names.register("svc", entry)
    return entry


def _gone(restarts: ActorRestarts, names: ActorNames, workers: dict[str, Any], wid: str,
          alive: set[bytes] = frozenset(), process_gone: bool = True) -> None:
    """What the head does when a worker goes."""
    workers.pop(wid, None)
    kept = restarts.worker_gone(wid, lambda o: o in alive, process_gone)
    names.drop_worker(wid, keep=kept)


def test_an_actor_whose_creator_is_gone_is_made_again_elsewhere(head: Any) -> None:
    restarts, names, workers, sockets, _ = head
    entry = _service(names)
    _gone(restarts, names, workers, "w1")
    assert names.entries["svc"] is entry and entry.restarting and entry.worker_id == "w2"
    (sock,) = sockets
    assert sock.address == "tcp://w2"
    define, task = (decode_frames(f)[0] for f in sock.sent)
    assert (define.type, task.type) == (MsgType.DEFINE, MsgType.TASKS)
    (rec,) = decode_tasks(task)
    assert bytes(rec.args.data) == b"ARGS" and define.payload[8:] == b"BLOB"
    sock.answer()
    restarts.answer(rec.task_id)
    assert not entry.restarting and sock.closed
    assert entry.restart == (b"BLOB", b"ARGS", 1) and entry.owner == b""  # the head's now


def test_a_live_creator_restarts_its_own_unless_it_lived_in_that_worker(head: Any) -> None:
    restarts, names, workers, sockets, _ = head
    _service(names, owner=b"creator")
    _gone(restarts, names, workers, "w1", alive={b"creator"})
    assert "svc" not in names.entries and not sockets  # the creator will restart it


def test_an_attempt_whose_worker_dies_is_tried_again_and_its_late_answer_ignored(
        head: Any) -> None:
    restarts, names, workers, sockets, _ = head
    entry = _service(names, restarts=2)
    workers["w3"] = {"address": "tcp://w3"}
    _gone(restarts, names, workers, "w1")
    first = sockets[0]
    first_id = first.task_id()
    _gone(restarts, names, workers, first.address[len("tcp://"):])  # dies mid-restart
    assert first.closed and len(sockets) == 2 and entry.restarting
    restarts.answer(first_id)  # (a late answer of the first attempt: nothing happens)
    assert entry.restarting
    second = sockets[1]
    second.answer()
    restarts.answer(second.task_id())
    assert not entry.restarting and names.entries["svc"] is entry
    assert entry.restart is None  # both restarts used up: nothing more kept


def test_a_failed_constructor_or_no_restart_left_drops_the_name(head: Any) -> None:
    restarts, names, workers, sockets, _ = head
    _service(names, restarts=1)
    _gone(restarts, names, workers, "w1")
    sockets[0].answer(ValueKind.ERROR)
    restarts.answer(sockets[0].task_id())
    assert "svc" not in names.entries
    entry = _service(names, worker="w2", restarts=0)
    assert entry.restart is not None
    _gone(restarts, names, workers, "w2")
    assert "svc" not in names.entries and len(sockets) == 1


def test_without_workers_the_restart_waits_for_one(head: Any) -> None:
    restarts, names, workers, sockets, _ = head
    entry = _service(names)
    workers.pop("w2")
    _gone(restarts, names, workers, "w1")
    assert names.entries["svc"] is entry and entry.restarting and not sockets
    workers["w9"] = {"address": "tcp://w9"}
    restarts.worker_registered("w9")
    assert [s.address for s in sockets] == ["tcp://w9"] and entry.worker_id == "w9"


def test_a_node_cut_off_keeps_its_actors_until_it_stays_away(head: Any) -> None:
    restarts, names, workers, sockets, _ = head
    entry = _service(names)
    _gone(restarts, names, workers, "w1", process_gone=False)  # a lease lost, not a death
    assert names.entries["svc"] is entry and entry.restarting and not sockets
    workers["w1"] = {"address": "tcp://w1"}
    restarts.worker_registered("w1")  # it is back: the actor lived on, as it was
    assert not entry.restarting and entry.worker_id == "w1" and not sockets
    workers.pop("w1")
    _gone(restarts, names, workers, "w1", process_gone=False)
    restarts.check(restarts.suspect["w1"][0] - 1)
    assert not sockets
    restarts.check(restarts.suspect["w1"][0])  # stayed away: made again elsewhere
    assert [s.address for s in sockets] == ["tcp://w2"]


def test_an_actor_killed_while_it_was_made_again_is_dropped_from_its_worker(
        head: Any) -> None:
    restarts, names, workers, sockets, told = head
    entry = _service(names)
    _gone(restarts, names, workers, "w1")
    names.unregister("svc", entry.actor_id)  # iris.kill from a driver meanwhile
    sockets[0].answer()
    restarts.answer(sockets[0].task_id())
    assert told == [{"kind": "actor_gone", "actor_id": "a1"}] and "svc" not in names.entries


def test_malformed_answers_are_dropped(head: Any) -> None:
    restarts, names, workers, sockets, _ = head
    entry = _service(names)
    _gone(restarts, names, workers, "w1")
    sock = sockets[0]
    sock.inbox.append([b"garbage"])
    restarts.answer(sock.task_id())
    assert entry.restarting and not sock.closed  # still waiting for the real answer
