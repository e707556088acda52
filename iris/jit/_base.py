"""What every offloaded function has in common: the wrapper base class and its statistics.

Internal module, not part of the public API; ``iris.jit`` re-exports the two classes.
"""

from __future__ import annotations

import functools
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FunctionType
from typing import Any

from iris.jit._options import OffloadOptions
from iris.jit._rewrite import FunctionSource, get_source
from iris.jit._types import make_result_converter

__all__ = ["OffloadFunction", "OffloadStatistics"]


@dataclass(frozen=True, slots=True)
class OffloadStatistics:
    """A snapshot of an offloaded function's state in this process.

    Attributes:
        strategy: ``"jit"`` or ``"actor"``.
        compiled: whether at least one specialisation is compiled here.
        signatures: the compiled argument types, as strings (``"(float64, int64)"``).
        cache_hits: specialisations loaded from numba's disk cache.
        cache_misses: specialisations compiled because the cache had none.
        fallback_calls: calls that ran as plain Python.
        fallback_reason: numba's most recent compile error, or None.
    """

    strategy: str
    compiled: bool
    signatures: tuple[str, ...]
    cache_hits: int
    cache_misses: int
    fallback_calls: int
    fallback_reason: str | None


class OffloadFunction:
    """Base class of the objects ``@iris.offload`` returns.

    Subclasses: ``JitFunction`` (``strategy="jit"``) and ``ActorFunction``
    (``strategy="actor"``). The original function stays reachable as ``__wrapped__``.
    """

    # Copied from the decorated function by functools.update_wrapper.
    __name__: str
    __qualname__: str

    def __init__(self, py_func: FunctionType, options: OffloadOptions,
                 source: FunctionSource | None = None, key: str | None = None) -> None:
        if not isinstance(py_func, FunctionType):
            raise TypeError(f"@iris.offload takes a Python function, not "
                            f"{type(py_func).__qualname__!r}")
        functools.update_wrapper(self, py_func)
        self._py_func = py_func
        self._options = options
        self._source = source if source is not None else get_source(py_func)
        self._convert = make_result_converter(options.return_type)
        # Names this function across processes: workers cache compiled kernels by it.
        self._key = key or uuid.uuid4().hex

    # -- common surface -----------------------------------------------------------------

    @property
    def py_func(self) -> FunctionType:
        """The original Python function."""
        return self._py_func

    @property
    def options(self) -> OffloadOptions:
        """The options given to ``@iris.offload``."""
        return self._options

    @property
    def strategy(self) -> str:
        """``"jit"`` or ``"actor"``."""
        return self._options.strategy

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def map(self, chunks: Iterable[Any], *args: Any,
            reduce: Callable[[list[Any]], Any] | None = None, **kwargs: Any) -> Any:
        """Call the function on every chunk: ``[fn(chunk, *args, **kwargs) ...]``.

        This base version runs the calls one after another in this process; the actor
        strategy runs them in parallel on the cluster.

        Args:
            chunks: the first argument of each call (for example ``np.array_split(a, 8)``).
            *args: further positional arguments, the same for every call.
            reduce: applied to the list of results (``sum``, ``max``...); None returns it.
            **kwargs: keyword arguments, the same for every call.

        Example:
            >>> f.map(np.array_split(a, 4), reduce=sum)  # doctest: +SKIP
        """
        results = [self(chunk, *args, **kwargs) for chunk in chunks]
        return reduce(results) if reduce is not None else results

    def statistics(self) -> OffloadStatistics:
        """State of this function in the calling process."""
        raise NotImplementedError

    def _numba_target(self) -> Any:
        """What numba code calling this function should call (None: not callable there)."""
        return None

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self._py_func.__qualname__} "
                f"strategy={self.strategy!r}>")

    def __reduce__(self) -> Any:
        # A module-level offloaded function pickles by reference, like a function; any
        # other one carries its function (cloudpickle needed), options, source and key.
        module = sys.modules.get(self._py_func.__module__)
        if module is not None and getattr(module, self.__qualname__, None) is self:
            return self.__qualname__
        return (type(self), (self._py_func, self._options, self._source, self._key))
