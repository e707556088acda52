"""Mesh batch frames: the receiver's fast parser (parse_runs) against the reference
parser (parse_frame), and the sender's frame joining (frames_of)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iris._protocol import MsgType, encode
from iris.exceptions import ProtocolError
from iris.mesh._net_wire import (
    BATCH_TARGET_BYTES,
    control_bytes,
    frames_of,
    parse_frame,
    parse_runs,
    run_datas,
    send_header,
    uniform_frame,
)

CEILING = 1 << 22
PING = encode(MsgType.PING)[0]


def flat(runs: list[Any]) -> list[Any]:
    """parse_runs' output in parse_frame's shape."""
    out: list[Any] = []
    for item in runs:
        if item.__class__ is tuple:
            pid, datas = item
            assert datas, "an empty run"
            out.extend((pid, d) for d in datas)
        else:
            out.append(item)
    return out


def pairs(messages: list[Any]) -> list[bytes]:
    """An outbox: header, data per user message; frame, b"" per control message."""
    items: list[bytes] = []
    for m in messages:
        if isinstance(m, tuple):
            items += [send_header(m[0], len(m[1])), m[1]]
        else:
            items += [m, b""]
    return items


message = st.one_of(
    st.tuples(st.sampled_from([1, 2, 2**40, 2**64 - 1]),
              st.sampled_from([b"", b"x" * 8, b"y" * 64, b"IR\x01\x00" * 8])),
    st.just(PING),
    st.just(control_bytes("monitor", {"pid": 3})),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(message, max_size=40), st.integers(1, 40))
def test_parse_runs_agrees_with_parse_frame(messages: list[Any], repeat: int) -> None:
    # Repeating stretches gives long runs of identical headers (the bulk path).
    messages = messages[:3] * repeat + messages[3:]
    if not messages:
        return
    frame = b"".join(pairs(messages))
    assert flat(parse_runs(frame, CEILING)) == parse_frame(frame, CEILING)


@settings(max_examples=500, deadline=None)
@given(st.lists(message, min_size=1, max_size=10), st.integers(1, 30), st.data())
def test_a_damaged_frame_fails_both_parsers_or_neither(messages: list[Any], repeat: int,
                                                       data: st.DataObject) -> None:
    frame = bytearray(b"".join(pairs(messages * repeat)))
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
    if kind == "flip":
        pos = data.draw(st.integers(0, len(frame) - 1))
        frame[pos] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        del frame[data.draw(st.integers(0, len(frame) - 1)):]
    else:
        frame += data.draw(st.binary(min_size=1, max_size=40))
    buf = bytes(frame)
    try:
        expected = parse_frame(buf, CEILING)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            parse_runs(buf, CEILING)
        return
    assert flat(parse_runs(buf, CEILING)) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_runs_raises_only_protocol_error(frame: bytes) -> None:
    try:
        parse_runs(frame, 1 << 20)
    except ProtocolError:
        pass


def test_one_bad_header_in_a_long_uniform_run_is_caught() -> None:
    good = [(7, b"z" * 40)] * 500
    frame = bytearray(b"".join(pairs(good)))
    step = 32 + 40
    frame[250 * step + 3] = 0x55          # the type byte of message 250: unknown
    with pytest.raises(ProtocolError, match="unknown message type"):
        parse_runs(bytes(frame), CEILING)
    frame[250 * step + 3] = 0x00
    frame[250 * step + 31] = 39           # its data length no longer matches
    with pytest.raises(ProtocolError):
        parse_runs(bytes(frame), CEILING)


@pytest.mark.parametrize("index", [1, 2, 63, 64, 255, 256, 257, 300, 511, 512, 998, 999])
@pytest.mark.parametrize("byte", [0, 3, 15, 19, 20, 27, 31])
def test_a_changed_header_anywhere_in_a_long_run_is_seen(index: int, byte: int) -> None:
    # 1,000 equal messages: the bulk path cuts them in chunks of 256, 64, 16, 4 and 1;
    # a header changed at a chunk's start, middle or end must give what the reference
    # parser gives (an error, or another pid/size that starts a new run).
    frame = bytearray(b"".join(pairs([(7, b"z" * 40)] * 1000)))
    pos = index * (32 + 40) + byte
    for value in (frame[pos] ^ 1, frame[pos] ^ 0x80):
        damaged = bytes(frame[:pos]) + bytes([value]) + bytes(frame[pos + 1:])
        try:
            want = parse_frame(damaged, CEILING)
        except ProtocolError:
            with pytest.raises(ProtocolError):
                parse_runs(damaged, CEILING)
            continue
        assert flat(parse_runs(damaged, CEILING)) == want


@settings(max_examples=300, deadline=None)
@given(st.lists(message, min_size=1, max_size=4), st.integers(1, 200), st.data())
def test_uniform_frame_accepts_only_what_the_parser_reads_as_one_run(
        messages: list[Any], repeat: int, data: st.DataObject) -> None:
    frame = bytearray(b"".join(pairs(messages * repeat)))
    if data.draw(st.booleans()):  # sometimes damage one byte
        pos = data.draw(st.integers(0, len(frame) - 1))
        frame[pos] ^= data.draw(st.integers(1, 255))
    buf = bytes(frame)
    found = uniform_frame(buf)
    if found is None:
        return
    pid, step, k = found
    assert k >= 64 and k * step == len(buf)
    assert [(pid, d) for d in run_datas(buf, step, k)] == parse_frame(buf, CEILING)


def test_uniform_frame_needs_one_header_repeated() -> None:
    same = b"".join(pairs([(5, b"q" * 10)] * 100))
    assert uniform_frame(same) == (5, 42, 100)
    assert run_datas(same, 42, 100) == [b"q" * 10] * 100
    assert uniform_frame(same[:42 * 63]) is None                      # too few to bother
    assert uniform_frame(same + b"x") is None                         # trailing bytes
    assert uniform_frame(b"".join(pairs([(5, b"q" * 10)] * 99 + [(6, b"q" * 10)]))) is None
    mixed = [(5, b"q" * 10)] * 50 + [(6, b"q" * 10)] + [(5, b"q" * 10)] * 49
    assert uniform_frame(b"".join(pairs(mixed))) is None              # same ends, other middle
    assert uniform_frame(b"".join(pairs([PING] * 100))) is None


def test_runs_group_consecutive_messages_to_one_actor() -> None:
    msgs = [(1, b"a")] * 5 + [(2, b"b")] * 3 + [PING] + [(2, b"c")] * 4 + [(2, b"dd")] * 2
    runs = parse_runs(b"".join(pairs(msgs)), CEILING)
    shape = [(r[0], len(r[1])) if r.__class__ is tuple else "ping" for r in runs]
    assert shape == [(1, 5), (2, 3), "ping", (2, 6)]


def test_frame_ceiling_and_empty_frames() -> None:
    frame = b"".join(pairs([(1, b"x" * 100)]))
    with pytest.raises(ProtocolError, match="ceiling"):
        parse_runs(frame, 50)
    with pytest.raises(ProtocolError, match="empty"):
        parse_runs(b"", CEILING)
    assert flat(parse_runs(memoryview(frame), CEILING)) == [(1, b"x" * 100)]


@pytest.mark.parametrize("size, count", [(64, 10), (64, 20_000), (100_000, 7), (1, 1)])
def test_frames_of_splits_by_size_and_keeps_order(size: int, count: int) -> None:
    msgs = [(i % 3 + 1, bytes([i % 251]) * size) for i in range(count)]
    frames = frames_of(pairs(msgs))
    assert all(len(f) <= BATCH_TARGET_BYTES + 32 + size for f in frames)
    got = [m for f in frames for m in parse_frame(f, CEILING)]
    assert got == msgs
