"""The iris wire protocol: message types and their binary layout. Pure: bytes in, bytes out.

A ZeroMQ multipart message carries one or more iris messages back to back. Each iris message
is one *header frame* followed by ``nbufs`` raw *buffer frames* (pickle-5 out-of-band
buffers, so a large array never enters a header)::

    header frame = HEADER (20 bytes, network order) + payload (payload_len bytes)

    HEADER: magic b"IR" | version u8 | type u8 | flags u16 | nbufs u16 | request_id u64 |
            payload_len u32

Payloads by type:

* mesh packets keep the original numbers: ``0x00`` user message ``[PID u64][LEN u32][DATA]``,
  ``0x01`` resolve ``[LEN u32][NAME utf-8]`` (reply: a ``0x01`` with ``[PID u64]``, 0 = not
  found), ``0x02`` ping and ``0x03`` pong (empty);
* control messages (``0x10``-``0x1f``, ``0x30``-``0x3f``): a UTF-8 JSON object; they are rare,
  so flexibility wins over speed there;
* hot-path batches (``0x20``-``0x2f``): packed records, see :func:`encode_tasks` and
  :func:`encode_results`. A record's values are :class:`Value` descriptors whose buffers
  come, in order, as the message's buffer frames. The commonest records (one small value
  without buffers) also travel *columnar*, field by field for the whole batch in
  little-endian arrays, then every record's bytes back to back
  (:func:`encode_plain_tasks`, :func:`encode_plain_results`): one C-level conversion per
  column instead of a struct call and an object or two per record.

Decoding is strict: a short, long, unknown-type or wrong-version frame raises
:class:`~iris.exceptions.ProtocolError` and nothing in it is interpreted further. Nothing here
unpickles anything; pickled blobs are opaque bytes to this layer.
"""

from __future__ import annotations

import json
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from iris.exceptions import ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "HEADER",
    "MAGIC",
    "VERSION",
    "Message",
    "MsgType",
    "ResultRecord",
    "TaskRecord",
    "Value",
    "ValueKind",
    "chunk_by_size",
    "decode_control",
    "decode_define",
    "decode_frames",
    "decode_mesh_resolve",
    "decode_mesh_send",
    "decode_results",
    "decode_tasks",
    "encode",
    "encode_control",
    "encode_define",
    "encode_mesh_resolve",
    "encode_mesh_send",
    "encode_results",
    "encode_tasks",
    "encode_plain_results",
    "encode_plain_tasks",
    "decode_plain_results",
    "decode_plain_tasks",
    "plain_result_size",
    "plain_task_size",
]

MAGIC = b"IR"
VERSION = 1
HEADER = struct.Struct("!2sBBHHQI")
DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024

_U64 = struct.Struct("!Q")
_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")
_PID_LEN = struct.Struct("!QI")
# task record prefix: task_id, func_id, num_returns, n_values
_TASK = struct.Struct("!QQHH")
# result record prefix: task_id, exec_ns, n_values
_RESULT = struct.Struct("!QQH")
# value prefix: kind, nbufs, data length
_VALUE = struct.Struct("!BHI")
# the common records packed in one call: a task / a result with its first value's prefix
_TASK_VALUE = struct.Struct("!QQHHBHI")
_RESULT_VALUE = struct.Struct("!QQHBHI")


class MsgType:
    """Message type numbers (internal type, not part of the public API)."""

    MESH_SEND = 0x00
    MESH_RESOLVE = 0x01
    PING = 0x02
    PONG = 0x03

    HELLO = 0x10  # any peer -> head: who I am
    WELCOME = 0x11  # head -> peer: cluster facts, workers
    EVENT = 0x12  # head -> clients: worker added / removed
    REGISTER_WORKER = 0x13  # node -> head
    WORKER_EXITED = 0x14  # node -> head
    SHUTDOWN = 0x15  # head -> node / node -> worker: exit now
    REQUEST = 0x16  # generic control request (reply: REPLY with the same request_id)
    REPLY = 0x17
    WORKER_READY = 0x18  # worker -> node

    TASKS = 0x20  # owner -> worker: batch of TaskRecord
    RESULTS = 0x21  # worker -> owner: batch of ResultRecord
    DEFINE = 0x22  # owner -> worker: function id + cloudpickled function (JSON-free)
    PLAIN_TASKS = 0x23  # owner -> worker: columnar batch of tasks with small inline args
    PLAIN_RESULTS = 0x24  # worker -> owner: columnar batch of one-value results

    OBJ_GET = 0x30  # borrower -> owner: {"oid": n}
    OBJ_VALUE = 0x31  # owner -> borrower: one ResultRecord carrying the value

    CONTROL = frozenset({HELLO, WELCOME, EVENT, REGISTER_WORKER, WORKER_EXITED, SHUTDOWN,
                         REQUEST, REPLY, WORKER_READY, OBJ_GET})
    KNOWN = frozenset({MESH_SEND, MESH_RESOLVE, PING, PONG, TASKS, RESULTS, DEFINE,
                       PLAIN_TASKS, PLAIN_RESULTS, OBJ_VALUE}) | CONTROL


@dataclass(slots=True)
class Message:
    """One decoded iris message: its type, request id, payload and buffer frames."""

    type: int
    payload: bytes | memoryview
    buffers: list[Any] = field(default_factory=list)
    request_id: int = 0
    flags: int = 0


class ValueKind:
    """How a value travels (internal type)."""

    INLINE = 0  # data = pickle-5 header; the buffers travel as frames
    SHM = 1  # data = JSON location of a shared-memory segment
    ERROR = 2  # data = pickled (exception, traceback text)
    REMOTE = 3  # data = JSON location of a value held by another process (owner address)
    ARENA = 4  # data = JSON location in an owner's shared-memory arena (copied out to read)
    REFS = 5  # data = JSON [[owner, oid, return index, pinned], ...]: refs inside a result
    # data = JSON [[owner, oid], ...]: refs from a task's arguments the worker still holds
    # when the task is over (their owners keep them until its borrow registration came).
    KEPT = 6


@dataclass(slots=True)
class Value:
    """A serialized value as it travels: kind, data bytes, out-of-band buffers."""

    kind: int
    data: bytes | memoryview
    # Read-only use only: decoders share one empty tuple between values without buffers.
    buffers: Sequence[Any] = field(default_factory=list)


@dataclass(slots=True)
class TaskRecord:
    """One task to run: ids, the pickled arguments, and the resolved top-level ref values."""

    task_id: int
    func_id: int
    num_returns: int
    args: Value
    resolved: Sequence[Value] = field(default_factory=list)


@dataclass(slots=True)
class ResultRecord:
    """One task's outcome: a value per return (or one ERROR value) and the run time."""

    task_id: int
    values: list[Value]
    exec_ns: int = 0


# --------------------------------------------------------------------------- frames


def encode(msg_type: int, payload: bytes = b"", buffers: Sequence[Any] = (),
           request_id: int = 0, flags: int = 0) -> list[Any]:
    """Return the frames of one message: its header frame, then its buffer frames."""
    if len(buffers) > 0xFFFF:
        raise ProtocolError(f"too many buffers in one message: {len(buffers)} (max 65535)")
    header = HEADER.pack(MAGIC, VERSION, msg_type, flags, len(buffers), request_id,
                         len(payload))
    return [header + payload, *buffers]


def decode_frames(frames: Sequence[Any], max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
                  ) -> list[Message]:
    """Split a multipart message into the iris messages it carries.

    Raises:
        ProtocolError: any frame breaks the layout; nothing of the multipart is returned.
    """
    out: list[Message] = []
    i, n = 0, len(frames)
    if n == 0:
        raise ProtocolError("empty multipart message")
    while i < n:
        head = frames[i]
        hlen = len(head)
        if hlen < HEADER.size:
            raise ProtocolError(f"header frame of {hlen} bytes is shorter than {HEADER.size}")
        if hlen > max_frame_bytes:
            raise ProtocolError(f"header frame of {hlen} bytes exceeds the ceiling "
                                f"{max_frame_bytes}")
        magic, version, mtype, flags, nbufs, request_id, plen = HEADER.unpack_from(head, 0)
        if magic != MAGIC:
            raise ProtocolError(f"bad magic {bytes(magic)!r} (expected {MAGIC!r})")
        if version != VERSION:
            raise ProtocolError(f"protocol version {version} is not supported "
                                f"(this side speaks {VERSION})")
        if mtype not in MsgType.KNOWN:
            raise ProtocolError(f"unknown message type 0x{mtype:02x}")
        if plen != hlen - HEADER.size:
            raise ProtocolError(f"payload length field says {plen} bytes, frame carries "
                                f"{hlen - HEADER.size}")
        if i + 1 + nbufs > n:
            raise ProtocolError(f"message announces {nbufs} buffer frames, only "
                                f"{n - i - 1} follow")
        bufs = list(frames[i + 1:i + 1 + nbufs])
        for b in bufs:
            if len(b) > max_frame_bytes:
                raise ProtocolError(f"buffer frame of {len(b)} bytes exceeds the ceiling "
                                    f"{max_frame_bytes}")
        payload = head[HEADER.size:] if isinstance(head, bytes) else memoryview(head)[HEADER.size:]
        out.append(Message(mtype, payload, bufs, request_id, flags))
        i += 1 + nbufs
    return out


# --------------------------------------------------------------------------- control


def encode_control(msg_type: int, body: dict[str, Any], request_id: int = 0) -> list[Any]:
    """Frames of a control message whose payload is a JSON object."""
    return encode(msg_type, json.dumps(body, separators=(",", ":")).encode(),
                  request_id=request_id)


def decode_control(msg: Message) -> dict[str, Any]:
    """The JSON object of a control message.

    Raises:
        ProtocolError: the payload is not a UTF-8 JSON object.
    """
    try:
        body = json.loads(bytes(msg.payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"control message 0x{msg.type:02x} is not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"control message 0x{msg.type:02x} must carry a JSON object, "
                            f"got {type(body).__name__}")
    return body


# --------------------------------------------------------------------------- mesh


def encode_mesh_send(pid: int, data: bytes) -> list[Any]:
    """Frames of a 0x00 user message to actor ``pid``."""
    return encode(MsgType.MESH_SEND, _PID_LEN.pack(pid, len(data)) + bytes(data))


def decode_mesh_send(msg: Message) -> tuple[int, bytes]:
    """``(pid, data)`` of a 0x00 user message."""
    p = msg.payload
    if len(p) < _PID_LEN.size:
        raise ProtocolError(f"mesh send payload of {len(p)} bytes is shorter than 12")
    pid, length = _PID_LEN.unpack_from(p, 0)
    if length != len(p) - _PID_LEN.size:
        raise ProtocolError(f"mesh send says {length} data bytes, carries "
                            f"{len(p) - _PID_LEN.size}")
    return pid, bytes(p[_PID_LEN.size:])


def encode_mesh_resolve(name: str | None = None, pid: int | None = None,
                        request_id: int = 0) -> list[Any]:
    """A 0x01 request (``name``) or its reply (``pid``, 0 = not found)."""
    if pid is not None:
        return encode(MsgType.MESH_RESOLVE, _U64.pack(pid), request_id=request_id, flags=1)
    raw = (name or "").encode("utf-8")
    return encode(MsgType.MESH_RESOLVE, _U32.pack(len(raw)) + raw, request_id=request_id)


def decode_mesh_resolve(msg: Message) -> str | int:
    """The name of a 0x01 request, or the PID of a reply (flags bit 0 set)."""
    p = msg.payload
    if msg.flags & 1:
        if len(p) != 8:
            raise ProtocolError(f"resolve reply must carry 8 bytes, got {len(p)}")
        return int(_U64.unpack_from(p, 0)[0])
    if len(p) < 4:
        raise ProtocolError(f"resolve payload of {len(p)} bytes is shorter than 4")
    (length,) = _U32.unpack_from(p, 0)
    if length != len(p) - 4:
        raise ProtocolError(f"resolve says {length} name bytes, carries {len(p) - 4}")
    try:
        return bytes(p[4:]).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("resolve name is not UTF-8") from None


# --------------------------------------------------------------------------- batches


def _put_value(parts: list[bytes], bufs: list[Any], v: Value) -> None:
    parts.append(_VALUE.pack(v.kind, len(v.buffers), len(v.data)))
    parts.append(v.data)  # type: ignore[arg-type]
    bufs.extend(v.buffers)


def _get_value(p: Any, off: int, bufs: Sequence[Any], bi: int) -> tuple[Value, int, int]:
    end = off + _VALUE.size
    if end > len(p):
        raise ProtocolError("value record truncated")
    kind, nbufs, dlen = _VALUE.unpack_from(p, off)
    if kind > ValueKind.KEPT:
        raise ProtocolError(f"unknown value kind {kind}")
    if end + dlen > len(p):
        raise ProtocolError(f"value says {dlen} data bytes, only {len(p) - end} remain")
    if bi + nbufs > len(bufs):
        raise ProtocolError(f"value wants {nbufs} buffers, only {len(bufs) - bi} remain")
    return Value(kind, p[end:end + dlen], list(bufs[bi:bi + nbufs])), end + dlen, bi + nbufs


def encode_tasks(tasks: Sequence[TaskRecord]) -> list[Any]:
    """Frames of one TASKS batch."""
    parts: list[Any] = [_U32.pack(len(tasks))]
    bufs: list[Any] = []
    append, pack = parts.append, _TASK_VALUE.pack
    for t in tasks:
        a = t.args
        append(pack(t.task_id, t.func_id, t.num_returns, len(t.resolved), a.kind,
                    len(a.buffers), len(a.data)))
        append(a.data)
        if a.buffers:
            bufs.extend(a.buffers)
        for v in t.resolved:
            _put_value(parts, bufs, v)
    return encode(MsgType.TASKS, b"".join(parts), bufs)


def decode_tasks(msg: Message) -> list[TaskRecord]:
    """The records of a TASKS batch; raises ProtocolError on any inconsistency."""
    p, bufs = msg.payload, msg.buffers
    plen, nbufs = len(p), len(bufs)
    if plen < 4:
        raise ProtocolError("task batch shorter than its count")
    (count,) = _U32.unpack_from(p, 0)
    off, bi, out = 4, 0, []
    unpack = _TASK_VALUE.unpack_from
    size = _TASK_VALUE.size
    for _ in range(count):
        if off + size > plen:
            raise ProtocolError("task record truncated")
        task_id, func_id, nret, nres, kind, nb, dlen = unpack(p, off)
        off += size
        if kind > ValueKind.KEPT or off + dlen > plen or bi + nb > nbufs:
            raise ProtocolError("task record's argument value is malformed or truncated")
        args = Value(kind, p[off:off + dlen], list(bufs[bi:bi + nb]) if nb else ())
        off += dlen
        bi += nb
        resolved: list[Value] | tuple[()] = [] if nres else ()
        for _ in range(nres):
            v, off, bi = _get_value(p, off, bufs, bi)
            resolved.append(v)  # type: ignore[union-attr]
        out.append(TaskRecord(task_id, func_id, nret, args, resolved))
    _check_consumed(off, plen, bi, nbufs, "task batch")
    return out


def encode_results(results: Sequence[ResultRecord], msg_type: int = MsgType.RESULTS,
                   request_id: int = 0) -> list[Any]:
    """Frames of one RESULTS batch (or an OBJ_VALUE reply with ``msg_type``)."""
    parts: list[Any] = [_U32.pack(len(results))]
    bufs: list[Any] = []
    append, pack = parts.append, _RESULT_VALUE.pack
    for r in results:
        values = r.values
        if len(values) == 1:
            v = values[0]
            append(pack(r.task_id, r.exec_ns, 1, v.kind, len(v.buffers), len(v.data)))
            append(v.data)
            if v.buffers:
                bufs.extend(v.buffers)
            continue
        append(_RESULT.pack(r.task_id, r.exec_ns, len(values)))
        for v in values:
            _put_value(parts, bufs, v)
    return encode(msg_type, b"".join(parts), bufs, request_id=request_id)


def decode_results(msg: Message) -> list[ResultRecord]:
    """The records of a RESULTS batch or OBJ_VALUE reply."""
    p, bufs = msg.payload, msg.buffers
    plen, nbufs = len(p), len(bufs)
    if plen < 4:
        raise ProtocolError("result batch shorter than its count")
    (count,) = _U32.unpack_from(p, 0)
    off, bi, out = 4, 0, []
    unpack1 = _RESULT_VALUE.unpack_from
    size1 = _RESULT_VALUE.size
    for _ in range(count):
        if off + size1 <= plen:  # one unpack for the common record of a single value
            task_id, exec_ns, nval, kind, nb, dlen = unpack1(p, off)
        elif off + _RESULT.size <= plen:
            task_id, exec_ns, nval = _RESULT.unpack_from(p, off)
        else:
            raise ProtocolError("result record truncated")
        if nval == 1 and off + size1 <= plen:
            off += size1
            if kind > ValueKind.KEPT or off + dlen > plen or bi + nb > nbufs:
                raise ProtocolError("result value is malformed or truncated")
            out.append(ResultRecord(task_id, [Value(
                kind, p[off:off + dlen], list(bufs[bi:bi + nb]) if nb else ())], exec_ns))
            off += dlen
            bi += nb
            continue
        off += _RESULT.size
        values = []
        for _ in range(nval):
            v, off, bi = _get_value(p, off, bufs, bi)
            values.append(v)
        out.append(ResultRecord(task_id, values, exec_ns))
    _check_consumed(off, plen, bi, nbufs, "result batch")
    return out


# Columns of the plain batches are little-endian arrays of these item codes.
_SWAP = sys.byteorder != "little"
for _code, _size in (("Q", 8), ("I", 4), ("H", 2), ("B", 1)):
    if array(_code).itemsize != _size:  # pragma: no cover  (no such platform seen)
        raise ImportError(f"array code {_code!r} is not {_size} bytes here")
# Value kinds a plain record may carry: tasks' arguments, results' values.
_PLAIN_TASK_KINDS = frozenset({ValueKind.INLINE, ValueKind.ARENA})
_PLAIN_RESULT_KINDS = frozenset({ValueKind.INLINE, ValueKind.ERROR})
# Column bytes per record: ids, function ids, return counts, kinds, lengths / ids, run
# times, kinds, lengths.
_PLAIN_TASK_COLUMNS = 8 + 8 + 2 + 1 + 4
_PLAIN_RESULT_COLUMNS = 8 + 8 + 1 + 4


def _column(code: str, values: Sequence[int]) -> bytes:
    a = array(code, values)
    if _SWAP:  # pragma: no cover
        a.byteswap()
    return a.tobytes()


def _read_column(code: str, p: Any, off: int, count: int) -> tuple[list[int], int]:
    a = array(code)
    end = off + a.itemsize * count
    a.frombytes(p[off:end])
    if _SWAP:  # pragma: no cover
        a.byteswap()
    return a.tolist(), end


def _datas(p: Any, off: int, lens: list[int], what: str) -> list[Any]:
    """The records' bytes that follow the columns: exactly ``sum(lens)`` of them."""
    if off + sum(lens) != len(p):
        raise ProtocolError(f"{what}: its lengths say {sum(lens)} bytes of records, it "
                            f"carries {len(p) - off}")
    ends = list(accumulate(lens, initial=off))
    return [p[a:b] for a, b in zip(ends, ends[1:])]


def _plain_batch(msg: Message, column_bytes: int, what: str) -> tuple[bytes, int]:
    """A plain batch's payload (as bytes) and record count, checked against its size."""
    p = msg.payload if type(msg.payload) is bytes else bytes(msg.payload)
    if msg.buffers:
        raise ProtocolError(f"a plain {what} batch carries no buffer frames")
    if len(p) < 4:
        raise ProtocolError(f"plain {what} batch shorter than its count")
    (count,) = _U32.unpack_from(p, 0)
    if 4 + count * column_bytes > len(p):
        raise ProtocolError(f"plain {what} batch of {count} records is truncated")
    return p, count


def encode_plain_tasks(records: Sequence[tuple[int, int, int, int, bytes]]) -> list[Any]:
    """Frames of a PLAIN_TASKS batch of ``(task_id, func_id, num_returns, kind, data)``
    records: tasks whose arguments are one value without buffer frames (INLINE pickled
    arguments, or an ARENA location).

    Layout: ``count u32 | task_id u64 x n | func_id u64 x n | num_returns u16 x n |
    kind u8 x n | data length u32 x n | data ...`` (columns little-endian).
    """
    ids, fids, nrets, kinds, datas = zip(*records) if records else ((),) * 5
    return encode(MsgType.PLAIN_TASKS, b"".join([
        _U32.pack(len(ids)), _column("Q", ids), _column("Q", fids), _column("H", nrets),
        _column("B", kinds), _column("I", [len(d) for d in datas]), *datas]))


def plain_task_size(record: tuple[int, int, int, int, bytes]) -> int:
    """Bytes a record takes in a PLAIN_TASKS payload (for :func:`chunk_by_size`)."""
    return _PLAIN_TASK_COLUMNS + len(record[4])


def decode_plain_tasks(msg: Message) -> tuple[list[int], list[int], list[int], list[int],
                                              list[Any]]:
    """``(task_ids, func_ids, num_returns, kinds, datas)`` of a PLAIN_TASKS batch; raises
    ProtocolError on any inconsistency."""
    p, count = _plain_batch(msg, _PLAIN_TASK_COLUMNS, "task")
    ids, off = _read_column("Q", p, 4, count)
    fids, off = _read_column("Q", p, off, count)
    nrets, off = _read_column("H", p, off, count)
    kinds, off = _read_column("B", p, off, count)
    lens, off = _read_column("I", p, off, count)
    if not _PLAIN_TASK_KINDS.issuperset(kinds):
        raise ProtocolError("plain task batch has a value kind it cannot carry")
    return ids, fids, nrets, kinds, _datas(p, off, lens, "plain task batch")


def encode_plain_results(records: Sequence[tuple[int, int, int, bytes]]) -> list[Any]:
    """Frames of a PLAIN_RESULTS batch of ``(task_id, exec_ns, kind, data)`` records:
    results of one value without buffer frames (an INLINE pickle or an ERROR).

    Layout: ``count u32 | task_id u64 x n | exec_ns u64 x n | kind u8 x n |
    data length u32 x n | data ...`` (columns little-endian).
    """
    ids, execs, kinds, datas = zip(*records) if records else ((),) * 4
    return encode(MsgType.PLAIN_RESULTS, b"".join([
        _U32.pack(len(ids)), _column("Q", ids), _column("Q", execs), _column("B", kinds),
        _column("I", [len(d) for d in datas]), *datas]))


def plain_result_size(record: tuple[int, int, int, bytes]) -> int:
    """Bytes a record takes in a PLAIN_RESULTS payload (for :func:`chunk_by_size`)."""
    return _PLAIN_RESULT_COLUMNS + len(record[3])


def decode_plain_results(msg: Message) -> tuple[list[int], list[int], list[int], list[Any]]:
    """``(task_ids, exec_ns, kinds, datas)`` of a PLAIN_RESULTS batch; raises ProtocolError
    on any inconsistency."""
    p, count = _plain_batch(msg, _PLAIN_RESULT_COLUMNS, "result")
    ids, off = _read_column("Q", p, 4, count)
    execs, off = _read_column("Q", p, off, count)
    kinds, off = _read_column("B", p, off, count)
    lens, off = _read_column("I", p, off, count)
    if not _PLAIN_RESULT_KINDS.issuperset(kinds):
        raise ProtocolError("plain result batch has a value kind it cannot carry")
    return ids, execs, kinds, _datas(p, off, lens, "plain result batch")


def chunk_by_size(records: Sequence[Any], budget: int, size: Any, bound: int = 0
                  ) -> list[Sequence[Any]]:
    """Split records into runs whose header bytes (``size(record)``) stay within ``budget``
    (a record larger than the budget gets a run of its own), so that no batch's header
    frame outgrows the frame ceiling. ``bound``, if known, is an upper bound of every
    record's size: when all of them fit at that size, nothing is looked at."""
    if len(records) <= 1 or (bound and len(records) * bound <= budget):
        return [records]
    runs: list[Sequence[Any]] = []
    start, total = 0, 0
    for i, rec in enumerate(records):
        n = size(rec)
        if total + n > budget and i > start:
            runs.append(records[start:i])
            start, total = i, 0
        total += n
    runs.append(records[start:])
    return runs


def encode_define(func_id: int, blob: bytes) -> list[Any]:
    """Frames of a DEFINE message: a function id and its cloudpickled bytes."""
    return encode(MsgType.DEFINE, _U64.pack(func_id) + blob)


def decode_define(msg: Message) -> tuple[int, bytes]:
    """``(func_id, blob)`` of a DEFINE message."""
    if len(msg.payload) < 8:
        raise ProtocolError("define message shorter than its function id")
    return int(_U64.unpack_from(msg.payload, 0)[0]), bytes(msg.payload[8:])


def _check_consumed(off: int, plen: int, bi: int, nbufs: int, what: str) -> None:
    if off != plen:
        raise ProtocolError(f"{what} has {plen - off} trailing bytes")
    if bi != nbufs:
        raise ProtocolError(f"{what} has {nbufs - bi} buffer frames no record claims")

