"""The wire protocol: round trips, and strict rejection of anything malformed."""

from __future__ import annotations

import pickle
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iris import _protocol as p
from iris.exceptions import ProtocolError


def test_header_layout_is_fixed() -> None:
    frames = p.encode(p.MsgType.PING, b"", request_id=7)
    assert len(frames) == 1
    magic, version, mtype, flags, nbufs, rid, plen = p.HEADER.unpack(frames[0])
    assert (magic, version, mtype, flags, nbufs, rid, plen) == (b"IR", 1, 0x02, 0, 0, 7, 0)


def test_mesh_send_round_trip_matches_the_original_layout() -> None:
    frames = p.encode_mesh_send(42, b"hello")
    (msg,) = p.decode_frames(frames)
    assert msg.type == 0x00
    assert bytes(msg.payload) == struct.pack("!QI", 42, 5) + b"hello"
    assert p.decode_mesh_send(msg) == (42, b"hello")


def test_mesh_resolve_request_and_reply() -> None:
    (req,) = p.decode_frames(p.encode_mesh_resolve("auth-provider", request_id=3))
    assert req.type == 0x01 and req.request_id == 3
    assert p.decode_mesh_resolve(req) == "auth-provider"
    (rep,) = p.decode_frames(p.encode_mesh_resolve(pid=99, request_id=3))
    assert p.decode_mesh_resolve(rep) == 99


def test_control_round_trip() -> None:
    (m,) = p.decode_frames(p.encode_control(p.MsgType.HELLO, {"role": "client", "n": [1, 2]}))
    assert p.decode_control(m) == {"role": "client", "n": [1, 2]}


def test_task_and_result_batches_carry_out_of_band_buffers() -> None:
    buf = pickle.PickleBuffer(bytearray(b"x" * 1000))
    tasks = [
        p.TaskRecord(1, 0xABC, 1, p.Value(p.ValueKind.INLINE, b"args", [buf]),
                     [p.Value(p.ValueKind.SHM, b'{"name":"iris-x-1"}')]),
        p.TaskRecord(2, 0xABC, 3, p.Value(p.ValueKind.INLINE, b"more")),
    ]
    frames = p.encode_tasks(tasks)
    assert len(frames) == 2  # header frame + the one buffer, never copied into the header
    assert len(frames[0]) < 200
    (msg,) = p.decode_frames([bytes(memoryview(f)) for f in frames])
    out = p.decode_tasks(msg)
    assert [(t.task_id, t.func_id, t.num_returns) for t in out] == [(1, 0xABC, 1), (2, 0xABC, 3)]
    assert bytes(out[0].args.data) == b"args"
    assert bytes(out[0].args.buffers[0]) == b"x" * 1000
    assert bytes(out[0].resolved[0].data) == b'{"name":"iris-x-1"}'

    results = [p.ResultRecord(1, [p.Value(p.ValueKind.ERROR, b"err")], 123)]
    (rmsg,) = p.decode_frames(p.encode_results(results))
    (r,) = p.decode_results(rmsg)
    assert (r.task_id, r.exec_ns, r.values[0].kind, bytes(r.values[0].data)) == (1, 123, 2, b"err")


def test_several_messages_in_one_multipart() -> None:
    frames = p.encode_define(5, b"code") + p.encode_tasks(
        [p.TaskRecord(9, 5, 1, p.Value(p.ValueKind.INLINE, b"a"))])
    msgs = p.decode_frames(frames)
    assert [m.type for m in msgs] == [p.MsgType.DEFINE, p.MsgType.TASKS]
    assert p.decode_define(msgs[0]) == (5, b"code")


@pytest.mark.parametrize("frame, message", [
    (b"", "shorter"),
    (b"XX" + bytes(18), "bad magic"),
    (p.HEADER.pack(b"IR", 9, 0x02, 0, 0, 0, 0), "version 9"),
    (p.HEADER.pack(b"IR", 1, 0x7F, 0, 0, 0, 0), "unknown message type"),
    (p.HEADER.pack(b"IR", 1, 0x02, 0, 0, 0, 5), "payload length"),
    (p.HEADER.pack(b"IR", 1, 0x02, 0, 2, 0, 0), "buffer frames"),
])
def test_malformed_frames_are_rejected(frame: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        p.decode_frames([frame])


def test_size_ceiling() -> None:
    frames = p.encode(p.MsgType.MESH_SEND, struct.pack("!QI", 1, 100) + b"x" * 100)
    with pytest.raises(ProtocolError, match="ceiling"):
        p.decode_frames(frames, max_frame_bytes=64)


def test_truncated_batches_are_rejected() -> None:
    (msg,) = p.decode_frames(p.encode_tasks(
        [p.TaskRecord(1, 2, 1, p.Value(p.ValueKind.INLINE, b"abcdef"))]))
    short = p.Message(msg.type, bytes(msg.payload)[:-3])
    with pytest.raises(ProtocolError):
        p.decode_tasks(short)
    long = p.Message(msg.type, bytes(msg.payload) + b"zz")
    with pytest.raises(ProtocolError, match="trailing"):
        p.decode_tasks(long)


def test_plain_batches_round_trip() -> None:
    ids, fids = [1, 2**64 - 1, 7], [0xABC, 0xABC, 5]
    datas = [b"args", b"", b"\x00" * 100]
    nrets, kinds = [1, 3, 65535], [p.ValueKind.INLINE, p.ValueKind.ARENA, p.ValueKind.INLINE]
    (msg,) = p.decode_frames(p.encode_plain_tasks(list(zip(ids, fids, nrets, kinds, datas))))
    assert msg.type == p.MsgType.PLAIN_TASKS
    assert p.decode_plain_tasks(msg) == (ids, fids, nrets, kinds, datas)
    assert len(msg.payload) == 4 + sum(map(p.plain_task_size, zip(ids, fids, nrets, kinds,
                                                                  datas)))
    results = list(zip(ids, [5, 0, 2**63], [0, 2, 0], datas))
    (msg,) = p.decode_frames(p.encode_plain_results(results))
    assert msg.type == p.MsgType.PLAIN_RESULTS
    assert p.decode_plain_results(msg) == (ids, [5, 0, 2**63], [0, 2, 0], datas)
    assert len(msg.payload) == 4 + sum(map(p.plain_result_size, results))
    (msg,) = p.decode_frames(p.encode_plain_tasks([]))
    assert p.decode_plain_tasks(msg) == ([], [], [], [], [])


def test_malformed_plain_batches_are_rejected() -> None:
    (msg,) = p.decode_frames(p.encode_plain_tasks([(1, 3, 1, 0, b"ab"), (2, 3, 1, 0, b"cd")]))
    payload = bytes(msg.payload)
    for bad, match in [(payload[:-1], "lengths say"), (payload + b"z", "lengths say"),
                       (payload[:30], "truncated"), (payload[:3], "shorter")]:
        with pytest.raises(ProtocolError, match=match):
            p.decode_plain_tasks(p.Message(msg.type, bad))
    kinds_at = 4 + 2 * 8 + 2 * 8 + 2 * 2
    wrong_kind = payload[:kinds_at] + bytes([p.ValueKind.SHM]) + payload[kinds_at + 1:]
    with pytest.raises(ProtocolError, match="kind"):
        p.decode_plain_tasks(p.Message(msg.type, wrong_kind))
    with pytest.raises(ProtocolError, match="buffer"):
        p.decode_plain_tasks(p.Message(msg.type, payload, [b"x"]))
    (msg,) = p.decode_frames(p.encode_plain_results([(1, 2, 0, b"ab")]))
    payload = bytes(msg.payload)
    with pytest.raises(ProtocolError, match="lengths say"):
        p.decode_plain_results(p.Message(msg.type, payload[:-1]))
    wrong_kind = payload[:4 + 16] + bytes([p.ValueKind.ARENA]) + payload[4 + 17:]
    with pytest.raises(ProtocolError, match="kind"):
        p.decode_plain_results(p.Message(msg.type, wrong_kind))
    # A count far beyond the bytes that follow fails before any column is read.
    huge = p.Message(msg.type, (2**32 - 1).to_bytes(4, "big") + payload[4:])
    with pytest.raises(ProtocolError, match="truncated"):
        p.decode_plain_results(huge)


def test_control_payload_must_be_a_json_object() -> None:
    with pytest.raises(ProtocolError):
        p.decode_control(p.Message(p.MsgType.HELLO, b"\xff\xfe"))
    with pytest.raises(ProtocolError, match="JSON object"):
        p.decode_control(p.Message(p.MsgType.HELLO, b"[1, 2]"))


_decoders = [p.decode_tasks, p.decode_results, p.decode_control, p.decode_mesh_send,
             p.decode_mesh_resolve, p.decode_define, p.decode_plain_tasks,
             p.decode_plain_results]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_random_frames_raise_only_protocol_error(frames: list[bytes]) -> None:
    try:
        msgs = p.decode_frames(frames)
    except ProtocolError:
        return
    for m in msgs:
        for decode in _decoders:
            try:
                decode(m)
            except ProtocolError:
                pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 0xFF), st.integers(0, 3))
def test_random_payloads_behind_a_valid_header(payload: bytes, mtype: int, nbufs: int) -> None:
    header = p.HEADER.pack(b"IR", 1, mtype, 0, nbufs, 0, len(payload))
    frames = [header + payload] + [b"b"] * nbufs
    try:
        msgs = p.decode_frames(frames)
    except ProtocolError:
        assert mtype not in p.MsgType.KNOWN
        return
    for m in msgs:
        for decode in _decoders:
            try:
                decode(m)
            except ProtocolError:
                pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 100), max_size=50), st.integers(1, 150))
def test_chunk_by_size_keeps_order_and_respects_the_budget(sizes: list[int], budget: int
                                                           ) -> None:
    chunks = p.chunk_by_size(sizes, budget, lambda n: n)
    assert [x for c in chunks for x in c] == sizes
    for c in chunks:
        assert len(c) == 1 or sum(c) <= budget  # only a lone oversized record may exceed
