"""Mesh batch frames: many iris messages in one ZeroMQ frame. Pure: bytes in, bytes out.

The mesh speaks the messages of ``iris._protocol`` (0x00 user message, 0x01 resolve, 0x02
ping, 0x03 pong, and JSON control messages of type REQUEST with an ``op`` field). None of
them has buffer frames, and each header says how long its payload is, so the sender packs
every message queued for one node, back to back, into one frame ("batching without
waiting": whatever is queued when the I/O thread gets to it goes in one frame; a lone
message goes out alone, at once)::

    frame = message message message ...
    message = HEADER (20 bytes, see _protocol) + payload        (nbufs must be 0)

Parsing is as strict as ``_protocol.decode_frames``: bad magic, version, type, length or
a buffer count other than 0 raise ``ProtocolError`` and nothing of the frame is used.
0x00 messages take an inlined fast path; every other type goes through ``_protocol``.
``uniform_frame``/``run_datas`` recognise a frame of equal 0x00 headers without making an
object per message, and cut it up later (on the receiving actor's scheduler thread).
Internal module.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from typing import Any

from iris._protocol import HEADER, MAGIC, VERSION, MsgType, decode_frames, encode
from iris.exceptions import ProtocolError

__all__ = ["BATCH_TARGET_BYTES", "UNIFORM_MIN", "control_bytes", "frames_of", "jsonable",
           "message_bytes", "outbox_items", "pack_batch", "parse_frame", "parse_runs",
           "run_datas", "send_header", "uniform_frame"]

# A batch frame is closed once it holds this much. Per-frame costs (a wake-up and a GIL
# hand-over on each side) matter up to a few hundred KiB; bigger frames would only delay
# the receiver's first message.
BATCH_TARGET_BYTES = 512 * 1024

# HEADER followed by the 0x00 payload's [PID u64][LEN u32]: one unpack per user message.
_SEND = struct.Struct("!2sBBHHQIQI")
_HSIZE = HEADER.size
_SEND_SIZE = _SEND.size
_MESH_SEND = MsgType.MESH_SEND
_KNOWN = MsgType.KNOWN
# The first 16 bytes of every 0x00 message a mesh sends: magic, version, type 0x00, flags 0,
# nbufs 0, request id 0. The receiver's fast path compares them as one string.
_SEND_PREFIX = _SEND.pack(MAGIC, VERSION, _MESH_SEND, 0, 0, 0, 0, 0, 0)[:16]
_FAST = struct.Struct("!16sIQI")  # that prefix, payload length, pid, data length
# Items per frame (header and data: 4096 messages) before the joined frame's size is checked.
_CHUNK_ITEMS = 8192
# parse_runs' bulk path: per data length, structs that cut 256, 64, 16, 4 and 1 messages.
_RUN_CHUNKS = (256, 64, 16, 4, 1)
_RUN_STRUCTS: dict[int, list[struct.Struct]] = {}
# A frame of at least this many equal messages may be queued whole (uniform_frame).
UNIFORM_MIN = 64
# ... for messages up to this size (bigger ones cost their copy, not their Python steps).
_BULK_MAX_STEP = 64 * 1024



def send_header(pid: int, n: int) -> bytes:
    """The 32-byte header of a 0x00 message of ``n`` data bytes to ``pid``.

    Raises:
        struct.error: ``pid`` or ``n`` does not fit its field (u64, u32 - 12).
    """
    return _SEND.pack(MAGIC, VERSION, _MESH_SEND, 0, 0, 0, n + 12, pid, n)


def outbox_items(pid: int, datas: list[bytes], lens: list[int]) -> list[bytes]:
    """The outbox items (``header, data`` pairs) of messages ``datas`` to ``pid``, whose
    lengths are ``lens``: built with slice assignments, one header per distinct length.

    Raises:
        struct.error: ``pid`` or a length does not fit its field.
    """
    k = len(datas)
    items: list[bytes] = [b""] * (2 * k)
    items[1::2] = datas
    lo = min(lens, default=0)
    if lo == max(lens, default=0):
        items[0::2] = [send_header(pid, lo)] * k
    else:
        headers = {n: send_header(pid, n) for n in set(lens)}
        items[0::2] = list(map(headers.__getitem__, lens))
    return items


def message_bytes(frames: list[Any]) -> bytes:
    """The single header frame of a buffer-less message, as bytes (for an outbox)."""
    if len(frames) != 1:
        raise ProtocolError(f"a mesh message cannot carry buffer frames ({len(frames) - 1})")
    return bytes(frames[0])


def control_bytes(op: str, body: dict[str, Any] | None = None, request_id: int = 0) -> bytes:
    """A REQUEST control message ``{"op": op, **body}`` as bytes."""
    payload = {"op": op, **(body or {})}
    return encode(MsgType.REQUEST, json.dumps(payload, separators=(",", ":")).encode(),
                  request_id=request_id)[0]


def jsonable(value: Any) -> Any:
    """``value`` if JSON can carry it, else its JSON round trip with ``repr`` fallbacks."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=repr))


def pack_batch(items: Iterable[Any], parts: list[bytes]) -> None:
    """Append the wire bytes of ``items`` to ``parts``.

    An item is ``(pid, data)`` for a 0x00 user message, or ``bytes`` already encoded.
    """
    pack = _SEND.pack
    append = parts.append
    for item in items:
        if item.__class__ is tuple:
            pid, data = item
            n = len(data)
            append(pack(MAGIC, VERSION, _MESH_SEND, 0, 0, 0, n + 12, pid, n))
            append(data)
        else:
            append(item)


def frames_of(items: list[bytes]) -> list[bytes]:
    """Join an outbox's items (``header, data`` pairs; a control message is ``frame, b""``)
    into batch frames of about ``BATCH_TARGET_BYTES``: one ``b"".join`` per frame."""
    out: list[bytes] = []
    n = len(items)
    for i in range(0, n, _CHUNK_ITEMS):
        chunk = items[i:i + _CHUNK_ITEMS] if n > _CHUNK_ITEMS else items
        frame = b"".join(chunk)
        if len(frame) <= BATCH_TARGET_BYTES or len(chunk) <= 2:
            out.append(frame)
            continue
        # Big messages: split by size (per pair, but a pair is then many bytes).
        start = size = 0
        for j in range(0, len(chunk), 2):
            size += len(chunk[j]) + len(chunk[j + 1])
            if size >= BATCH_TARGET_BYTES:
                out.append(b"".join(chunk[start:j + 2]))
                start, size = j + 2, 0
        if start < len(chunk):
            out.append(b"".join(chunk[start:]))
    return out


def parse_runs(buf: Any, max_bytes: int) -> list[Any]:
    """Split one batch frame into runs and control messages, in frame order.

    A run is ``(pid, [data, ...])``: consecutive 0x00 messages to one actor, so the
    receiver hands them to its queue at once. Control messages are ``Message`` records.
    Strict like ``parse_frame``.

    Raises:
        ProtocolError: anything in the frame breaks the layout; nothing is returned then.
    """
    if buf.__class__ is not bytes:
        buf = bytes(buf)
    end = len(buf)
    if end > max_bytes:
        raise ProtocolError(f"mesh frame of {end} bytes exceeds the ceiling {max_bytes}")
    if end == 0:
        raise ProtocolError("empty mesh frame")
    out: list[Any] = []
    append = out.append
    unpack = _FAST.unpack_from
    starts = buf.startswith
    prefix_ok = _SEND_PREFIX
    last_end = end - _SEND_SIZE
    off = 0
    last = -1          # pid of the current run
    datas: list[bytes] = []
    push = datas.append
    hdr = b""          # the last valid 0x00 header: the same bytes again need no checks
    step = 0           # its message's size; 0 while there is none
    bulk = True        # off after one failed bulk check (a frame built to defeat it)
    while off < end:
        # The common case: the same 32-byte header as the message before (same actor,
        # same size), already validated.
        if step and starts(hdr, off):
            k = (end - off) // step  # messages of this size that fit in the rest
            if bulk and k > 2 and step <= _BULK_MAX_STEP:
                if not starts(hdr, off + (k - 1) * step):
                    # Where does the run end? Bisect for the last matching header (a
                    # candidate only: the check below verifies every header of it).
                    lo, hi = 0, k - 1
                    while hi - lo > 1:
                        mid = (lo + hi) >> 1
                        if starts(hdr, off + mid * step):
                            lo = mid
                        else:
                            hi = mid
                    k = lo + 1
                if k > 2:
                    run = _unpack_run(buf, hdr, off, k, step)
                    if run is not None:
                        datas.extend(run)
                        off += k * step
                        continue
                    bulk = False
            if off + step <= end:
                push(buf[off + _SEND_SIZE:off + step])
                off += step
                continue
        if off <= last_end:
            prefix, plen, pid, dlen = unpack(buf, off)
            stop = off + _HSIZE + plen
            if prefix == prefix_ok and dlen == plen - 12 and stop <= end:
                if pid != last:
                    datas = []
                    push = datas.append
                    append((pid, datas))
                    last = pid
                hdr = buf[off:off + _SEND_SIZE]
                step = stop - off
                push(buf[off + _SEND_SIZE:stop])
                off = stop
                continue
        # Anything else (control messages, a request id, errors): the general parser.
        off = _parse_one(buf, off, end, max_bytes, append)
        last = -1
        step = 0
    return out


def _unpack_run(buf: bytes, hdr: bytes, off: int, k: int, step: int) -> list[bytes] | None:
    """The data of the ``k`` messages of ``step`` bytes each from ``off`` if every one of
    them starts with the header ``hdr``, else None.

    Cached ``struct`` formats cut up to 256 messages at once, in C, instead of one slice
    (a Python step) per message. A chunk's headers are all ``hdr`` exactly when its bytes
    read ``hdr, data, hdr, data, ...``: one ``startswith`` of its first header and one of
    ``hdr.join(its data)`` (a small buffer, reused: no fresh pages per frame).
    """
    structs = _run_structs(step - _SEND_SIZE)
    starts = buf.startswith
    join = hdr.join
    out: list[bytes] = []
    extend = out.extend
    for m, s in zip(_RUN_CHUNKS, structs):
        if k >= m:
            unpack = s.unpack_from
            size = s.size
            while k >= m:
                chunk = unpack(buf, off)
                if not (starts(hdr, off) and starts(join(chunk), off + _SEND_SIZE)):
                    return None
                extend(chunk)
                off += size
                k -= m
    return out


def uniform_frame(buf: bytes) -> tuple[int, int, int] | None:
    """``(pid, step, k)`` if the frame is exactly ``k`` (at least ``UNIFORM_MIN``) valid
    0x00 messages with one and the same header (one actor, one size: the usual flood),
    each ``step`` bytes long; else None (``parse_runs`` then decides).

    The check makes no object per message: the first header is validated as
    ``parse_runs`` does, and numpy gathers the ``k`` headers (a strided view) into one
    bytes string compared with ``k`` copies of the first. ``run_datas`` then cuts the
    messages out, with no further checks, whenever they are wanted.
    """
    end = len(buf)
    if end < _SEND_SIZE:
        return None
    prefix, plen, pid, dlen = _FAST.unpack_from(buf, 0)
    step = _HSIZE + plen
    if prefix != _SEND_PREFIX or dlen != plen - 12 or step > _BULK_MAX_STEP:
        return None
    k, rest = divmod(end, step)
    if rest or k < UNIFORM_MIN:
        return None
    hdr = buf[:_SEND_SIZE]
    if not buf.startswith(hdr, end - step):
        return None
    heads = _np().frombuffer(buf, dtype="u1").reshape(k, step)[:, :_SEND_SIZE]
    if heads.tobytes() != hdr * k:
        return None
    return pid, step, k


def run_datas(buf: bytes, step: int, k: int) -> list[bytes]:
    """The data of the ``k`` messages of ``step`` bytes each that make up ``buf`` (found
    by ``uniform_frame``; headers are not looked at again)."""
    structs = _run_structs(step - _SEND_SIZE)
    out: list[bytes] = []
    extend = out.extend
    off = 0
    for m, s in zip(_RUN_CHUNKS, structs):
        if k >= m:
            unpack = s.unpack_from
            size = s.size
            while k >= m:
                extend(unpack(buf, off))
                off += size
                k -= m
    return out


def _run_structs(dlen: int) -> list[struct.Struct]:
    structs = _RUN_STRUCTS.get(dlen)
    if structs is None:
        if len(_RUN_STRUCTS) >= 256:
            _RUN_STRUCTS.clear()
        fmt = f"{_SEND_SIZE}x{dlen}s"
        structs = _RUN_STRUCTS[dlen] = [
            struct.Struct("=" + fmt * m) for m in _RUN_CHUNKS]
    return structs


def _np() -> Any:
    """numpy, imported on first use (``import iris.mesh`` stays light)."""
    global _numpy
    if _numpy is None:
        import numpy

        _numpy = numpy
    return _numpy


_numpy: Any = None


def _parse_one(buf: bytes, off: int, end: int, max_bytes: int, append: Any) -> int:
    """Parse the message at ``off`` strictly, append it (0x00 as a run of one); returns
    where the next message starts."""
    items: list[Any] = []
    stop = _next_message(buf, off, end, max_bytes, items.append)
    item = items[0]
    append((item[0], [item[1]]) if item.__class__ is tuple else item)
    return stop


def parse_frame(buf: Any, max_bytes: int) -> list[Any]:
    """Split one batch frame into ``(pid, data)`` tuples (0x00) and ``Message`` records.

    Raises:
        ProtocolError: anything in the frame breaks the layout; nothing is returned then.
    """
    if not isinstance(buf, bytes):
        buf = bytes(buf)
    end = len(buf)
    if end > max_bytes:
        raise ProtocolError(f"mesh frame of {end} bytes exceeds the ceiling {max_bytes}")
    if end == 0:
        raise ProtocolError("empty mesh frame")
    out: list[Any] = []
    off = 0
    while off < end:
        off = _next_message(buf, off, end, max_bytes, out.append)
    return out


def _next_message(buf: bytes, off: int, end: int, max_bytes: int, append: Any) -> int:
    """Parse the message at ``off``: append ``(pid, data)`` (0x00) or a ``Message``;
    returns where the next one starts.

    Raises:
        ProtocolError: the message breaks the layout.
    """
    left = end - off
    if left >= _SEND_SIZE:
        magic, version, mtype, flags, nbufs, _rid, plen, pid, dlen = _SEND.unpack_from(buf, off)
    elif left >= _HSIZE:
        magic, version, mtype, flags, nbufs, _rid, plen = HEADER.unpack_from(buf, off)
        pid = dlen = -1
    else:
        raise ProtocolError(f"{left} trailing bytes are shorter than a header ({_HSIZE})")
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {bytes(magic)!r} (expected {MAGIC!r})")
    if version != VERSION:
        raise ProtocolError(f"protocol version {version} is not supported "
                            f"(this side speaks {VERSION})")
    if nbufs:
        raise ProtocolError(f"a mesh message announces {nbufs} buffer frames (must be 0)")
    stop = off + _HSIZE + plen
    if stop > end:
        raise ProtocolError(f"message says {plen} payload bytes, only "
                            f"{left - _HSIZE} remain in the frame")
    if mtype == _MESH_SEND and not flags:
        if plen < 12 or dlen != plen - 12:
            raise ProtocolError(f"mesh send of {plen} payload bytes announces "
                                f"{dlen} data bytes")
        append((pid, buf[off + _SEND_SIZE:stop]))
    elif mtype in _KNOWN:
        append(decode_frames([buf[off:stop]], max_bytes)[0])
    else:
        raise ProtocolError(f"unknown message type 0x{mtype:02x}")
    return stop
