"""The iris exception tree.

::

    IrisError                       base of everything iris raises on purpose
    ├── TaskError                   user code raised inside a task; also an instance of the
    │                               original exception's class, the original under ``.cause``
    ├── GetTimeoutError             ``get``/``wait`` ran out of time (also a ``TimeoutError``)
    ├── WorkerCrashedError          the worker process died while running the task, and the
    │                               task's retries are used up
    ├── ObjectLostError             the value behind an ObjectRef is gone (freed, or its owner died)
    ├── ActorDiedError              the actor is dead and cannot be restarted
    ├── TaskCancelledError          the task was cancelled with ``iris.cancel``
    ├── NotInitializedError         an API call that needs a cluster came before ``iris.init()``
    ├── ProtocolError               a frame that breaks the wire protocol (also a ``ValueError``)
    └── AuthenticationError         a peer without the cluster's credentials, or bad credentials

``TaskError`` differs from ``WorkerCrashedError``: the first means the task's own code raised
(the worker is fine); the second means the process running it died (os._exit, a signal).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = [
    "ActorDiedError",
    "AuthenticationError",
    "GetTimeoutError",
    "IrisError",
    "NotInitializedError",
    "ObjectLostError",
    "ProtocolError",
    "TaskCancelledError",
    "TaskError",
    "WorkerCrashedError",
]


class IrisError(Exception):
    """Base class of every error iris raises on purpose."""


class TaskError(IrisError):
    """A task (or actor method) raised; ``get`` re-raises it in the caller.

    The instance ``get`` raises is also an instance of the original exception's class, so
    ``except ValueError`` catches a remote ``ValueError``. The original exception is
    ``.cause`` (and ``__cause__``); the message includes the remote traceback.
    """

    cause: BaseException | None
    remote_traceback: str

    def __init__(self, message: str = "", cause: BaseException | None = None,
                 remote_traceback: str = "") -> None:
        super().__init__(message)
        self.cause = cause
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_task_error, (str(self), self.cause, self.remote_traceback))

    @classmethod
    def from_remote(cls, cause: BaseException | None, remote_traceback: str,
                    where: str = "") -> TaskError:
        """Build the error to raise locally for a remote failure.

        Args:
            cause: the exception the remote code raised (None if it could not be pickled).
            remote_traceback: the remote traceback, formatted.
            where: a short description of where it ran, such as ``"task square"``.
        """
        head = f"{where} raised " if where else ""
        if cause is None:
            return cls(f"{head}an exception\n\nRemote traceback:\n{remote_traceback}",
                       None, remote_traceback)
        name = type(cause).__name__
        tb = remote_traceback
        if tb.startswith("Traceback (most recent call last):"):
            tb = tb[len("Traceback (most recent call last):"):].lstrip("\n")
        message = f"{head}{name}: {cause}\n\nRemote traceback (most recent call last):\n{tb}"
        klass = _dual_class(type(cause))
        err: Any
        if klass is cls:
            err = cls(message, cause, remote_traceback)
        else:
            # Built without calling the cause class's __init__, whose signature is unknown.
            err = Exception.__new__(klass)
            Exception.__init__(err, message)
            err.cause = cause
            err.remote_traceback = remote_traceback
        err.__cause__ = cause
        return err


_dual_lock = threading.Lock()
_dual_cache: dict[type, type] = {}


def _dual_class(cause_cls: type) -> type:
    """The class that is both a ``TaskError`` and an instance of ``cause_cls``."""
    if issubclass(cause_cls, TaskError) or not issubclass(cause_cls, Exception):
        return TaskError
    with _dual_lock:
        klass = _dual_cache.get(cause_cls)
        if klass is None:
            try:
                klass = type(f"TaskError({cause_cls.__name__})", (TaskError, cause_cls),
                             {"__init__": TaskError.__init__, "__str__": TaskError.__str__,
                              "__reduce__": TaskError.__reduce__})
            except TypeError:  # layout conflict (e.g. a C extension base): plain TaskError
                klass = TaskError
            _dual_cache[cause_cls] = klass
        return klass


def _rebuild_task_error(message: str, cause: BaseException | None, tb: str) -> TaskError:
    err = TaskError.from_remote(cause, tb) if cause is not None else TaskError(message, None, tb)
    err.args = (message,)
    return err


class GetTimeoutError(IrisError, TimeoutError):
    """``get`` or ``wait`` did not finish within its ``timeout``; the task keeps running."""


class WorkerCrashedError(IrisError):
    """The worker process died (exit code or signal given) while running the task.

    Raised once the task's ``max_retries`` are used up. Unlike ``TaskError``, the task's
    code did not raise: the process running it went away.
    """


class TaskCancelledError(IrisError):
    """The task was cancelled (``iris.cancel``) before it finished: it has no result."""


class _TaskInterrupt(BaseException):
    """Raised inside a running task by ``iris.cancel`` (internal): a ``BaseException``, so
    that the task's own ``except Exception`` does not swallow it."""


class ObjectLostError(IrisError):
    """The value behind an ObjectRef can no longer be had: freed, or its node is gone."""


class ActorDiedError(IrisError):
    """The actor is dead (stopped, crashed past its restarts, or its process died)."""


class NotInitializedError(IrisError, RuntimeError):
    """A call that needs a cluster was made before ``iris.init()``."""


class ProtocolError(IrisError, ValueError):
    """A frame broke the wire protocol: bad magic, version, type, length or field.

    Raised by the pure decoder; a server logs it, drops the frame and keeps serving.
    """


class AuthenticationError(IrisError):
    """A peer lacks the cluster's credentials, or the credentials given are malformed."""
