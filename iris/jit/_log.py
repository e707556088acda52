"""Compile logging for offloaded functions: the ``IRIS_JIT_LOG`` switch.

Internal module, not part of the public API; ``iris.jit`` re-exports the two functions.

Two kinds of message go to the ``iris.jit`` logger:

- the *fallback warning* (level WARNING, once per function) whenever numba cannot compile a
  kernel; it is always emitted and follows the application's ``logging`` configuration;
- *compile logs* (level INFO: rewrite, compile start/end with timings, cache hits, fallback
  details), emitted only while JIT logging is on. Turning it on also attaches a stderr
  handler with the prefix ``[iris][jit]`` so the messages show without any logging setup.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

__all__ = ["JIT_LOG_ENV", "get_jit_logging", "jit_log", "logger", "set_jit_logging"]

#: Environment variable read when logging is not forced on or off.
JIT_LOG_ENV = "IRIS_JIT_LOG"
_TRUTHY = frozenset({"1", "true", "yes", "on", "debug"})

logger = logging.getLogger("iris.jit")

_lock = threading.Lock()
_forced: bool | None = None
_env_var = JIT_LOG_ENV
_handler: logging.Handler | None = None


def set_jit_logging(enabled: bool | None = None, env_var: str | None = None) -> bool:
    """Turn compile logging on or off, or hand control back to the environment.

    Args:
        enabled: ``True`` or ``False`` forces logging on or off; ``None`` follows the
            environment variable (``IRIS_JIT_LOG`` unless ``env_var`` renames it; truthy
            values are ``1``, ``true``, ``yes``, ``on`` and ``debug``, in any case).
        env_var: another environment variable to follow from now on.

    Returns:
        Whether logging is on after the call.

    Example:
        >>> import iris.jit
        >>> iris.jit.set_jit_logging(True)
        True
        >>> iris.jit.set_jit_logging(None)  # back to $IRIS_JIT_LOG
        False
    """
    global _forced, _env_var
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"set_jit_logging() takes True, False or None, not {enabled!r}")
    with _lock:
        _forced = enabled
        if env_var is not None:
            _env_var = env_var
    return get_jit_logging()


def get_jit_logging() -> bool:
    """Whether compile logging is on (forced by ``set_jit_logging`` or from the environment).

    Example:
        >>> import iris.jit
        >>> isinstance(iris.jit.get_jit_logging(), bool)
        True
    """
    forced = _forced
    if forced is not None:
        return forced
    return os.environ.get(_env_var, "").strip().lower() in _TRUTHY


def jit_log(message: str, *args: object) -> None:
    """Log a compile message at INFO level if compile logging is on (internal)."""
    if not get_jit_logging():
        return
    _ensure_handler()
    logger.info(message, *args)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced, e.g. by pytest)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _ensure_handler() -> None:
    global _handler
    if _handler is not None:
        return
    with _lock:
        if _handler is None:
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("[iris][jit] %(message)s"))
            handler.setLevel(logging.INFO)
            logger.addHandler(handler)
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)
            _handler = handler
