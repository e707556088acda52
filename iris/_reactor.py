"""A reactor whose loop any thread can run: leader/follower I/O over ZeroMQ sockets.

The plain :class:`~iris._transport.Loop` belongs to one thread, so every other thread
hands it work and waits for it to wake: two thread switches (~20-60 us each on this
machine) on every synchronous call. Here one lock guards the sockets and the state of
whoever uses the reactor, and the thread that needs I/O does it itself:

* any thread may *send* while holding :attr:`Reactor.lock` (no wake-up of another thread);
* one thread at a time, the *leader*, waits for input: it sleeps in ``epoll`` on the
  sockets' ``ZMQ_FD`` descriptors **without** the lock, then takes the lock to run the
  handlers of what became readable, the thread-safe calls and the due timers;
* a thread that needs input (a caller of ``get``) becomes the leader for as long as it
  waits; a *background* leader (an I/O thread) gives way to it at its next wake-up, and
  takes over again once no foreground thread leads or wants to.

``ZMQ_FD`` is an edge-style notification: it is readable when the socket's command
mailbox is not empty, and a send may consume a notification that announced input. So a
readable descriptor is checked with ``ZMQ_EVENTS``, handlers drain their socket until
``EAGAIN``, and after every send the sender checks for input that arrived meanwhile
(:meth:`Reactor.sent`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

__all__ = ["Reactor"]

log = logging.getLogger("iris.reactor")

# A parked background leader looks for a free lead this often (seconds); a foreground
# leader that led for longer than _BG_WAKE_AFTER_S wakes it on leaving.
_BG_RECHECK_LED_S = 0.01
# ... and takes it only once no foreground thread has led for this long.
_BG_GRACE_S = 0.001
_BG_WAKE_AFTER_S = 0.002


class Reactor:
    """Sockets, fds, timers and thread-safe calls, served by whichever thread leads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # Parked threads (followers, getters) wait here; notified when leadership frees up
        # and, by users of the reactor, when something they wait for happened.
        self.cond = threading.Condition(self.lock)
        # The background leader waits here for the lead to come free. A foreground leader
        # that leads briefly (a synchronous get) does not wake it on leaving: the caller
        # usually leads again within microseconds, and waking the background thread would
        # only make the two fight over the GIL. It looks again after a short timeout.
        self._bg_cond = threading.Condition(self.lock)
        self._led_since = 0.0
        self._released = 0.0  # when a foreground leader last left
        self._epoll = select.epoll()
        self._handlers: dict[int, tuple[Any, Callable[[], None]]] = {}  # fd -> (sock, cb)
        self._socks: dict[Any, int] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._calls: deque[Callable[[], None]] = deque()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._wake_pending = False
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._recheck: set[Any] = set()  # sockets whose input notification a send consumed
        self.leader: int | None = None
        self._background: int | None = None  # the leader's ident, if it leads in background
        self.wanted = 0  # foreground threads waiting to lead
        self.stopped = False
        self.closed = False

    # ------------------------------------------------------------------ registration
    def add_reader(self, sock_or_fd: Any, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (lock held) whenever ``sock_or_fd`` has input. Lock held."""
        fd: int
        if isinstance(sock_or_fd, zmq.Socket):
            fd = int(sock_or_fd.getsockopt(zmq.FD))
        elif isinstance(sock_or_fd, int):
            fd = sock_or_fd
        else:  # an object with fileno(), such as a stream link
            fd = sock_or_fd.fileno()
        self._handlers[fd] = (sock_or_fd, callback)
        self._socks[sock_or_fd] = fd
        self._epoll.register(fd, select.EPOLLIN)
        if isinstance(sock_or_fd, zmq.Socket):
            self._recheck.add(sock_or_fd)  # input may have arrived before registration
            self._kick()

    def remove_reader(self, sock_or_fd: Any) -> None:
        """Stop watching ``sock_or_fd`` (no error if it was not watched). Lock held."""
        fd = self._socks.pop(sock_or_fd, None)
        if fd is None:
            return
        self._handlers.pop(fd, None)
        self._recheck.discard(sock_or_fd)
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass

    def watch_writable(self, sock_or_fd: Any, on: bool) -> None:
        """Also call the reader's callback when ``sock_or_fd`` (a plain descriptor or an
        object with ``fileno()``, not a ZeroMQ socket) becomes writable. Lock held."""
        fd = self._socks.get(sock_or_fd)
        if fd is not None:
            self._epoll.modify(fd, select.EPOLLIN | (select.EPOLLOUT if on else 0))

    def sent(self, sock: Any) -> None:
        """Tell the reactor a send happened on ``sock`` (lock held): a send may swallow
        the notification of input that arrived meanwhile, so look at the socket again."""
        if isinstance(sock, zmq.Socket) and sock in self._socks and _readable(sock):
            self._recheck.add(sock)
            if self.leader != threading.get_ident():
                self._kick()

    # ------------------------------------------------------------------ calls and timers
    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` (lock held) on the leading thread soon; safe from any thread."""
        self._calls.append(fn)
        self._kick()

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` (lock held) after ``delay_s`` seconds. Lock held."""
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._seq), fn))
        if self.leader != threading.get_ident():
            self._kick()

    def _kick(self) -> None:
        if not self._wake_pending and not self.closed:
            self._wake_pending = True
            try:
                os.eventfd_write(self._wake_fd, 1)
            except OSError:  # closed: the reactor is gone
                pass

    # ------------------------------------------------------------------ leading
    def run(self, until: Callable[[], bool] | None = None, deadline: float | None = None,
            background: bool = False, work: Callable[[], None] | None = None,
            spin_s: float = 0.0) -> bool:
        """Lead the reactor until ``until()`` is true, ``deadline`` passes or :meth:`stop`.

        While another thread leads, wait parked (checking ``until`` whenever woken). A
        ``background`` leader also returns as soon as a foreground thread wants to lead.
        ``work()`` runs after every round of handlers, *without* the lock (a worker runs
        its tasks there). Returns ``until()`` (False when no condition was given).
        """
        me = threading.get_ident()
        done = until if until is not None else _never
        with self.lock:
            if self.leader == me:
                # Nested (a callback run by our own lead waits again): lead on, and leave
                # the lead to the outer call when done.
                return self._lead(me, done, deadline, background, None, spin_s)
            if self.leader != me:
                if not background:
                    self.wanted += 1
                try:
                    while self.leader is not None or (background and (
                            self.wanted or time.monotonic() - self._released < _BG_GRACE_S)):
                        if done() or self.stopped:
                            return done()
                        if self.leader is not None and self.leader == self._background \
                                and not background:
                            self._kick()  # ask the background leader to step aside
                        if background:
                            self._bg_cond.wait(_BG_RECHECK_LED_S)
                            continue
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            return done()
                        self.cond.wait(left)
                finally:
                    if not background:
                        self.wanted -= 1
                self.leader = me
                self._background = me if background else None
                self._led_since = time.monotonic()
        try:
            return self._lead(me, done, deadline, background, work, spin_s)
        finally:
            with self.lock:
                if self.leader == me:
                    self._release(background)

    def _lead(self, me: int, done: Callable[[], bool], deadline: float | None,
              background: bool, work: Callable[[], None] | None, spin_s: float = 0.0) -> bool:
        poll = self._epoll.poll
        spin_until = time.perf_counter() + spin_s if spin_s else 0.0
        if work is not None:
            work()  # what queued up while another thread led
        while True:
            with self.lock:
                if self.leader != me or self.stopped or done() or (background and self.wanted):
                    return done()
                timeout = -1.0
                if self._calls or self._recheck:
                    timeout = 0.0
                elif self._timers:
                    timeout = max(0.0, self._timers[0][0] - time.monotonic())
                if deadline is not None:
                    left = max(0.0, deadline - time.monotonic())
                    timeout = left if timeout < 0 else min(timeout, left)
                    if left <= 0:
                        return done()
            try:
                if spin_until and timeout != 0.0:
                    # Expecting an answer within microseconds: look without sleeping for a
                    # while (a sleeping thread's wake-up costs more than the look here).
                    events = poll(0)
                    while not events and time.perf_counter() < spin_until:
                        events = poll(0)
                    if not events:
                        spin_until = 0.0
                        events = poll(timeout)
                else:
                    events = poll(timeout)
            except InterruptedError:
                events = []
            except (OSError, ValueError):  # closed under us: the reactor is shutting down
                return done()
            with self.lock:
                if self.leader != me:
                    return done()
                self._dispatch(me, events)
            if work is not None:
                work()

    def _dispatch(self, me: int | None, events: list[tuple[int, int]]) -> None:
        """Run what is due (lock held): ready handlers, then calls, then timers."""
        ready: list[tuple[Any, Callable[[], None]]] = []
        for fd, _ in events:
            if fd == self._wake_fd:
                try:
                    os.eventfd_read(self._wake_fd)
                except BlockingIOError:
                    pass
                self._wake_pending = False
                continue
            entry = self._handlers.get(fd)
            if entry is not None:
                ready.append(entry)
        if self._recheck:
            for sock in self._recheck:
                known = self._socks.get(sock)
                if known is not None:
                    ready.append(self._handlers[known])
            self._recheck.clear()
        seen: set[int] = set()
        for sock, callback in ready:
            if id(sock) in seen:
                continue
            seen.add(id(sock))
            if isinstance(sock, zmq.Socket):
                try:
                    if sock.closed or not _readable(sock):
                        continue
                except zmq.ZMQError:
                    continue
            try:
                callback()
            except Exception:
                log.exception("handler for %r failed", sock)
            if self.leader != me:
                return  # a handler gave the lead away (a task blocked): the rest is theirs
        calls = self._calls
        while calls:
            fn = calls.popleft()
            try:
                fn()
            except Exception:
                log.exception("reactor callback %r failed", fn)
            if self.leader != me:
                return
        timers = self._timers
        if timers:
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                _, _, fn = heapq.heappop(timers)
                try:
                    fn()
                except Exception:
                    log.exception("timer %r failed", fn)
                if self.leader != me:
                    return

    def _release(self, background: bool) -> None:
        self.leader = self._background = None
        if not background:
            self._released = time.monotonic()
        if self.wanted:
            self.cond.notify_all()
        elif not background and time.monotonic() - self._led_since > _BG_WAKE_AFTER_S:
            self._bg_cond.notify()

    def poll_now(self) -> None:
        """Serve what is ready right now, without waiting (lock held; any thread).

        A thread that produces work in a burst calls this to send and receive in step
        with its own pace, instead of waiting for the leader to win the GIL from it.
        """
        try:
            events = self._epoll.poll(0)
        except (OSError, ValueError):
            return
        leader = self.leader
        self._dispatch(leader, events)
        if leader is not None and leader != threading.get_ident() and \
                leader != self._background:
            # What we served may be what the leader waits for: let it look. (A background
            # leader waits for nothing in particular: waking it would only have it compete
            # for the GIL with this thread's burst.)
            self._kick()

    def abdicate(self) -> None:
        """Give up the lead (lock held by the leader), waking a parked thread to take it."""
        if self.leader == threading.get_ident():
            self.leader = self._background = None
            self.cond.notify_all()
            self._bg_cond.notify()

    def parked(self) -> int:
        """How many threads wait to lead (foreground)."""
        return self.wanted

    def stop(self) -> None:
        """Make every :meth:`run` return; safe from any thread."""
        self.stopped = True
        self._kick()
        with self.lock:
            self.cond.notify_all()
            self._bg_cond.notify_all()

    def close(self) -> None:
        """Release the epoll and wake-up descriptors (after every run returned)."""
        self.closed = True
        self._wake_pending = True  # no more writes to the (soon reused) descriptor number
        try:
            os.close(self._wake_fd)
        except OSError:
            pass
        self._epoll.close()


def _readable(sock: zmq.Socket[Any]) -> bool:
    return bool(int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)


def _never() -> bool:
    return False
