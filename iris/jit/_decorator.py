"""The ``@iris.offload`` decorator.

Internal module, not part of the public API; ``iris.offload`` and ``iris.jit.offload`` are
this function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

from iris.jit._actor import ActorFunction
from iris.jit._base import OffloadFunction
from iris.jit._jitfunc import JitFunction
from iris.jit._options import OffloadOptions

__all__ = ["offload"]


@overload
def offload(fn: Callable[..., Any], /) -> OffloadFunction: ...


@overload
def offload(fn: None = None, /, *, strategy: str = "jit", return_type: Any = None,
            parallel: bool = False, cache: bool = True,
            fastmath: bool = False) -> Callable[[Callable[..., Any]], OffloadFunction]: ...


def offload(fn: Callable[..., Any] | None = None, /, *, strategy: str = "jit",
            return_type: Any = None, parallel: bool = False, cache: bool = True,
            fastmath: bool = False) -> Any:
    """Compile a numeric function with numba; run it here or on the cluster's workers.

    Usable bare (``@iris.offload``) or with options. Nothing is compiled (and numba is not
    imported) until the first call.

    Args:
        fn: the function, when used bare.
        strategy: ``"jit"`` compiles and runs in the calling process; ``"actor"`` runs on
            the worker processes of the cluster started by ``iris.init()`` and adds
            ``.remote()`` and parallel ``.map()``.
        return_type: convert results to ``"float"``, ``"int"``, ``"bool"`` or a numpy dtype;
            None keeps numba's result (Python scalars, numpy arrays).
        parallel: compile with ``numba.njit(parallel=True)``; write loops with
            ``iris.jit.prange``.
        cache: keep compiled code in numba's disk cache (``__pycache__`` beside the source,
            or ``$NUMBA_CACHE_DIR``) for later processes and workers.
        fastmath: allow float reassociation (faster reductions, results may differ slightly).

    Returns:
        A ``JitFunction`` or ``ActorFunction`` (or a decorator making one).

    Raises:
        ValueError: unknown ``strategy`` or unsupported ``return_type``.
        TypeError: ``fn`` is not a Python function, or an option has the wrong type.

    Example:
        >>> import iris
        >>> @iris.offload(return_type="float")
        ... def vector_magnitude(x, y, z):
        ...     return (x * x + y * y + z * z) ** 0.5
        >>> vector_magnitude(1.0, 2.0, 3.0)
        3.7416573867739413
    """
    options = OffloadOptions(strategy=strategy, return_type=return_type, parallel=parallel,
                             cache=cache, fastmath=fastmath)
    klass: type[OffloadFunction] = ActorFunction if strategy == "actor" else JitFunction

    def decorate(func: Callable[..., Any]) -> OffloadFunction:
        if isinstance(func, OffloadFunction):
            func = func.py_func
        return klass(func, options)  # type: ignore[arg-type]

    return decorate(fn) if fn is not None else decorate
