"""``strategy="jit"``: compile with numba in the calling process, fall back to Python.

Internal module, not part of the public API; ``iris.jit`` re-exports ``JitFunction``.

Call path (the first line is the hot path; everything else happens once per new
argument-type combination)::

    fn(*args) ─▶ dispatcher(*args) ─▶ compiled code ─▶ result [-> return_type]
                   │ no specialisation for these types
                   ▼
                 CompileGuard: check types ─▶ compile (or load from disk cache)
                   │ compile error: CompileFailed          │ list argument: NeedsConversion
                   ▼                                       ▼
                 plain-Python version (warning once)     copy lists to arrays, call again
"""

from __future__ import annotations

import threading
from typing import Any

from iris.jit._base import OffloadFunction, OffloadStatistics
from iris.jit._log import jit_log, logger
from iris.jit._numba import CompileFailed, CompileGuard, Kernel, build_kernel
from iris.jit._types import NeedsConversion, check_args, convert_lists, to_python

__all__ = ["JitFunction"]


class JitFunction(OffloadFunction):
    """A function compiled with numba on its first call, in the calling process.

    Made by ``@iris.offload`` (``strategy="jit"``, the default). Calling it compiles a
    specialisation for the argument types on first use (or loads it from numba's disk
    cache), then runs native code; when numba cannot compile it, it runs as plain Python
    with the same results and logs a warning once.

    Example:
        >>> import iris
        >>> @iris.offload
        ... def hypot3(x, y, z):
        ...     return (x * x + y * y + z * z) ** 0.5
        >>> hypot3(1.0, 2.0, 2.0)
        3.0
    """

    _kernel: Kernel | None = None
    _dispatcher: Any = None
    _bind: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()
        self._building = False
        self._fallback_reason: str | None = None
        self._fallback_calls = 0
        self._warned = False
        code = self._py_func.__code__
        self._names: tuple[str, ...] = code.co_varnames[:code.co_argcount
                                                         + code.co_kwonlyargcount]

    # -- calling ------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function: compiled if possible, as plain Python otherwise.

        Raises:
            TypeError: an argument's type is not supported (the message lists those that
                are).
            OverflowError: an ``int`` argument does not fit in 64 bits.
            Exception: whatever the function itself raises, with its message.
        """
        dispatcher = self._dispatcher
        if dispatcher is None:
            return self._first_call(args, kwargs)
        if self._bind is not None:  # keyword-only parameters: numba gets them positionally
            return self._call_bound(args, kwargs)
        try:
            result = dispatcher(*args, **kwargs)
        except CompileFailed:
            return self._run_python(args, kwargs)
        except NeedsConversion:
            return self._call_with_arrays(args, kwargs)
        convert = self._convert
        return result if convert is None else convert(result)

    def _first_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        kernel = self._build()
        if kernel.dispatcher is None:
            return self._run_python(args, kwargs)
        return self(*args, **kwargs)

    def _call_bound(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        flat = self._bind(args, kwargs)  # type: ignore[misc]  # TypeError like Python's
        try:
            result = self._dispatcher(*flat)
        except CompileFailed:
            return self._run_python(args, kwargs)
        except NeedsConversion:
            flat, _ = convert_lists(self.__name__, flat, {}, self._names)
            try:
                result = self._dispatcher(*flat)
            except CompileFailed:
                return self._run_python(args, kwargs)
        return result if self._convert is None else self._convert(result)

    def _call_with_arrays(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        new_args, new_kwargs = convert_lists(self.__name__, args, kwargs, self._names)
        try:
            result = self._dispatcher(*new_args, **new_kwargs)
        except CompileFailed:
            return self._run_python(args, kwargs)
        return result if self._convert is None else self._convert(result)

    def _run_python(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            check_args(self.__name__, args, kwargs, self._names)
        except NeedsConversion:
            pass  # plain Python takes lists as they are
        kernel = self._kernel if self._kernel is not None else self._build()
        self._fallback_calls += 1
        result = to_python(kernel.python(*args, **kwargs))
        return result if self._convert is None else self._convert(result)

    # -- building -----------------------------------------------------------------------

    def _build(self) -> Kernel:
        with self._lock:
            if self._kernel is not None:
                return self._kernel
            self._building = True
            try:
                kernel = build_kernel(self._py_func, self._source, self._options)
            finally:
                self._building = False
            if kernel.dispatcher is None:
                self._on_failure("", kernel.reason or "numba is unavailable")
            else:
                CompileGuard(kernel.dispatcher, self.__name__, self._on_failure)
            self._kernel = kernel
            self._bind = kernel.bind
            self._dispatcher = kernel.dispatcher
            jit_log("%s: prepared (%s source)", self.__qualname__,
                    "rewritten" if kernel.rewritten else "original")
            return kernel

    def _on_failure(self, types: str, reason: str) -> None:
        self._fallback_reason = reason
        what = f"{self.__qualname__}({types})" if types else self.__qualname__
        if not self._warned:
            self._warned = True
            logger.warning("numba cannot compile offloaded function %s; it runs as plain "
                           "Python instead. Reason: %s", what, reason)
        else:
            jit_log("%s falls back to plain Python: %s", what, reason)

    def _numba_target(self) -> Any:
        if self._building:  # recursion (directly or through another offloaded function)
            return None
        kernel = self._kernel if self._kernel is not None else self._build()
        return kernel.dispatcher

    # -- introspection ------------------------------------------------------------------

    @property
    def signatures(self) -> list[tuple[Any, ...]]:
        """The argument types compiled so far, as numba types (one tuple per specialisation)."""
        dispatcher = self._dispatcher
        return list(dispatcher.signatures) if dispatcher is not None else []

    @property
    def compiled(self) -> bool:
        """Whether at least one specialisation is compiled (False before the first call)."""
        return bool(self.signatures)

    @property
    def fallback_reason(self) -> str | None:
        """numba's most recent compile error for this function, or None."""
        return self._fallback_reason

    def statistics(self) -> OffloadStatistics:
        """State of this function in the calling process (signatures, cache, fallbacks)."""
        dispatcher = self._dispatcher
        hits = misses = 0
        # numba counts a "miss" even without a disk cache (its NullCache): report 0 then.
        if dispatcher is not None and type(dispatcher._cache).__name__ != "NullCache":
            hits = sum(dispatcher.stats.cache_hits.values())
            misses = sum(dispatcher.stats.cache_misses.values())
        sigs = tuple("(" + ", ".join(map(str, sig)) + ")" for sig in self.signatures)
        return OffloadStatistics("jit", bool(sigs), sigs, hits, misses, self._fallback_calls,
                                 self._fallback_reason)

    def __repr__(self) -> str:
        state = ("compiled" if self.compiled else
                 "fallback" if self._fallback_reason else "not compiled yet")
        return f"<JitFunction {self.__qualname__} ({state})>"
