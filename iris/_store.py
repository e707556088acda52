"""The shared-memory object store: one tmpfs file per large object under ``/dev/shm``.

A segment holds a nonce, a pickle-5 stream and its out-of-band buffers, each buffer
64-byte aligned::

    [nonce 16 B][pickle stream][pad][buffer 0][pad][buffer 1] ...

Its *location* (a small dict, JSON on the wire) names the file, the host it lives on and
where each part starts. A reader on the same host maps the file read-only and hands the
buffers to ``pickle.loads`` as memoryviews, so a numpy array comes back as a read-only view
of the segment with no copy; the mapping lives as long as any view of it. Unlinking a file
that is still mapped is safe on Linux: the memory goes away with the last mapping.

Segment names start with ``iris-<cluster id>-`` so that the node manager can remove every
segment of its cluster at shutdown, whoever created it.

Recycling. Writing into fresh tmpfs pages costs a page fault and a zeroing per page (about
2.3 GB/s here); writing into pages that already exist runs at memory bandwidth. So a freed
segment that nobody maps any more goes into a small per-process pool instead of being
unlinked, and the next large write reuses it. Readers make that safe:

* a reader holds a shared ``flock`` on the segment for as long as its mapping lives (the
  descriptor is closed when the mapping is garbage collected);
* the pool takes a segment only if it gets the exclusive lock at once, i.e. no mapping
  exists anywhere; it keeps that lock while the segment is pooled and rewritten;
* every write stores a fresh nonce, which the location carries: a reader that reaches a
  recycled segment through a stale location sees another nonce and reports the object lost,
  never another object's bytes.
"""

from __future__ import annotations

import fcntl
import glob
import mmap
import os
import secrets
import socket
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import Any

__all__ = [
    "SHM_DIR",
    "host_id",
    "SegmentLost",
    "map_segment",
    "clear_pool",
    "pool_statistics",
    "read_segment_bytes",
    "release_segment",
    "remove_cluster_segments",
    "remove_segments",
    "unlink_segment",
    "write_segment",
]

SHM_DIR = os.environ.get("IRIS_SHM_DIR", "/dev/shm")
_ALIGN = 64


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "noboot"


_HOST_ID = os.environ.get("IRIS_HOST_ID") or f"{socket.gethostname()}/{_boot_id()}"


def host_id() -> str:
    """This machine's identity: processes with the same one share ``/dev/shm``.

    ``IRIS_HOST_ID`` overrides it (tests use that to stand in for separate machines).
    """
    return _HOST_ID


def _path(name: str) -> str:
    if "/" in name or not name.startswith("iris-"):
        raise ValueError(f"bad segment name {name!r}")
    return os.path.join(SHM_DIR, name)


_NONCE = 16


class SegmentLost(FileNotFoundError):
    """The segment is gone, or was recycled for another object (stale location)."""


class _Map(mmap.mmap):
    """A mapping that can carry a finalizer (plain mmap objects take no weak references)."""


class _Pool:
    """Freed segments kept for reuse, with their exclusive locks held (internal)."""

    def __init__(self) -> None:
        # Reentrant: a mapping's finalizer may run (through the GC) while the lock is held.
        self.lock = threading.RLock()
        self.entries: list[tuple[int, str, int]] = []  # (capacity, path, fd holding LOCK_EX)
        self.max_count = 32
        self.max_bytes = int(os.environ.get("IRIS_SEGMENT_POOL_BYTES", 1 << 30))
        self.seq = 0
        self.reused = 0

    def take(self, size: int) -> tuple[int, str, int] | None:
        """A pooled segment of capacity in [size, 2 * size], smallest first."""
        with self.lock:
            best = None
            for i, (cap, _path, _fd) in enumerate(self.entries):
                if size <= cap <= 2 * size and (best is None or cap < self.entries[best][0]):
                    best = i
            if best is None:
                return None
            self.reused += 1
            return self.entries.pop(best)

    def offer(self, cap: int, path: str, fd: int, cluster: str) -> bool:
        with self.lock:
            held = sum(e[0] for e in self.entries)
            if len(self.entries) >= self.max_count or held + cap > self.max_bytes:
                return False
            self.seq += 1
            pooled = os.path.join(SHM_DIR, f"iris-{cluster}-pool-{os.getpid()}-{self.seq}")
            os.rename(path, pooled)
            self.entries.append((cap, pooled, fd))
            return True

    def clear(self) -> None:
        with self.lock:
            for name in _release_when_unmapped:
                unlink_segment(name)
            _release_when_unmapped.clear()
            for _cap, path, fd in self.entries:
                _forget_write_map(path)
                os.close(fd)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            self.entries.clear()
            for mm in _write_maps.values():  # of segments unlinked elsewhere meanwhile
                _close_quietly(mm)
            _write_maps.clear()


_pool = _Pool()
# Segments mapped in this process (name -> live mappings), and those whose release waits
# for our own last mapping to go: then they can still be pooled.
_mapped_here: dict[str, int] = {}
_release_when_unmapped: set[str] = set()


def pool_statistics() -> dict[str, int]:
    """How many segments the pool holds, their bytes, and how often one was reused."""
    with _pool.lock:
        return {"segments": len(_pool.entries), "bytes": sum(e[0] for e in _pool.entries),
                "reused": _pool.reused}


def _cluster_of(name: str) -> str:
    return name.split("-", 2)[1]


def write_segment(name: str, header: bytes, buffers: Sequence[Any]) -> dict[str, Any]:
    """Write a pickle stream and its buffers into a segment; return its location."""
    views = [memoryview(b).cast("B") for b in buffers]
    layout, off = [], _NONCE + len(header)
    for v in views:
        off = (off + _ALIGN - 1) // _ALIGN * _ALIGN
        layout.append([off, v.nbytes])
        off += v.nbytes
    size = off
    path = _path(name)
    fd = -1
    while (pooled := _pool.take(size)) is not None:
        cap, old_path, pooled_fd = pooled
        try:
            os.rename(old_path, path)  # still locked exclusively: no reader can map it yet
        except FileNotFoundError:  # removed under us (its cluster was cleaned up): skip it
            _forget_write_map_ino(os.fstat(pooled_fd).st_ino)
            os.close(pooled_fd)
            continue
        fd, size = pooled_fd, cap
        break
    if fd < 0:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.ftruncate(fd, size)
    nonce = secrets.token_bytes(_NONCE)
    try:
        mm = _write_map(fd, path, size) if pooled is not None else None
        if mm is not None:
            # A recycled segment that this process mapped before: its pages are in our
            # page tables already, so a plain copy runs at memory speed.
            mm[0:_NONCE] = nonce
            mm[_NONCE:_NONCE + len(header)] = header
            for v, (start, _n) in zip(views, layout):
                _copy_into(mm, start, v)
        else:
            # pwrite lets the kernel fill fresh tmpfs pages directly: no page faults here.
            _pwrite_all(fd, nonce, 0)
            _pwrite_all(fd, header, _NONCE)
            for v, (start, _n) in zip(views, layout):
                _pwrite_all(fd, v, start)
    except BaseException:
        os.close(fd)
        unlink_segment(name)
        raise
    os.close(fd)  # drops the pool's exclusive lock, if it was a pooled segment
    return {"name": name, "host": host_id(), "size": size, "hoff": _NONCE, "hdr": len(header),
            "bufs": layout, "nonce": nonce.hex()}


# Writable mappings of the segments this process recycles, by inode (a recycled segment
# keeps its inode through its renames): mapped at the first reuse, dropped with the file.
_write_maps: dict[int, mmap.mmap] = {}
_PARALLEL_COPY = 32 << 20  # buffers from this size are copied by two threads


def _write_map(fd: int, path: str, size: int) -> mmap.mmap | None:
    ino = os.fstat(fd).st_ino
    with _pool.lock:
        mm = _write_maps.get(ino)
        if mm is not None and len(mm) >= size:
            return mm
    try:
        # From a descriptor of its own: mmap keeps a duplicate of the one it is given, and
        # ``fd`` carries the pool's exclusive lock, which must go when the write is done.
        own = os.open(path, os.O_RDWR)
        try:
            mm = mmap.mmap(own, size)
        finally:
            os.close(own)
    except (OSError, ValueError):
        return None
    with _pool.lock:
        old = _write_maps.pop(ino, None)
        _write_maps[ino] = mm
    if old is not None:
        _close_quietly(old)
    return None  # first reuse: pwrite (the fresh mapping has no pages yet); next time, mm


def _forget_write_map(path: str) -> None:
    """The segment at ``path`` is about to go: drop our mapping of it (lock not needed)."""
    if not _write_maps:
        return
    try:
        ino = os.stat(path).st_ino
    except OSError:
        return
    _forget_write_map_ino(ino)


def _forget_write_map_ino(ino: int) -> None:
    with _pool.lock:
        mm = _write_maps.pop(ino, None)
    if mm is not None:
        _close_quietly(mm)


def _close_quietly(mm: mmap.mmap) -> None:
    try:
        mm.close()
    except BufferError:  # a copy into it is under way (another thread): unmapped after
        pass


def _copy_into(mm: mmap.mmap, start: int, v: memoryview) -> None:
    """Copy ``v`` into ``mm`` at ``start``; large buffers by two threads (numpy's copy
    lets go of the GIL), which reaches more of this machine's memory bandwidth."""
    n = v.nbytes
    np = sys.modules.get("numpy")
    if np is None or n < _PARALLEL_COPY:
        mm[start:start + n] = v
        return
    dst = np.frombuffer(mm, np.uint8, n, start)
    src = np.frombuffer(v, np.uint8)
    half = n // 2
    helper = threading.Thread(target=np.copyto, args=(dst[half:], src[half:]))
    helper.start()
    np.copyto(dst[:half], src[:half])
    helper.join()


def _pwrite_all(fd: int, data: Any, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view.nbytes:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def map_segment(loc: dict[str, Any]) -> tuple[memoryview, list[memoryview]]:
    """Map a segment read-only: its pickle stream and its buffers, as memoryviews.

    The segment stays locked (shared) as long as any of the returned views lives.

    Raises:
        SegmentLost: the segment is gone or holds another object now.
    """
    try:
        fd = os.open(_path(loc["name"]), os.O_RDONLY)
    except FileNotFoundError:
        raise SegmentLost(loc["name"]) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.pread(fd, _NONCE, 0).hex() != loc.get("nonce"):
            raise SegmentLost(loc["name"])
        mm = _Map(fd, loc["size"], access=mmap.ACCESS_READ)
    except BaseException:
        os.close(fd)
        raise
    name = loc["name"]
    with _pool.lock:
        _mapped_here[name] = _mapped_here.get(name, 0) + 1
    weakref.finalize(mm, _unmapped, fd, name)  # the lock lives exactly as long as the mapping
    whole = memoryview(mm)
    hoff = loc.get("hoff", _NONCE)
    return whole[hoff:hoff + loc["hdr"]], [whole[o:o + n] for o, n in loc["bufs"]]


def read_segment_bytes(loc: dict[str, Any]) -> tuple[bytes, list[memoryview]]:
    """The header as bytes and the buffers as views: for sending a segment to another host."""
    header, bufs = map_segment(loc)
    return bytes(header), bufs


def _unmapped(fd: int, name: str) -> None:
    os.close(fd)
    with _pool.lock:
        n = _mapped_here.pop(name, 1) - 1
        if n > 0:
            _mapped_here[name] = n
            return
        again = name in _release_when_unmapped
        _release_when_unmapped.discard(name)
    if again:
        release_segment(name)


def release_segment(name: str) -> None:
    """Free a segment: pool it for reuse if nobody maps it, else unlink it.

    Readers that still map it keep their views either way.
    """
    if _pool.max_bytes <= 0:
        unlink_segment(name)
        return
    path = _path(name)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        cap = os.fstat(fd).st_size
        if _pool.offer(cap, path, fd, _cluster_of(name)):
            return
    except BlockingIOError:  # mapped somewhere
        with _pool.lock:
            if name in _mapped_here:  # here: try again when our last mapping goes
                _release_when_unmapped.add(name)
                os.close(fd)
                return
        # elsewhere: unlink; its memory goes when the last mapping does
    except OSError:
        pass
    os.close(fd)
    unlink_segment(name)


def clear_pool() -> None:
    """Unlink every pooled segment of this process."""
    _pool.clear()


def unlink_segment(name: str) -> None:
    """Remove a segment's file; readers that mapped it keep their views."""
    _forget_write_map(_path(name))
    try:
        os.unlink(_path(name))
    except FileNotFoundError:
        pass


def remove_cluster_segments(cluster_id: str) -> int:
    """Remove every segment of a cluster; returns how many were removed."""
    return remove_segments(f"iris-{cluster_id}-*")


def remove_segments(pattern: str) -> int:
    """Remove the segments whose names match a glob ``pattern``; how many were removed."""
    count = 0
    for path in glob.glob(os.path.join(SHM_DIR, pattern)):
        _forget_write_map(path)
        try:
            os.unlink(path)
            count += 1
        except FileNotFoundError:
            pass
    return count
