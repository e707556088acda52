"""Building the compiled and the plain-Python versions of a kernel; the compile guard.

Internal module, not part of the public API. numba is imported here, lazily, on the first
call of an offloaded function (``import iris`` and decorating never import it).

::

    first call ──▶ build_kernel(py_func, source, options)
                     │  namespace = copy of py_func.__globals__ + closure values
                     │              + math names the module lacks
                     │  rewrite (intrinsics -> plain Python, helpers lifted)
                     ├─▶ exec in a copy for Python      -> Kernel.python   (the fallback)
                     └─▶ exec in a copy for numba:
                           prange stub -> numba.prange, offloaded globals -> their
                           dispatchers, helpers -> njit -> Kernel.dispatcher (lazy compile)

    dispatcher(*args) ─ no specialisation for these types ─▶ CompileGuard (numba's
      ``_compile_for_args`` hook): check argument types, compile under a warnings
      recorder and return the compiled entry; on a compile error return the plain-Python
      version instead, which numba then calls with the same arguments.

The globals are a snapshot taken at the first call: numba treats globals as compile-time
constants anyway, and the fallback must see the same values as the compiled code.
"""

from __future__ import annotations

import inspect
import re
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FunctionType, ModuleType
from typing import Any

from iris.jit._intrinsics import injected_names, prange
from iris.jit._log import jit_log
from iris.jit._options import OffloadOptions
from iris.jit._rewrite import FunctionSource, RewriteUnavailable, rewrite
from iris.jit._types import NeedsConversion, check_args

__all__ = ["CompileGuard", "Kernel", "build_kernel", "describe_error", "import_numba",
           "unwrap_omitted"]

_numba_lock = threading.Lock()
_numba: ModuleType | None = None
_numba_error: str | None = None


def import_numba() -> ModuleType | None:
    """numba, imported on first use; None if it cannot be imported."""
    global _numba, _numba_error
    if _numba is None and _numba_error is None:
        with _numba_lock:
            if _numba is None and _numba_error is None:
                start = time.perf_counter()
                try:
                    import numba
                except Exception as exc:  # ImportError, or a broken llvmlite
                    _numba_error = f"numba cannot be imported ({type(exc).__name__}: {exc})"
                else:
                    _numba = numba
                    jit_log("imported numba %s in %.1f ms", numba.__version__,
                            (time.perf_counter() - start) * 1e3)
    return _numba


@dataclass(slots=True)
class Kernel:
    """The two versions of an offloaded function (internal type).

    Attributes:
        python: the plain-Python version (rewritten, so intrinsics work), run on fallback.
        dispatcher: the numba dispatcher, or None when numba is unavailable.
        reason: why there is no dispatcher, if there is none.
        rewritten: whether the source was rewritten (False: the original function is used).
    """

    python: Callable[..., Any]
    dispatcher: Any
    reason: str | None
    rewritten: bool
    bind: Callable[[tuple[Any, ...], dict[str, Any]], tuple[Any, ...]] | None = None


def _namespace(py_func: FunctionType) -> dict[str, Any]:
    namespace = dict(py_func.__globals__)
    namespace.setdefault("__builtins__", __builtins__)
    namespace.update(injected_names(namespace))
    for name, cell in zip(py_func.__code__.co_freevars, py_func.__closure__ or ()):
        try:
            namespace[name] = cell.cell_contents
        except ValueError:  # an empty cell: the name is not bound yet
            pass
    return namespace


def _define(code: Any, name: str, namespace: dict[str, Any],
            py_func: FunctionType) -> FunctionType:
    exec(code, namespace)
    func: FunctionType = namespace[name]
    func.__defaults__ = py_func.__defaults__
    func.__kwdefaults__ = py_func.__kwdefaults__
    func.__qualname__ = py_func.__qualname__
    func.__doc__ = py_func.__doc__
    return func


def _njit(numba: ModuleType, func: Callable[..., Any], kwargs: dict[str, bool]) -> Any:
    try:
        return numba.njit(**kwargs)(func)
    except RuntimeError as exc:  # "cannot cache function ...: no locator available"
        if not kwargs.get("cache"):
            raise
        jit_log("disk cache unavailable for %s (%s); compiling without it",
                getattr(func, "__qualname__", func), exc)
        return numba.njit(**{**kwargs, "cache": False})(func)


def build_kernel(py_func: FunctionType, source: FunctionSource | None,
                 options: OffloadOptions) -> Kernel:
    """Rewrite ``py_func`` and make its Python and numba versions (no compile happens yet).

    Raises:
        SyntaxError: an intrinsic is misused in the function's source.
    """
    base = _namespace(py_func)
    code = None
    if source is not None:
        try:
            code = rewrite(py_func, source, base)
        except RewriteUnavailable as exc:
            jit_log("%s: not rewritten, %s", py_func.__qualname__, exc)
    python: Callable[..., Any] = py_func
    if code is not None:
        python = _define(code.code, code.name, dict(base), py_func)
    numba = import_numba()
    if numba is None:
        return Kernel(python, None, _numba_error, code is not None)
    flatten = py_func.__code__.co_kwonlyargcount > 0
    nb_namespace = _numba_namespace(base, numba, _referenced_names(py_func.__code__))
    if code is None:
        func = py_func if not flatten else FunctionType(
            py_func.__code__, py_func.__globals__, py_func.__name__, None, py_func.__closure__)
    else:
        func = _define(code.code, code.name, nb_namespace, py_func)
    if flatten:
        _flatten_keyword_only(func)
    if code is None:
        dispatcher = _njit(numba, func, options.njit_kwargs())
    else:
        for helper in code.helpers:
            nb_namespace[helper] = _njit(numba, nb_namespace[helper],
                                         options.njit_kwargs(helper=True))
        dispatcher = _njit(numba, func, options.njit_kwargs())
        # Recursion by name must reach the dispatcher, not the Python wrapper.
        nb_namespace[code.name] = dispatcher
    return Kernel(python, dispatcher, None, code is not None,
                  _binder(py_func) if flatten else None)


def _flatten_keyword_only(func: FunctionType) -> None:
    """Make keyword-only parameters positional: numba's dispatcher cannot fold them."""
    code = func.__code__
    func.__code__ = code.replace(co_argcount=code.co_argcount + code.co_kwonlyargcount,
                                 co_kwonlyargcount=0)
    func.__defaults__ = None
    func.__kwdefaults__ = None


def _binder(py_func: FunctionType) -> Callable[[tuple[Any, ...], dict[str, Any]],
                                               tuple[Any, ...]]:
    """Maps a call of ``py_func`` to the positional call of its flattened version."""
    signature = inspect.signature(py_func)
    params = list(signature.parameters.values())
    star = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None)
    named = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                  p.KEYWORD_ONLY)]

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = tuple(bound.arguments[name] for name in named)
        return values + tuple(bound.arguments[star]) if star else values

    return bind


def _referenced_names(code: CodeType) -> set[str]:
    names = set(code.co_names) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _referenced_names(const)
    return names


def _numba_namespace(base: dict[str, Any], numba: ModuleType,
                     referenced: set[str]) -> dict[str, Any]:
    from iris.jit._base import OffloadFunction  # the wrapper type, imported late (cycle)

    namespace = dict(base)
    for name in referenced & base.keys():
        value = base[name]
        if value is prange:
            namespace[name] = numba.prange
        elif isinstance(value, OffloadFunction):
            target = value._numba_target()
            if target is not None:
                namespace[name] = target
    return namespace


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def describe_error(exc: BaseException) -> str:
    """numba's error as one readable string (ANSI colour codes removed)."""
    lines = [line.rstrip() for line in _ANSI.sub("", str(exc)).strip().splitlines()]
    # Drop numba's framing ("Failed in nopython mode pipeline ...", "During: ...").
    kept = [line for line in lines
            if not line.startswith(("Failed in nopython mode pipeline", "During: "))]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept or lines).strip())
    return f"{type(exc).__name__}: {text}"


class CompileGuard:
    """Stands in for the dispatcher's ``_compile_for_args`` (internal type).

    numba calls it, in the calling thread, whenever no compiled specialisation matches the
    argument types, and then calls whatever it returns with the same (folded, positional)
    arguments. The guard checks the types (``TypeError`` for unsupported ones) and returns:

    - numba's compiled entry point, after compiling (or loading from the disk cache) with
      numba's warnings captured and logged;
    - ``on_lists`` when an argument is a list (it copies lists to arrays and calls again);
    - ``fallback`` (the plain-Python version) when numba cannot compile these types, now or
      before; the reason is reported once to ``on_failure``.

    Runtime errors of the kernel never pass through here: numba runs the code afterwards.
    """

    def __init__(self, dispatcher: Any, name: str, on_failure: Callable[[str, str], None],
                 fallback: Callable[..., Any], on_lists: Callable[..., Any]) -> None:
        from numba.core.dispatcher import OmittedArg
        from numba.core.types import Omitted

        self._dispatcher = dispatcher
        self._compile = dispatcher._compile_for_args
        self._name = name
        self._on_failure = on_failure
        self._fallback = fallback
        self._on_lists = on_lists
        self._omitted_arg = OmittedArg
        self._omitted = Omitted
        self._failed: dict[tuple[Any, ...], str] = {}
        code = dispatcher.py_func.__code__
        self._names: tuple[str, ...] = code.co_varnames[:code.co_argcount]
        self._active = threading.local()
        dispatcher._compile_for_args = self

    def _types(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(self._omitted(a.value) if isinstance(a, self._omitted_arg)
                     else self._dispatcher.typeof_pyval(a) for a in args)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self._active, "on", False):  # numba re-enters with literal arguments
            return self._compile(*args, **kwargs)
        try:
            check_args(self._name, unwrap_omitted(args), names=self._names)
        except NeedsConversion:
            return self._on_lists
        types = self._types(args)
        if types in self._failed:
            return self._fallback
        stats = self._dispatcher.stats
        hits = sum(stats.cache_hits.values())
        start = time.perf_counter()
        failed = False
        self._active.on = True
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    return self._compile(*args, **kwargs)
                except Exception as exc:
                    failed = True
                    reason = describe_error(exc)
                    self._failed[types] = reason
                    self._on_failure(", ".join(map(str, types)), reason)
                    return self._fallback
        finally:
            self._active.on = False
            for w in caught:
                jit_log("%s: numba warning: %s", self._name,
                        _ANSI.sub("", str(w.message)).strip())
            if not failed:
                how = "loaded from cache" if sum(stats.cache_hits.values()) > hits else "compiled"
                jit_log("%s(%s) %s in %.1f ms", self._name, ", ".join(map(str, types)), how,
                        (time.perf_counter() - start) * 1e3)


def unwrap_omitted(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """numba's folded arguments with its ``OmittedArg`` placeholders replaced by the defaults."""
    from numba.core.dispatcher import OmittedArg

    return tuple(a.value if isinstance(a, OmittedArg) else a for a in args)
