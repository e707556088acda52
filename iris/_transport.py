"""Transport: ZeroMQ sockets with CURVE authentication, and the I/O loop every process runs.

Security model: a cluster has one CURVE key pair. Every iris server socket uses it as its
server key, and every client presents the same pair as its client key; the ZAP handler of
each process admits only that public key. Knowing the secret key (the cluster *token*) is
therefore what it takes to talk to any iris socket. A peer without it fails the CURVE
handshake inside libzmq: not one byte of its payload reaches iris code, let alone pickle.

The :class:`Loop` is a small single-threaded reactor over ``zmq.Poller``: sockets and file
descriptors with callbacks, timers, and ``call_soon_threadsafe`` for other threads (woken
through an eventfd). Head, node manager, worker and the driver's I/O thread all run one.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils import z85

from iris._protocol import DEFAULT_MAX_FRAME_BYTES, Message, decode_frames
from iris.exceptions import AuthenticationError, ProtocolError

__all__ = [
    "Credentials",
    "Loop",
    "bind_server",
    "connect_client",
    "drain_router",
    "get_context",
    "recv_frames",
]

log = logging.getLogger("iris.transport")

_ZAP_ENDPOINT = "inproc://zeromq.zap.01"
# Frames below this are copied into ZeroMQ messages; larger ones are sent zero-copy. pyzmq's
# zero-copy path costs tens of microseconds per frame (a tracker and a GC thread), more than
# copying a megabyte.
_COPY_THRESHOLD = 1 << 20


@dataclass(frozen=True, slots=True)
class Credentials:
    """The cluster's CURVE key pair (z85 text). ``token`` is what a joining peer needs."""

    public: bytes
    secret: bytes

    @classmethod
    def generate(cls) -> Credentials:
        """Fresh throw-away credentials."""
        while True:
            public, secret = zmq.curve_keypair()
            if not secret.startswith(b"-"):  # a token must not look like a CLI option
                return cls(public, secret)

    @classmethod
    def from_token(cls, token: str | bytes) -> Credentials:
        """Credentials from a token (the z85 secret key), as printed by ``iris start --head``.

        Raises:
            AuthenticationError: the token is not a 40-character z85 CURVE secret key.
        """
        raw = token.strip().encode() if isinstance(token, str) else token.strip()
        if len(raw) != 40:
            raise AuthenticationError(f"a cluster token is 40 characters of z85 text, "
                                      f"got {len(raw)} characters")
        try:
            public = zmq.curve_public(raw)
        except (zmq.ZMQError, ValueError) as exc:
            raise AuthenticationError(f"malformed cluster token: {exc}") from None
        return cls(public, raw)

    @property
    def token(self) -> str:
        """The secret key as text: whoever holds it may join the cluster."""
        return self.secret.decode()


class _ZapHandler(threading.Thread):
    """Answers libzmq's ZAP requests: admit CURVE clients whose key is in ``allowed``."""

    def __init__(self, ctx: zmq.Context[Any]) -> None:
        super().__init__(name="iris-zap", daemon=True)
        self.allowed: set[bytes] = set()
        self._sock = ctx.socket(zmq.REP)
        self._sock.linger = 0
        self._sock.bind(_ZAP_ENDPOINT)

    def run(self) -> None:
        sock = self._sock
        while True:
            try:
                frames = sock.recv_multipart()
            except zmq.ZMQError:  # context terminated
                break
            version, request_id = frames[0], frames[1]
            mechanism = frames[5] if len(frames) > 5 else b""
            key = frames[6] if len(frames) > 6 else b""
            if mechanism == b"CURVE" and z85.encode(key) in self.allowed:
                reply = [version, request_id, b"200", b"OK", b"", b""]
            else:
                addr = frames[3].decode(errors="replace") if len(frames) > 3 else "?"
                log.warning("refused an unauthenticated peer from %s (mechanism %s)", addr,
                            mechanism.decode(errors="replace"))
                reply = [version, request_id, b"400", b"unknown key", b"", b""]
            try:
                sock.send_multipart(reply)
            except zmq.ZMQError:
                break
        sock.close(0)


_ctx_lock = threading.Lock()
_ctx: zmq.Context[Any] | None = None
_zap: _ZapHandler | None = None


def get_context() -> zmq.Context[Any]:
    """The process's ZeroMQ context (created once; re-created after a fork)."""
    global _ctx, _zap
    with _ctx_lock:
        if _ctx is None or _ctx.closed:
            _ctx = zmq.Context()
            _zap = None
        return _ctx


def _zap_handler(ctx: zmq.Context[Any]) -> _ZapHandler:
    global _zap
    with _ctx_lock:
        if _zap is None:
            _zap = _ZapHandler(ctx)
            _zap.start()
        return _zap


def bind_server(kind: int, creds: Credentials, endpoint: str,
                max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> tuple[zmq.Socket[Any], str]:
    """A CURVE server socket bound to ``endpoint`` (port 0 or ``*`` picks a free port).

    Returns the socket and the endpoint actually bound.
    """
    ctx = get_context()
    _zap_handler(ctx).allowed.add(creds.public)
    sock = ctx.socket(kind)
    sock.linger = 0
    sock.curve_server = True
    sock.curve_secretkey = creds.secret
    sock.curve_publickey = creds.public
    sock.zap_domain = b"iris"
    # libzmq drops a peer whose message exceeds this, before iris reads it.
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes + 4096)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1) if kind == zmq.ROUTER else None
    sock.sndhwm = sock.rcvhwm = 0
    sock.copy_threshold = _COPY_THRESHOLD
    try:
        if endpoint.startswith("tcp://") and endpoint.endswith((":0", ":*")):
            base = endpoint.rsplit(":", 1)[0]
            port = sock.bind_to_random_port(base)
            return sock, f"{base}:{port}"
        sock.bind(endpoint)
    except BaseException:
        sock.close(0)  # a failed bind must not leak the socket
        raise
    return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)


def connect_client(kind: int, creds: Credentials, endpoint: str,
                   identity: bytes | None = None) -> zmq.Socket[Any]:
    """A CURVE client socket connected to an iris server socket."""
    sock = get_context().socket(kind)
    sock.linger = 0
    sock.curve_serverkey = creds.public
    sock.curve_publickey = creds.public
    sock.curve_secretkey = creds.secret
    sock.sndhwm = sock.rcvhwm = 0
    sock.copy_threshold = _COPY_THRESHOLD
    if identity is not None:
        sock.identity = identity
    sock.connect(endpoint)
    return sock


_SMALL_FRAME = 64 * 1024


def recv_frames(sock: zmq.Socket[Any]) -> list[Any] | None:
    """One multipart message without blocking, or None if none is waiting.

    Small frames come back as ``bytes``; large ones as memoryviews of ZeroMQ's own buffer,
    so a big array is not copied on its way in.
    """
    try:
        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
    except zmq.Again:
        return None
    # Read-only, like every other way a value reaches a reader (bytes, shared memory).
    return [f.bytes if len(f) < _SMALL_FRAME else f.buffer.toreadonly() for f in frames]


def drain_router(sock: zmq.Socket[Any], max_frame_bytes: int,
                 handle: Callable[[bytes, Message], None],
                 dropped: Callable[[bytes, ProtocolError], None]) -> None:
    """Serve every message waiting on a ROUTER socket, without blocking.

    Each multipart is decoded and its messages handed to ``handle(peer, message)``; a
    :class:`ProtocolError` (from decoding or from ``handle``) drops the rest of that
    multipart and is reported to ``dropped(peer, error)``. The socket keeps serving.
    """
    while True:
        frames = recv_frames(sock)
        if frames is None:
            return
        peer = frames[0]
        try:
            for m in decode_frames(frames[1:], max_frame_bytes):
                handle(peer, m)
        except ProtocolError as exc:
            dropped(peer, exc)


class Loop:
    """A single-threaded reactor: sockets, fds, timers, and thread-safe callbacks.

    Only the loop's own thread may touch the sockets registered with it; other threads hand
    it work with :meth:`call_soon_threadsafe`.
    """

    def __init__(self) -> None:
        self._poller = zmq.Poller()
        self._handlers: dict[Any, Callable[[], None]] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._calls: deque[Callable[[], None]] = deque()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._wake_pending = False
        self._running = False
        self.thread: threading.Thread | None = None
        self._poller.register(self._wake_fd, zmq.POLLIN)
        self._handlers[self._wake_fd] = self._drain_wake

    def add_reader(self, sock_or_fd: Any, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever ``sock_or_fd`` is readable."""
        self._poller.register(sock_or_fd, zmq.POLLIN)
        self._handlers[sock_or_fd] = callback

    def remove_reader(self, sock_or_fd: Any) -> None:
        """Stop watching ``sock_or_fd`` (no error if it was not watched)."""
        if self._handlers.pop(sock_or_fd, None) is not None:
            self._poller.unregister(sock_or_fd)

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the loop after ``delay_s`` seconds (loop thread only)."""
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._seq), fn))

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the loop soon; safe from any thread."""
        self._calls.append(fn)
        if not self._wake_pending:
            self._wake_pending = True
            try:
                os.eventfd_write(self._wake_fd, 1)
            except OSError:  # closed: the loop is gone
                pass

    def _drain_wake(self) -> None:
        # Clear the flag only after consuming the eventfd, and look at the call queue only
        # after that (run() does): a caller that saw the flag set is then sure to be seen.
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass
        self._wake_pending = False

    def _run_calls(self) -> None:
        calls = self._calls
        while calls:
            fn = calls.popleft()
            try:
                fn()
            except Exception:
                log.exception("loop callback %r failed", fn)

    def stop(self) -> None:
        """Make :meth:`run` return after the current iteration (any thread)."""
        self._running = False
        self.call_soon_threadsafe(lambda: None)

    def run(self) -> None:
        """Serve until :meth:`stop`."""
        self.thread = threading.current_thread()
        self._running = True
        poll = self._poller.poll
        handlers = self._handlers
        while self._running:
            if self._calls:
                self._run_calls()
            timeout: int | None = None
            if self._timers:
                timeout = max(0, int((self._timers[0][0] - time.monotonic()) * 1000) + 1)
            if self._calls:
                timeout = 0
            try:
                events = poll(timeout)
            except zmq.ZMQError as exc:
                if exc.errno == zmq.ETERM:
                    break
                raise
            for sock, _ in events:
                handler = handlers.get(sock)
                if handler is None:
                    continue
                try:
                    handler()
                except Exception:
                    log.exception("handler for %r failed", sock)
            if self._calls:
                self._run_calls()
            if self._timers:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, fn = heapq.heappop(self._timers)
                    try:
                        fn()
                    except Exception:
                        log.exception("timer %r failed", fn)

    def close(self) -> None:
        """Release the wake-up fd (after :meth:`run` returned)."""
        try:
            os.close(self._wake_fd)
        except OSError:
            pass
