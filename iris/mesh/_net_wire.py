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
Internal module.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from typing import Any

from iris._protocol import HEADER, MAGIC, VERSION, MsgType, decode_frames, encode
from iris.exceptions import ProtocolError

__all__ = ["BATCH_TARGET_BYTES", "control_bytes", "jsonable", "message_bytes", "pack_batch",
           "parse_frame"]

# A batch frame is closed once it holds this much; bigger batches gain nothing (the per-
# frame cost of ZeroMQ is already negligible) and delay the receiver's first message.
BATCH_TARGET_BYTES = 256 * 1024

# HEADER followed by the 0x00 payload's [PID u64][LEN u32]: one unpack per user message.
_SEND = struct.Struct("!2sBBHHQIQI")
_HSIZE = HEADER.size
_SEND_SIZE = _SEND.size
_MESH_SEND = MsgType.MESH_SEND
_KNOWN = MsgType.KNOWN


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
    append = out.append
    off = 0
    unpack_send = _SEND.unpack_from
    while off < end:
        left = end - off
        if left >= _SEND_SIZE:
            magic, version, mtype, flags, nbufs, _rid, plen, pid, dlen = unpack_send(buf, off)
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
        off = stop
    return out
