"""Turning Python objects into wire :class:`~iris._protocol.Value` descriptors and back.

Small values travel inline (a pickle stream plus out-of-band buffer frames); values at or
above the inline threshold go into a shared-memory segment and only its location travels.
Used by both ends of a task: the owner (arguments, ``put``) and the worker (results).
"""

from __future__ import annotations

import json
from typing import Any

from iris._protocol import Value, ValueKind
from iris._serialization import dumps_error, loads, loads_error, nbytes
from iris._store import SegmentLost, host_id, map_segment, read_segment_bytes, write_segment
from iris.exceptions import ObjectLostError, TaskError

__all__ = [
    "DEFAULT_INLINE_THRESHOLD",
    "error_value",
    "from_value",
    "inline_copy",
    "is_shm",
    "pack",
    "shm_location",
]

DEFAULT_INLINE_THRESHOLD = 100 * 1024


def pack(header: bytes, buffers: list[Any], threshold: int, shm_name: str | None) -> Value:
    """A Value for a serialized object: in shared memory when large and ``shm_name`` given."""
    if shm_name is not None and len(header) + nbytes(buffers) >= threshold:
        loc = write_segment(shm_name, header, buffers)
        return Value(ValueKind.SHM, json.dumps(loc).encode())
    return Value(ValueKind.INLINE, header, buffers)


def error_value(exc: BaseException, skip_frames: int = 0) -> Value:
    """A Value carrying an exception raised by user code, with its traceback."""
    return Value(ValueKind.ERROR, dumps_error(exc, skip_frames))


def is_shm(v: Value) -> bool:
    """Whether the value lives in a shared-memory segment."""
    return v.kind == ValueKind.SHM


def shm_location(v: Value) -> dict[str, Any]:
    """The segment location of a SHM value."""
    return json.loads(bytes(v.data))  # type: ignore[no-any-return]


def inline_copy(v: Value) -> Value:
    """The same value as INLINE frames (for a reader on another host)."""
    if v.kind != ValueKind.SHM:
        return v
    header, bufs = read_segment_bytes(shm_location(v))
    return Value(ValueKind.INLINE, header, list(bufs))


def from_value(v: Value, where: str = "") -> Any:
    """The object a Value describes.

    Raises:
        TaskError: the value is a remote error (re-raised as the caller's exception).
        ObjectLostError: its shared-memory segment is gone or on another host.
    """
    kind = v.kind
    if kind == ValueKind.INLINE:
        return loads(v.data, v.buffers)
    if kind == ValueKind.SHM:
        loc = shm_location(v)
        if loc.get("host") != host_id():
            raise ObjectLostError(f"object segment {loc.get('name')} lives on host "
                                  f"{loc.get('host')}, not here")
        try:
            header, bufs = map_segment(loc)
        except SegmentLost:
            raise ObjectLostError(f"object segment {loc.get('name')} no longer exists "
                                  f"(freed, or its node shut down)") from None
        return loads(header, bufs)
    if kind == ValueKind.ERROR:
        exc, tb = loads_error(v.data)
        if isinstance(exc, TaskError):  # a nested task's error: keep its own text
            raise exc
        raise TaskError.from_remote(exc, tb, where)
    raise ObjectLostError(f"value of kind {kind} cannot be read here")
