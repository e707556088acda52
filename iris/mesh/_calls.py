"""Request/reply: the envelope a ``call`` puts in a mailbox and the reply the caller holds.

::

    caller thread                      actor (scheduler thread or its own thread)
    rt.call(pid, data) ──► mailbox ◄── Call(data, future)
         │                                 handler(data) returns r
         ▼                                 future.set_result(r)
    Reply.result(timeout) / await Reply ◄──┘

Internal module; ``Reply`` is what ``Runtime.call`` returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Generator
from typing import Any

from iris.exceptions import GetTimeoutError

__all__ = ["Call", "Reply", "fail_call"]


class Call:
    """A request in a mailbox: the payload and the future its answer goes to.

    Internal type, not part of the public API.
    """

    __slots__ = ("data", "future")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def reply(self, value: Any) -> None:
        """Answer the request (ignored if the caller already gave up)."""
        try:
            self.future.set_result(value)
        except concurrent.futures.InvalidStateError:
            pass

    def fail(self, error: BaseException) -> None:
        """Fail the request with ``error`` (ignored if the caller already gave up)."""
        try:
            self.future.set_exception(error)
        except concurrent.futures.InvalidStateError:
            pass


def fail_call(message: Any, error: BaseException) -> None:
    """Fail ``message`` if it is a pending request; other messages are left alone."""
    if message.__class__ is Call:
        message.fail(error)


class Reply:
    """The answer to ``Runtime.call``: awaitable, and blocking through ``result()``.

    Example:
        >>> rt.call(pid, b"ping").result()          # from a plain thread
        >>> await rt.call(pid, b"ping")              # from a coroutine

    Raises (from ``result`` or ``await``):
        GetTimeoutError: no answer within the timeout given to ``call``.
        ActorDiedError: the actor was dead, or died before answering.
        TaskError: the handler raised (the actor crashed); the original is ``.cause``.
    """

    __slots__ = ("_future", "_timeout", "_pid")

    def __init__(self, future: concurrent.futures.Future[Any], timeout: float | None,
                 pid: int) -> None:
        self._future = future
        self._timeout = timeout
        self._pid = pid

    def done(self) -> bool:
        """Whether the answer (or an error) has arrived."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> Any:
        """Block until the answer arrives and return it.

        Args:
            timeout: seconds to wait; None means the timeout given to ``call``.
        """
        wait = self._timeout if timeout is None else timeout
        try:
            return self._future.result(wait)
        except concurrent.futures.TimeoutError:
            raise GetTimeoutError(
                f"actor {self._pid} did not answer the call within {wait} s") from None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        fut = asyncio.wrap_future(self._future)
        try:
            return await asyncio.wait_for(fut, self._timeout)
        except asyncio.TimeoutError:
            raise GetTimeoutError(
                f"actor {self._pid} did not answer the call within {self._timeout} s"
            ) from None

    def __repr__(self) -> str:
        state = "done" if self._future.done() else "pending"
        return f"<Reply from actor {self._pid} {state}>"
