"""``strategy="actor"``: run an offloaded function on the cluster's worker processes.

Internal module, not part of the public API; ``iris.jit`` re-exports ``ActorFunction``.
Built only on iris's public API (``iris.remote``, ``iris.get``, ``iris.is_initialized``).

::

    driver                                         worker process (any of them)
    fn(*a) = iris.get(fn.remote(*a))
    fn.remote(*a) ─ task "run" (cloudpickled once; ─▶ run(*a):
                    carries key, function, options,     _kernel_for(key) ─ per-process cache
                    source) ─ args via the object          │ first time: JitFunction(...)
                    store (large arrays: shared memory)    ▼ compiles or loads from disk cache
    ObjectRef ◀──────────────────────────────────────── result

``key`` is a uuid made when the function is decorated, so every worker compiles each
offloaded function once, however many tasks and drivers call it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from types import FunctionType
from typing import Any

from iris.exceptions import NotInitializedError
from iris.jit._base import OffloadFunction, OffloadStatistics
from iris.jit._jitfunc import JitFunction
from iris.jit._options import OffloadOptions
from iris.jit._rewrite import FunctionSource

__all__ = ["ActorFunction", "kernel_statistics"]

# Per-process cache of compiled kernels, by function key (filled in worker processes).
_KERNELS: dict[str, JitFunction] = {}
_KERNELS_LOCK = threading.Lock()


def _kernel_for(key: str, py_func: FunctionType, options: OffloadOptions,
                source: FunctionSource | None) -> JitFunction:
    kernel = _KERNELS.get(key)
    if kernel is None:
        with _KERNELS_LOCK:
            kernel = _KERNELS.get(key)
            if kernel is None:
                jit_options = dataclasses.replace(options, strategy="jit")
                kernel = JitFunction(py_func, jit_options, source, key)
                _KERNELS[key] = kernel
    return kernel


def kernel_statistics(key: str) -> OffloadStatistics | None:
    """Statistics of this process's compiled copy of the function ``key`` (internal)."""
    kernel = _KERNELS.get(key)
    return kernel.statistics() if kernel is not None else None


def _make_task(key: str, py_func: FunctionType, options: OffloadOptions,
               source: FunctionSource | None) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        return _kernel_for(key, py_func, options, source)(*args, **kwargs)

    # Named after the user's function so task errors read "task sum_sq raised ...".
    # (cloudpickle still ships ``run`` by value: the module has no such attribute.)
    run.__name__ = py_func.__name__
    run.__qualname__ = py_func.__qualname__
    run.__doc__ = py_func.__doc__
    return run


def _not_initialized(what: str) -> NotInitializedError:
    return NotInitializedError(
        f"Attempted to call {what} (strategy='actor') before iris.init(); call iris.init() "
        "or iris.init(address=...) first, or use strategy='jit' to run it in this process")


class ActorFunction(OffloadFunction):
    """A function compiled and run on the worker processes of the running cluster.

    Made by ``@iris.offload(strategy="actor")``. Each worker compiles the function on its
    first call there (or loads it from numba's disk cache) and keeps it for later calls.
    Exceptions raised by the function reach the caller as ``iris.TaskError`` that is also an
    instance of the original class.

    Example:
        >>> @iris.offload(strategy="actor")
        ... def sum_sq(a):
        ...     s = 0.0
        ...     for v in a:
        ...         s += v * v
        ...     return s
        >>> iris.init(num_workers=2)                               # doctest: +SKIP
        >>> sum_sq(np.ones(1000))                                  # doctest: +SKIP
        1000.0
        >>> sum_sq.map(np.array_split(np.ones(1000), 4), reduce=sum)  # doctest: +SKIP
        1000.0
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remote_fn: Any = None
        self._lock = threading.Lock()

    def _task(self) -> Any:
        if self._remote_fn is None:
            with self._lock:
                if self._remote_fn is None:
                    try:
                        import iris

                        make_remote = iris.remote
                    except (ImportError, AttributeError):  # no cluster API at all
                        raise self._not_initialized() from None
                    self._remote_fn = make_remote(
                        _make_task(self._key, self._py_func, self._options, self._source))
        return self._remote_fn

    def _not_initialized(self) -> NotInitializedError:
        return _not_initialized(f"offloaded function {self.__qualname__!r}")

    def _submit(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return task.remote(*args, **kwargs)
        except NotInitializedError:
            raise self._not_initialized() from None

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Start the function on a worker; returns an ``iris.ObjectRef`` to its result.

        Inside a task or actor it runs on the same cluster.

        Raises:
            iris.NotInitializedError: no cluster is running (call ``iris.init()``).
        """
        return self._submit(self._task(), args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function on a worker and wait for its result.

        Raises:
            iris.NotInitializedError: no cluster is running (call ``iris.init()``).
            iris.TaskError: the function raised (also an instance of the original class).
        """
        import iris

        return iris.get(self.remote(*args, **kwargs))

    def map(self, chunks: Iterable[Any], *args: Any,
            reduce: Callable[[list[Any]], Any] | None = None, **kwargs: Any) -> Any:
        """Run ``fn(chunk, *args, **kwargs)`` for every chunk, in parallel on the workers.

        All calls are submitted before any result is awaited, so the cluster's workers
        share them.

        Args:
            chunks: the first argument of each call, e.g. ``np.array_split(a, 8)``.
            *args: further positional arguments, the same for every call.
            reduce: applied to the list of results (``sum``, ``max``...); None returns it.
            **kwargs: keyword arguments, the same for every call.

        Raises:
            iris.NotInitializedError: no cluster is running (call ``iris.init()``).
        """
        import iris

        task = self._task()
        refs = [self._submit(task, (chunk, *args), kwargs) for chunk in chunks]
        results = list(iris.get(refs)) if refs else []
        return reduce(results) if reduce is not None else results

    def statistics(self) -> OffloadStatistics:
        """State in the calling process (workers keep their own compiled copies)."""
        kernel = _KERNELS.get(self._key)
        if kernel is not None:
            return dataclasses.replace(kernel.statistics(), strategy="actor")
        return OffloadStatistics("actor", False, (), 0, 0, 0, None)

    @property
    def signatures(self) -> list[tuple[Any, ...]]:
        """Signatures compiled in this process (usually none: workers compile their own)."""
        kernel = _KERNELS.get(self._key)
        return kernel.signatures if kernel is not None else []
