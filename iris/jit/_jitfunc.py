"""``strategy="jit"``: compile with numba in the calling process, fall back to Python.

Internal module, not part of the public API; ``iris.jit`` re-exports ``JitFunction``.

Calling a ``JitFunction`` calls its ``_entry`` (``__call__`` is a property that returns
it), so that in the common case (no ``return_type``, no keyword-only parameters) a call
goes straight into numba's C dispatcher, with no Python frame of ours in between::

    fn(*args) ─▶ _entry ─▶ numba dispatcher ─ matching specialisation ─▶ native code
      (before the first call:     │ none matches (new types)
       _first_call, which builds) ▼
                               CompileGuard: check types, then return one of
                                 compiled entry (compile / disk cache) ─▶ native code
                                 _call_python   (numba cannot) ─▶ plain-Python version
                                 _call_with_arrays (list args)  ─▶ lists -> arrays, again

    with return_type or keyword-only parameters: _entry = _call_wrapped, which binds the
    arguments and/or converts the result around the same dispatcher call.
"""

from __future__ import annotations

import operator
import threading
from typing import Any

from iris.jit._base import OffloadFunction, OffloadStatistics
from iris.jit._log import jit_log, logger
from iris.jit._numba import CompileGuard, Kernel, build_kernel, unwrap_omitted
from iris.jit._types import NeedsConversion, check_args, convert_lists, to_python

__all__ = ["JitFunction"]


class JitFunction(OffloadFunction):
    """A function compiled with numba on its first call, in the calling process.

    Made by ``@iris.offload`` (``strategy="jit"``, the default). Calling it compiles a
    specialisation for the argument types on first use (or loads it from numba's disk
    cache), then runs native code; when numba cannot compile it, it runs as plain Python
    with the same results and logs a warning once.

    Calling it raises ``TypeError`` for an argument of an unsupported type (the message
    lists the supported ones), ``OverflowError`` for an ``int`` beyond 64 bits, and
    whatever the function itself raises, with its message.

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
        self._entry: Any = self._first_call

    # ``fn(...)`` calls ``fn._entry(...)``: a property, so that the entry can be numba's
    # dispatcher itself (an ordinary ``__call__`` method would add a Python frame and a
    # kwargs dict to every call, about 0.15 µs on a 0.2 µs call).
    __call__ = property(operator.attrgetter("_entry"))  # type: ignore[assignment]

    # -- the entries ----------------------------------------------------------------------

    def _first_call(self, *args: Any, **kwargs: Any) -> Any:
        self._build()
        return self._entry(*args, **kwargs)

    def _call_wrapped(self, *args: Any, **kwargs: Any) -> Any:
        kernel = self._kernel
        assert kernel is not None
        if kernel.bind is not None:
            result = self._dispatcher(*kernel.bind(args, kwargs))
        else:
            result = self._dispatcher(*args, **kwargs)
        return result if self._convert is None else self._convert(result)

    def _call_python(self, *args: Any, **kwargs: Any) -> Any:
        """The plain-Python version; numba calls it with folded positional arguments."""
        kernel = self._kernel if self._kernel is not None else self._build()
        args = unwrap_omitted(args) if self._dispatcher is not None else args
        try:
            check_args(self.__name__, args, kwargs, self._names)
        except NeedsConversion:
            pass  # plain Python takes lists as they are
        if kernel.bind is not None and self._dispatcher is not None:
            args, kwargs = self._unflatten(args)
        self._fallback_calls += 1
        return to_python(kernel.python(*args, **kwargs))

    def _call_python_converted(self, *args: Any, **kwargs: Any) -> Any:
        result = self._call_python(*args, **kwargs)
        return result if self._convert is None else self._convert(result)

    def _call_with_arrays(self, *args: Any) -> Any:
        new_args, _ = convert_lists(self.__name__, unwrap_omitted(args), {}, self._names)
        return self._dispatcher(*new_args)

    def _unflatten(self, flat: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # The compiled version takes keyword-only parameters positionally (see _numba).
        code = self._py_func.__code__
        n_pos, n_kw = code.co_argcount, code.co_kwonlyargcount
        kwonly = dict(zip(self._names[n_pos:n_pos + n_kw], flat[n_pos:n_pos + n_kw]))
        return flat[:n_pos] + flat[n_pos + n_kw:], kwonly

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
            self._kernel = kernel
            if kernel.dispatcher is None:
                self._on_failure("", kernel.reason or "numba is unavailable")
                self._entry = self._call_python_converted
            else:
                CompileGuard(kernel.dispatcher, self.__name__, self._on_failure,
                             fallback=self._call_python, on_lists=self._call_with_arrays)
                self._dispatcher = kernel.dispatcher
                simple = kernel.bind is None and self._convert is None
                self._entry = kernel.dispatcher if simple else self._call_wrapped
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
