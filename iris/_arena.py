"""A shared-memory arena for medium task arguments (tens of KiB) bound for this machine.

Below the shared-memory threshold a value travels inline, encrypted by CURVE at about
0.6 GB/s; one tmpfs segment per value costs ~100 us of system calls. The arena sits between:
the owner keeps a few large chunks (``/dev/shm/iris-<cluster>-arena-<token>-<n>``, mode
0600) mapped for writing and bump-allocates arguments in them; only the small location
travels. A worker maps each chunk once (a small LRU cache) and reads the arguments in
place (:func:`view_arena`): arrays come back as read-only views of the chunk. A region is
reused only once its reader is done with it: at the task's end in the usual case, or, if
the task kept (a view of) an argument, when the worker says the last view is gone.

A chunk's allocations are freed together: when its last one is released the chunk is
empty and its bump pointer restarts at zero. Tasks finish roughly in submission order,
so chunks empty steadily; when none has room and the arena is at its cap, ``write`` says
no and the caller sends the value inline as before.
"""

from __future__ import annotations

import mmap
import os
import secrets
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from iris._serialization import numpy_module
from iris._store import SHM_DIR, remove_segments

__all__ = ["Arena", "ArenaSlot", "remove_arenas_of", "view_arena"]

_ALIGN = 64
# A location: header offset and length, buffer count, then (offset, length) per buffer, then
# the chunk's name (utf-8, the rest of the bytes). Offsets are from the chunk's start.
_LOC = struct.Struct("!QQH")
_SPAN = struct.Struct("!QQ")
_LOC1 = struct.Struct("!QQHQQ")  # _LOC and one _SPAN


class _Chunk:
    __slots__ = ("name", "raw_name", "size", "mm", "top", "live")

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.raw_name = name.encode()
        self.size = size
        path = os.path.join(SHM_DIR, name)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            # Allocate every page now: a write through the mapping into a full tmpfs would
            # be a SIGBUS, where this is an OSError (ENOSPC) the caller handles.
            os.posix_fallocate(fd, 0, size)
            # Populated: page faults on first writes cost several µs each on a VM.
            self.mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
        except BaseException:
            os.unlink(path)
            raise
        finally:
            os.close(fd)
        self.top = 0
        self.live = 0


class ArenaSlot:
    """One allocation: release it when the task that reads it has finished."""

    __slots__ = ("chunk", "off", "hdr", "bufs", "location")

    def __init__(self, chunk: _Chunk, off: int, hdr: int, bufs: list[tuple[int, int]]) -> None:
        self.chunk = chunk
        self.off = off
        self.hdr = hdr
        self.bufs = bufs
        #: What travels to the reader (see :func:`view_arena`).
        if len(bufs) == 1:  # the commonest: one array
            self.location = _LOC1.pack(off, hdr, 1, *bufs[0]) + chunk.raw_name
        else:
            self.location = b"".join([_LOC.pack(off, hdr, len(bufs)),
                                      *[_SPAN.pack(o, n) for o, n in bufs], chunk.raw_name])


class Arena:
    """Chunks of shared memory for medium values of one owner (thread-safe)."""

    def __init__(self, cluster_id: str, chunk_bytes: int = 16 << 20,
                 max_bytes: int = 512 << 20) -> None:
        # The pid lets a node manager remove the chunks of a worker that died.
        self.prefix = f"iris-{cluster_id}-arena-{os.getpid()}-{secrets.token_hex(4)}-"
        self.chunk_bytes = chunk_bytes
        self.max_chunks = max(1, max_bytes // chunk_bytes)
        self.lock = threading.Lock()
        self.chunks: list[_Chunk] = []
        self.empty: list[_Chunk] = []
        self.current: _Chunk | None = None
        self.closed = False

    def write(self, header: bytes, buffers: Sequence[Any]) -> ArenaSlot | None:
        """Copy a pickle stream and its buffers into the arena; None when it is full."""
        hlen = len(header)
        spans, views, off = [], [], hlen
        for b in buffers:
            v = b if type(b) is memoryview and b.ndim == 1 and b.format == "B" \
                and b.c_contiguous else memoryview(b).cast("B")
            off = (off + _ALIGN - 1) & -_ALIGN
            n = v.nbytes
            spans.append((off, n))
            views.append(v)
            off += n
        size = (off + _ALIGN - 1) & -_ALIGN
        if size > self.chunk_bytes // 4:
            return None
        with self.lock:
            c = self.current
            if c is None or c.top + size > c.size:
                if self.closed:
                    return None
                c = self._next_chunk()
                if c is None:
                    return None
            base = c.top
            c.top = base + size
            c.live += 1
        mm = c.mm
        mm[base:base + hlen] = header
        for v, (o, n) in zip(views, spans):
            mm[base + o:base + o + n] = v
        return ArenaSlot(c, base, hlen, [(base + o, n) for o, n in spans])

    def _next_chunk(self) -> _Chunk | None:
        """A chunk with room (lock held): an emptied one, else a new one within the cap."""
        if self.empty:
            c = self.empty.pop()
        elif len(self.chunks) < self.max_chunks:
            try:
                c = _Chunk(f"{self.prefix}{len(self.chunks)}", self.chunk_bytes)
            except OSError:  # no room in shared memory: the caller sends the value inline
                self.max_chunks = len(self.chunks)
                return None
            self.chunks.append(c)
        else:
            return None
        self.current = c
        return c

    def release(self, slot: ArenaSlot) -> None:
        """Free an allocation; its chunk is reused once all of its allocations are free."""
        c = slot.chunk
        with self.lock:
            c.live -= 1
            if c.live == 0:
                c.top = 0
                if c is not self.current and not self.closed:
                    self.empty.append(c)

    def read(self, slot: ArenaSlot) -> tuple[bytes, list[memoryview]]:
        """The value's bytes, for sending it inline to a worker on another machine."""
        mm = memoryview(slot.chunk.mm)
        return bytes(mm[slot.off:slot.off + slot.hdr]), [mm[o:o + n] for o, n in slot.bufs]

    def close(self) -> None:
        """Unlink every chunk (mappings elsewhere stay valid until dropped)."""
        with self.lock:
            self.closed = True
            chunks, self.chunks, self.empty, self.current = self.chunks, [], [], None
        for c in chunks:
            try:
                os.unlink(os.path.join(SHM_DIR, c.name))
            except FileNotFoundError:
                pass
            try:
                c.mm.close()
            except BufferError:  # a view is still exported: the GC unmaps it later
                pass


# ---------------------------------------------------------------------- reader side

class _Mapped:
    """A chunk as this process maps it: the mapping, and a view of it for numpy."""

    __slots__ = ("name", "mm", "mv", "size")

    def __init__(self, name: str, mm: mmap.mmap) -> None:
        self.name = name
        self.mm = mm
        self.mv = memoryview(mm)
        self.size = len(mm)

    def close(self) -> None:
        try:
            self.mv.release()
            self.mm.close()
        except BufferError:  # arrays still view it: unmapped when the last one goes
            pass


# Mapped chunks by their raw name (as locations carry it), least recently used first.
_MAPS: OrderedDict[bytes, _Mapped] = OrderedDict()
_MAPS_LOCK = threading.Lock()
_MAX_MAPS = 32  # an owner's whole arena (512 MiB in 16 MiB chunks): no remapping churn
_reads = 0


def remove_arenas_of(cluster_id: str, pid: int) -> int:
    """Unlink the arena chunks a (dead) process of a cluster left; how many."""
    return remove_segments(f"iris-{cluster_id}-arena-{pid}-*")


def _forget_unlinked() -> None:
    """Drop cached mappings of chunks whose owner unlinked them (lock held): a mapping
    would keep their memory alive for as long as this process lives."""
    for raw in [r for r, m in _MAPS.items()
                if not os.path.exists(os.path.join(SHM_DIR, m.name))]:
        _MAPS.pop(raw).close()


def _parse_location(location: bytes | memoryview) -> tuple[int, int, list[tuple[int, int]], bytes]:
    data = bytes(location)
    try:
        off, hdr, nbufs = _LOC.unpack_from(data, 0)
        pos = _LOC.size + nbufs * _SPAN.size
        spans = [_SPAN.unpack_from(data, _LOC.size + i * _SPAN.size) for i in range(nbufs)]
    except struct.error as exc:
        raise ValueError(f"malformed arena location: {exc}") from None
    return off, hdr, spans, data[pos:]


def _chunk(raw: bytes) -> _Mapped:
    """The mapping of the chunk named ``raw`` (lock held): cached, else mapped now."""
    global _reads
    _reads += 1
    if _reads % 256 == 0:
        _forget_unlinked()
    m = _MAPS.get(raw)
    if m is not None:
        _MAPS.move_to_end(raw)
        return m
    try:
        name = raw.decode()
    except UnicodeDecodeError:
        raise ValueError("malformed arena location: the chunk name is not UTF-8") from None
    if "/" in name or not name.startswith("iris-") or "-arena-" not in name:
        raise ValueError(f"bad arena chunk name {name!r}")
    fd = os.open(os.path.join(SHM_DIR, name), os.O_RDONLY)
    try:
        # Populated: every page mapped now, in one go, instead of a fault per page at each
        # read (a fault costs several µs on a VM).
        mm = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    m = _MAPS[raw] = _Mapped(name, mm)
    while len(_MAPS) > _MAX_MAPS:
        _MAPS.popitem(last=False)[1].close()
    return m


def view_arena(location: bytes | memoryview) -> tuple[bytes, list[Any], Any]:
    """A value in an arena chunk, without copying its buffers: ``(header, buffers, region)``.

    The buffers are read-only numpy views of ``region`` (a uint8 array over the value's
    bytes), and so is every array unpickled from them (numpy keeps the first array of a
    chain as the base of its views). So ``region`` lives exactly as long as anything
    still reads the value: once the caller's own references are gone, a
    ``weakref.finalize`` on it says when the owner may reuse the space.

    Raises:
        FileNotFoundError: the chunk is gone (its owner left).
        ValueError: the location is malformed or points outside the chunk.
    """
    np = numpy_module()
    off, hdr, spans, raw = _parse_location(location)
    end = off + hdr
    for o, n in spans:
        if o + n > end:
            end = o + n
    with _MAPS_LOCK:
        m = _chunk(raw)
        if end > m.size or off > end:
            raise ValueError(f"arena location outside chunk {m.name}")
        header = m.mm[off:off + hdr]
        # Made from the mapping's memoryview (not from another array), so that numpy
        # makes this region the base of every array unpickled from it.
        region = np.frombuffer(m.mv, np.uint8, end - off, off)
    return header, [region[o - off:o - off + n] for o, n in spans], region
