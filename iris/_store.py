"""The shared-memory object store: one tmpfs file per large object under ``/dev/shm``.

A segment holds a pickle-5 stream and its out-of-band buffers, each buffer 64-byte aligned::

    [pickle stream][pad][buffer 0][pad][buffer 1] ...

Its *location* (a small dict, JSON on the wire) names the file, the host it lives on and
where each part starts. A reader on the same host maps the file read-only and hands the
buffers to ``pickle.loads`` as memoryviews, so a numpy array comes back as a read-only view
of the segment with no copy; the mapping lives as long as any view of it. Unlinking a file
that is still mapped is safe on Linux: the memory goes away with the last mapping.

Segment names start with ``iris-<cluster id>-`` so that the node manager can remove every
segment of its cluster at shutdown, whoever created it.
"""

from __future__ import annotations

import glob
import mmap
import os
import socket
from typing import Any, Sequence

__all__ = [
    "SHM_DIR",
    "host_id",
    "map_segment",
    "read_segment_bytes",
    "remove_cluster_segments",
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


def write_segment(name: str, header: bytes, buffers: Sequence[Any]) -> dict[str, Any]:
    """Write a pickle stream and its buffers into a new segment; return its location."""
    views = [memoryview(b).cast("B") for b in buffers]
    layout, off = [], len(header)
    for v in views:
        off = (off + _ALIGN - 1) // _ALIGN * _ALIGN
        layout.append([off, v.nbytes])
        off += v.nbytes
    size = max(off, 1)
    fd = os.open(_path(name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, size)
        # pwrite lets the kernel fill tmpfs pages directly: no page faults in this process.
        _pwrite_all(fd, header, 0)
        for v, (start, _n) in zip(views, layout):
            _pwrite_all(fd, v, start)
    except BaseException:
        os.close(fd)
        unlink_segment(name)
        raise
    os.close(fd)
    return {"name": name, "host": host_id(), "size": size, "hdr": len(header), "bufs": layout}


def _pwrite_all(fd: int, data: Any, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view.nbytes:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def map_segment(loc: dict[str, Any]) -> tuple[memoryview, list[memoryview]]:
    """Map a segment read-only: its pickle stream and its buffers, as memoryviews."""
    fd = os.open(_path(loc["name"]), os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, loc["size"], access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    whole = memoryview(mm)
    return whole[:loc["hdr"]], [whole[o:o + n] for o, n in loc["bufs"]]


def read_segment_bytes(loc: dict[str, Any]) -> tuple[bytes, list[memoryview]]:
    """The header as bytes and the buffers as views: for sending a segment to another host."""
    header, bufs = map_segment(loc)
    return bytes(header), bufs


def unlink_segment(name: str) -> None:
    """Remove a segment's file; readers that mapped it keep their views."""
    try:
        os.unlink(_path(name))
    except FileNotFoundError:
        pass


def remove_cluster_segments(cluster_id: str) -> int:
    """Remove every segment of a cluster; returns how many were removed."""
    count = 0
    for path in glob.glob(os.path.join(SHM_DIR, f"iris-{cluster_id}-*")):
        try:
            os.unlink(path)
            count += 1
        except FileNotFoundError:
            pass
    return count
