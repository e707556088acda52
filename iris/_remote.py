"""``@iris.remote``: turning a function into a remote function with ``.remote()``."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from iris._api import _client_for_call
from iris._refs import ObjectRef

__all__ = ["RemoteFunction", "remote"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = ("num_returns", "max_retries", "num_cpus")


def _check_options(opts: dict[str, Any]) -> dict[str, Any]:
    check_known(opts, _OPTIONS, "option")
    check_int(opts, "num_returns", 1, 1)
    check_int(opts, "max_retries", 3, 0)
    check_num_cpus(opts.get("num_cpus", 1))
    return opts


def check_known(opts: dict[str, Any], valid: tuple[str, ...], what: str) -> None:
    """Raises TypeError naming the options of ``opts`` not in ``valid`` (internal)."""
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise TypeError(f"unknown {what}(s) {', '.join(map(repr, unknown))} "
                        f"(valid options: {', '.join(valid)})")


def check_int(opts: dict[str, Any], key: str, default: int, least: int) -> None:
    """Raises ValueError unless ``opts[key]`` (if given) is an int >= ``least`` (internal)."""
    v = opts.get(key, default)
    if type(v) is not int or v < least:
        raise ValueError(f"{key} must be an int >= {least}, got {v!r}")


def check_num_cpus(c: Any) -> None:
    """Raises ValueError unless ``c`` is a number >= 0 (internal)."""
    if not isinstance(c, (int, float)) or isinstance(c, bool) or c < 0:
        raise ValueError(f"num_cpus must be a number >= 0, got {c!r}")


class RemoteFunction:
    """A function that runs as a task on the cluster. Made by :func:`remote`.

    Call ``f.remote(*args, **kwargs)`` to submit a task; it returns an ObjectRef (a list of
    them with ``num_returns > 1``) at once. ``f.options(...)`` returns a copy with other
    options for one call site.
    """

    def __init__(self, fn: Callable[..., Any], **options: Any) -> None:
        if not callable(fn):
            raise TypeError(f"@iris.remote needs a function, got {type(fn).__name__}")
        self._fn = fn
        self._options = _check_options(dict(options))
        self._info: Any = None
        self._lock = threading.Lock()
        self.__name__ = getattr(fn, "__name__", "remote_function")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"remote function {self.__name__}() cannot be called directly; use "
                        f"{self.__name__}.remote(...) to run it as a task")

    def __repr__(self) -> str:
        return f"<iris.RemoteFunction {self.__qualname__}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Travels as its function and options (a task may call other remote functions).
        return (_rebuild, (self._fn, self._options))

    def options(self, **options: Any) -> RemoteFunction:
        """A copy of this remote function with some options changed.

        Example:
            >>> pair = divmod_task.options(num_returns=2).remote(7, 2)  # doctest: +SKIP
        """
        clone = RemoteFunction.__new__(RemoteFunction)
        clone.__dict__.update(self.__dict__)
        clone._options = _check_options({**self._options, **options})
        clone._lock = threading.Lock()
        return clone

    def _function_info(self) -> Any:
        if self._info is None:
            from iris._client import FunctionInfo
            from iris._serialization import dumps_function

            with self._lock:
                if self._info is None:
                    blob = dumps_function(self._fn)
                    func_id = int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(),
                                             "big")
                    self._info = FunctionInfo(func_id, blob, self.__qualname__)
        return self._info

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Submit one task; returns its ObjectRef (or a list, with ``num_returns > 1``)."""
        client = _client_for_call(self.__name__)
        info = self._info or self._function_info()
        opts = self._options
        n = opts.get("num_returns", 1)
        refs: list[ObjectRef] = client.submit(info, args, kwargs, n,
                                              opts.get("max_retries", 3))
        return refs[0] if n == 1 else refs


    def map(self, *iterables: Iterable[Any]) -> list[Any]:
        """Submit one task per item: ``f.map(xs)`` is ``[f.remote(x) for x in xs]`` and
        ``f.map(xs, ys)`` is ``[f.remote(x, y) for x, y in zip(xs, ys)]``, in one call
        (tasks go out in batches while the rest are made).

        Returns the refs in item order (a list of refs per item with ``num_returns > 1``).

        Raises:
            ValueError: the iterables are not all of the same length.
            TypeError: an item's arguments cannot be serialized (its batch of 256 is not
                submitted; the batches before it were).

        Example:
            >>> refs = square.map(range(1000))      # doctest: +SKIP
            >>> iris.get(refs)[:3]                   # doctest: +SKIP
            [0, 1, 4]
        """
        if not iterables:
            raise TypeError(f"{self.__name__}.map() needs at least one iterable of arguments")
        try:
            calls = list(zip(*iterables, strict=True))
        except ValueError:
            raise ValueError(f"{self.__name__}.map(): the iterables are not all of the same "
                             f"length") from None
        client = _client_for_call(f"{self.__name__}.map()")
        info = self._info or self._function_info()
        opts = self._options
        n = opts.get("num_returns", 1)
        out = client.submit_many(info, calls, n, opts.get("max_retries", 3))
        return [refs[0] for refs in out] if n == 1 else out


def _rebuild(fn: Callable[..., Any], options: dict[str, Any]) -> RemoteFunction:
    return RemoteFunction(fn, **options)


@overload
def remote(fn: F) -> RemoteFunction: ...
@overload
def remote(*, num_returns: int = 1, max_retries: int = 3,
           num_cpus: float = 1) -> Callable[[F], RemoteFunction]: ...


def remote(fn: Any = None, **options: Any) -> Any:
    """Make a function a remote function: ``@iris.remote`` or ``@iris.remote(num_returns=2)``.

    On a class, it makes an actor class (:class:`iris.ActorClass`): ``Cls.remote(...)``
    creates an instance in a worker and returns its handle.

    Args:
        fn: the function or class (when used bare).
        num_returns: how many ObjectRefs ``.remote()`` returns (the function returns a
            sequence of that length). Default 1.
        max_retries: how many times a task is re-run when its worker process dies. Default 3.
        num_cpus: CPUs the task needs (each worker process is one CPU). Default 1.
        max_restarts, name: for a class: how often its actor is re-created after its
            worker died (default 0), and a name for :func:`iris.get_actor`.

    Example:
        >>> @iris.remote
        ... def square(x):
        ...     return x * x
        >>> iris.get(square.remote(3))   # doctest: +SKIP
        9
    """
    if fn is not None and not options:
        if isinstance(fn, type):
            from iris._actors import ActorClass

            return ActorClass(fn)
        return RemoteFunction(fn)
    if fn is not None:
        raise TypeError("use @iris.remote or @iris.remote(option=...), not both")

    def decorate(f: Any) -> Any:
        if isinstance(f, type):
            from iris._actors import ActorClass

            return ActorClass(f, **options)
        return RemoteFunction(f, **options)

    if not any(k in options for k in ("max_restarts", "name", "lifetime")):
        _check_options(dict(options))  # function options: checked now, not at decoration
    return decorate
