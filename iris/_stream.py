"""Framed, authenticated links over Unix stream sockets: the same-machine fast path.

A ZeroMQ message crosses four threads on its way (the sender, its context's I/O thread,
the receiver's I/O thread, the receiver): on this kind of machine a round trip costs
~100 us however little the two ends do. Between a client and a worker on one machine, a
Unix stream socket read and written by the very threads that need it costs ~20 us. So
task and result traffic between processes of one machine takes such a link; everything
that crosses machines (and all control traffic) stays on ZeroMQ with CURVE.

Framing: a message is ``[n u32][len u32 x n]`` followed by its ``n`` frames, which are
the same frames an iris message has on ZeroMQ (:mod:`iris._protocol` decodes them).
A link whose framing is broken (a count or length over the limits) is closed: a stream
cannot find the next message boundary again.

Authentication, before any frame is handed to the process (both ends hold the cluster
token; nothing secret crosses the socket)::

    client ─▶ server   nonce_c                                 (16 random bytes)
    server ─▶ client   nonce_s, HMAC(key, "S" + nonce_c + nonce_s)
    client ─▶ server   HMAC(key, "C" + nonce_s + nonce_c), then its messages

The client holds its messages until the server has proved itself; the server reads
nothing but the proof until the client has. The listening socket also lives in a 0700
directory, so no other user reaches it at all.

Every method expects the caller to hold the lock of the reactor the link is registered
with (as for a ZeroMQ socket, which is not thread-safe either).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from iris._reactor import Reactor
from iris.exceptions import AuthenticationError, ProtocolError

__all__ = ["StreamLink", "StreamListener", "link_key"]

log = logging.getLogger("iris.stream")

_RECV_SIZE = 256 * 1024
_MAX_FRAMES = 1 << 16  # frames in one message
_IOV_MAX = 512  # buffers handed to one sendmsg call
_NONCE = 16
_MAC = 32
_HANDSHAKE_MAX = 64  # the largest frame accepted before authentication
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
_U32 = struct.Struct("<I")
_ONE = struct.Struct("<II")  # the head of a message of one frame

# Link states.
_HELLO = 0  # client: nonce sent, waiting for the server's proof; server: waiting for it
_PROOF = 1  # server: its proof sent, waiting for the client's
_OPEN = 2
_CLOSED = 3


def link_key(secret: bytes) -> bytes:
    """The key links prove themselves with, derived from the cluster's secret."""
    return hmac.new(secret, b"iris local link v1", hashlib.sha256).digest()


def _mac(key: bytes, tag: bytes, a: bytes, b: bytes) -> bytes:
    return hmac.new(key, tag + a + b, hashlib.sha256).digest()


_local = threading.local()


def _recv_buffer() -> bytearray:
    """This thread's receive buffer (frames are copied out of it before it is reused)."""
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(_RECV_SIZE)
    return buf


def _byte_view(frame: Any) -> memoryview:
    mv = memoryview(frame)
    if mv.ndim != 1 or mv.format != "B":
        if mv.nbytes == 0:
            return memoryview(b"")  # e.g. an empty 2-d array: cast refuses zeros in shape
        if not mv.c_contiguous:
            return memoryview(mv.tobytes())
        mv = mv.cast("B")
    return mv


class StreamLink:
    """One end of an authenticated, framed Unix stream connection.

    ``send_multipart`` and ``recv_messages`` mirror how iris uses a ZeroMQ DEALER:
    messages are lists of frames; frames arrive as ``bytes``. Sends never block: what the
    socket does not take at once waits in the link and goes out when the reactor sees the
    socket writable. When the link closes, for whatever reason, its ``on_input`` callback
    runs once more (it then finds ``closed`` set).
    """

    def __init__(self, sock: socket.socket, key: bytes, reactor: Reactor, *, server: bool,
                 max_frame_bytes: int, on_input: Callable[[], None],
                 peer: str = "") -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.server = server
        self.state = _HELLO
        self.closed = False
        self.why = ""  # why it closed, for logs and errors
        self._key = key
        self._reactor = reactor
        self._max_frame = max_frame_bytes
        self._rbuf = bytearray()
        self._out: deque[memoryview] = deque()  # bytes the socket has not taken yet
        self._held: list[list[Any]] = []  # messages sent before the link was open
        self._writing = False
        self._write_failed = ""  # why sending stopped; input is still read until EOF
        self._on_input = on_input
        self._nonce = os.urandom(_NONCE)
        self._their_nonce = b""
        reactor.add_reader(self, on_input)
        if not server:
            self._send_now([self._nonce])

    def fileno(self) -> int:
        """The socket's descriptor (what the reactor watches)."""
        return self.fd

    @classmethod
    def connect(cls, path: str, key: bytes, reactor: Reactor, *, max_frame_bytes: int,
                on_input: Callable[[], None]) -> StreamLink:
        """A client link to the listener at ``path`` (raises OSError if none is there)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return cls(sock, key, reactor, server=False, max_frame_bytes=max_frame_bytes,
                   on_input=on_input, peer=path)

    # ------------------------------------------------------------------ sending
    def send_multipart(self, frames: list[Any], copy: bool = False) -> None:
        """Send one message (a list of frames); held until the link is open, dropped if
        it has closed or its peer stopped reading (like a message to a ZeroMQ peer that
        went away)."""
        if self.state != _OPEN:
            if not self.closed:
                self._held.append(frames)
            return
        if not self._write_failed:
            self._send_now(frames)

    def _send_now(self, frames: list[Any]) -> None:
        if len(frames) == 1 and type(frames[0]) is bytes and not self._out:
            # The common small message (a task batch, a result batch): one buffer.
            f = frames[0]
            self._write([memoryview(_ONE.pack(1, len(f)) + f)])
            return
        views = [_byte_view(f) for f in frames]
        if len(views) > _MAX_FRAMES:
            raise ValueError(f"a message of {len(views)} frames; a link carries at most "
                             f"{_MAX_FRAMES}")
        head = struct.pack(f"<I{len(views)}I", len(views), *[v.nbytes for v in views])
        if self._out:
            self._out.append(memoryview(head))
            self._out.extend(views)
            return
        self._write([memoryview(head), *views])

    def _write(self, bufs: list[memoryview]) -> None:
        """Write what the socket takes now; keep the rest for when it is writable."""
        while bufs:
            part = bufs[:_IOV_MAX]
            try:
                n = (self.sock.send(part[0], _SEND_FLAGS) if len(part) == 1
                     else self.sock.sendmsg(part, (), _SEND_FLAGS))
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                # The peer went away: nothing more goes out. What it sent before is still
                # in our socket: it is read (and the link closed) when its EOF comes.
                self._write_failed = f"send failed: {exc}"
                self._out.clear()
                self._want_write(False)
                return
            i = 0
            while i < len(part) and n >= part[i].nbytes:
                n -= part[i].nbytes
                i += 1
            if i < len(part):
                rest = bufs[i:]
                if n:
                    rest[0] = rest[0][n:]
                self._out.extend(rest)
                self._want_write(True)
                return
            bufs = bufs[i:]

    def _flush_out(self) -> None:
        out = self._out
        bufs = list(out)
        out.clear()
        self._write(bufs)
        if not self._out:
            self._want_write(False)

    def _want_write(self, on: bool) -> None:
        if on != self._writing and not self.closed:
            self._writing = on
            self._reactor.watch_writable(self, on)

    # ------------------------------------------------------------------ receiving
    def recv_messages(self) -> list[list[Any]]:
        """Every complete message that arrived (after pending output went out); closes
        the link on end of file, on a broken frame or a failed handshake."""
        out: list[list[Any]] = []
        if self.closed:
            return out
        if self._out:
            self._flush_out()
        rbuf = _recv_buffer()
        while not self.closed:
            try:
                n = self.sock.recv_into(rbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._close(f"receive failed: {exc}")
                break
            if not n:
                self._close(self._write_failed or "closed by the peer")
                break
            try:
                with memoryview(rbuf) as mv:
                    self._parse(mv[:n], out)
            except (ProtocolError, AuthenticationError) as exc:
                log.warning("closed a local link %s: %s", self.peer or "from a client", exc)
                self._close(str(exc))
                break
            if n < _RECV_SIZE:
                break  # most likely drained; level-triggered epoll tells us if not
        return out

    def _parse(self, chunk: memoryview, out: list[list[Any]]) -> None:
        """Cut ``chunk`` (a view of the shared receive buffer) and what an earlier chunk
        left into messages; keep the tail of an incomplete one."""
        buf: Any
        if self._rbuf:
            self._rbuf += chunk
            buf = self._rbuf
        else:
            buf = chunk
        size = len(buf)
        pos = 0
        with memoryview(buf) as mv:
            while size - pos >= 4:
                (n,) = _U32.unpack_from(buf, pos)
                if n == 1 and self.state == _OPEN and size - pos >= 8:
                    # The common message of one frame.
                    ln = _ONE.unpack_from(buf, pos)[1]
                    if ln > self._max_frame:
                        raise ProtocolError(f"a frame of {ln} bytes (at most "
                                            f"{self._max_frame} here)")
                    end = pos + 8 + ln
                    if end > size:
                        break
                    out.append([bytes(mv[pos + 8:end])])
                    pos = end
                    continue
                if n == 0 or n > _MAX_FRAMES:
                    raise ProtocolError(f"a message of {n} frames")
                if size - pos < 4 + 4 * n:
                    break
                if n > 2 and self.state != _OPEN:
                    raise ProtocolError(f"a message of {n} frames before authentication")
                lens = struct.unpack_from(f"<{n}I", buf, pos + 4)
                limit = self._max_frame if self.state == _OPEN else _HANDSHAKE_MAX
                total = 0
                for ln in lens:
                    if ln > limit:
                        raise ProtocolError(f"a frame of {ln} bytes (at most {limit} here)")
                    total += ln
                end = pos + 4 + 4 * n + total
                if end > size:
                    break
                at = pos + 4 + 4 * n
                frames = []
                for ln in lens:
                    frames.append(bytes(mv[at:at + ln]))
                    at += ln
                pos = end
                if self.state == _OPEN:
                    out.append(frames)
                else:
                    self._handshake(frames)
        if pos == size:
            self._rbuf = bytearray()
        elif buf is self._rbuf:
            del self._rbuf[:pos]
        else:
            self._rbuf = bytearray(buf[pos:])

    # ------------------------------------------------------------------ handshake
    def _handshake(self, frames: list[bytes]) -> None:
        key = self._key
        if self.server and self.state == _HELLO:
            if len(frames) != 1 or len(frames[0]) != _NONCE:
                raise AuthenticationError("the client's hello is malformed")
            self._their_nonce = frames[0]
            self._send_now([self._nonce, _mac(key, b"S", self._their_nonce, self._nonce)])
            self.state = _PROOF
        elif self.server:  # _PROOF
            expect = _mac(key, b"C", self._nonce, self._their_nonce)
            if len(frames) != 1 or not hmac.compare_digest(frames[0], expect):
                raise AuthenticationError("a client failed to prove it holds the cluster "
                                          "token")
            self.state = _OPEN
        else:
            if len(frames) != 2 or len(frames[0]) != _NONCE:
                raise AuthenticationError("the server's hello is malformed")
            nonce_s, proof = frames
            if not hmac.compare_digest(proof, _mac(key, b"S", self._nonce, nonce_s)):
                raise AuthenticationError(f"the server at {self.peer} failed to prove it "
                                          f"holds the cluster token")
            self._send_now([_mac(key, b"C", nonce_s, self._nonce)])
            self.state = _OPEN
            held, self._held = self._held, []
            for frames_ in held:
                self._send_now(frames_)

    @property
    def is_open(self) -> bool:
        """Authenticated and not closed."""
        return self.state == _OPEN

    # ------------------------------------------------------------------ closing
    def _close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.state = _CLOSED
        self.why = why
        self._reactor.remove_reader(self)
        self._out.clear()
        self._held.clear()
        try:
            self.sock.close()
        except OSError:
            pass
        # Whoever reads this link learns it closed at its next turn, whatever closed it.
        self._reactor.call_soon_threadsafe(self._on_input)

    def close(self, linger: int | None = None) -> None:
        """Close the link (``linger`` is accepted for ZeroMQ's signature and ignored)."""
        self._close("closed")


class StreamListener:
    """A listening Unix socket that accepts links for ``on_link`` (server side)."""

    def __init__(self, path: str, key: bytes, reactor: Reactor, *, max_frame_bytes: int,
                 on_link: Callable[[StreamLink], None],
                 on_input: Callable[[StreamLink], None]) -> None:
        self.path = path
        self._key = key
        self._reactor = reactor
        self._max_frame = max_frame_bytes
        self._on_link = on_link
        self._on_input = on_input
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.fd = sock.fileno()
        reactor.add_reader(self, self._accept)

    def fileno(self) -> int:
        """The listening socket's descriptor (what the reactor watches)."""
        return self.fd

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept on %s failed: %s", self.path, exc)
                return
            holder: list[StreamLink] = []
            link = StreamLink(conn, self._key, self._reactor, server=True,
                              max_frame_bytes=self._max_frame,
                              on_input=partial(self._serve, holder))
            holder.append(link)
            self._on_link(link)

    def _serve(self, holder: list[StreamLink]) -> None:
        self._on_input(holder[0])

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        self._reactor.remove_reader(self)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
