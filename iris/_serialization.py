"""Serialization: cloudpickle for code, pickle protocol 5 with out-of-band buffers for data.

* Plain values whose top level holds only builtin scalars go through ``pickle`` (0.4 µs for a
  small tuple); anything else through ``cloudpickle`` (2.5 µs), which also ships functions
  and classes defined in ``__main__`` or inside functions by value.
* Buffers (numpy arrays, bytes-like objects supporting PEP 574) are never copied into the
  pickle stream: they come back as a list of out-of-band buffers, sent as their own frames
  or written into shared memory.
* A remote exception travels as the pickled ``(exception, traceback text)``; if the
  exception itself cannot be pickled, a ``RuntimeError`` carrying its repr stands in.
"""

from __future__ import annotations

import io
import pickle
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = [
    "describe_unpicklable",
    "dumps",
    "dumps_arrays",
    "dumps_call",
    "dumps_error",
    "dumps_function",
    "dumps_plain",
    "loads",
    "loads_error",
    "nbytes",
]

_cp: ModuleType | None = None


def _cloudpickle() -> ModuleType:
    """cloudpickle, imported on first use (not on every call): a process that only sends
    plain values never needs it."""
    global _cp
    if _cp is None:
        import cloudpickle

        _cp = cloudpickle
    return _cp


_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})


def _is_leaf(x: Any) -> bool:
    t = type(x)
    if t in _PLAIN:
        return True
    np = sys.modules.get("numpy")  # never imported here: only seen if the user has it
    return np is not None and t is np.ndarray and not x.dtype.hasobject


def dumps_plain(obj: Any) -> tuple[bytes, list[pickle.PickleBuffer]] | None:
    """Serialize with plain pickle when ``obj`` needs nothing more; else None (fast path).

    Plain means builtin scalars and numpy arrays, inside at most two levels of tuples,
    lists and dicts (which covers a task's ``(args, kwargs)``): such a value holds no code,
    no ``__main__`` classes and no ObjectRefs.
    """
    kind = _scan(obj, 2)
    if kind < 0:
        return None
    buffers: list[pickle.PickleBuffer] = []
    if kind:
        f = io.BytesIO()
        _ArrayPickler(f, 5, buffer_callback=buffers.append).dump(obj)
        return f.getvalue(), buffers
    return pickle.dumps(obj, protocol=5, buffer_callback=buffers.append), buffers


def dumps_call(args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> tuple[bytes, list[Any]] | None:
    """``dumps_plain((args, kwargs))`` of a call, by the quickest way that applies:
    positional builtin scalars are pickled at once (the scan of :func:`dumps_plain` costs
    seven times the pickling of ``((5,), {})``), numpy arrays by :func:`dumps_arrays`."""
    if not kwargs:
        for a in args:
            if type(a) not in _PLAIN:
                break
        else:
            return pickle.dumps((args, kwargs), protocol=5), []
        made = dumps_arrays(args)
        if made is not None:
            return made
    return dumps_plain((args, kwargs))


_ARRAY_HEADERS: dict[Any, bytes] = {}


def dumps_arrays(args: tuple[Any, ...]) -> tuple[bytes, list[memoryview]] | None:
    """``dumps_plain((args, {}))`` for arguments that are all numeric C-contiguous numpy
    arrays, else None. The pickle stream of such a call depends only on the arrays'
    dtypes and shapes (their bytes travel out of band), so it is made once per layout."""
    np = sys.modules.get("numpy")
    if np is None or not args:
        return None
    layout: Any
    if len(args) == 1:  # the commonest: one array, without a list of keys
        layout = _array_key(args[0], np)
    else:
        if len({id(a) for a in args}) != len(args):
            return None  # one array twice: its stream refers back to one buffer (memo)
        keys = [_array_key(a, np) for a in args]
        layout = None if None in keys else (len(args), *keys)
    if layout is None:
        return None
    header = _ARRAY_HEADERS.get(layout)
    if header is None:
        made = dumps_plain((args, {}))
        assert made is not None
        header = made[0]
        if len(_ARRAY_HEADERS) >= 256:
            _ARRAY_HEADERS.clear()
        _ARRAY_HEADERS[layout] = header
    # The buffers as flat byte views: their size is at hand, and they copy as they are.
    return header, [memoryview(a).cast("B") for a in args]


def _array_key(a: Any, np: ModuleType) -> tuple[Any, ...] | None:
    """What a call's pickle stream depends on for array ``a`` (dtype and shape), or None
    when it is not a non-empty numeric C-contiguous array (an empty array's buffer cannot
    be cast to bytes)."""
    if type(a) is not np.ndarray or not _plain_array(a) or not a.size:
        return None
    return (a.dtype, a.shape)


def _plain_array(a: Any) -> bool:
    """Whether an array is numeric and C-contiguous: described by dtype text and shape."""
    return a.dtype.kind in "biufc" and bool(a.flags.c_contiguous)


def _reduce_array(a: Any) -> Any:
    """A numeric C-contiguous array as (its buffer, out of band; dtype text; shape): a third
    of the time numpy's own reduction takes (which pickles a dtype object and looks up
    its reconstructor each time); anything else as numpy reduces it."""
    if _plain_array(a):
        return _rebuild_array, (pickle.PickleBuffer(a), a.dtype.str, a.shape)
    return a.__reduce_ex__(5)


def _rebuild_array(buf: Any, dtype: str, shape: tuple[int, ...]) -> Any:
    """Inverse of :func:`_reduce_array` (zero copy: the array views ``buf``)."""
    return numpy_module().frombuffer(buf, dtype).reshape(shape)


def numpy_module() -> ModuleType:
    """numpy, imported on first use (iris starts without it): a dictionary look-up once
    it is loaded, not an import statement on every call of a hot path."""
    np = sys.modules.get("numpy")
    if np is None:
        import numpy

        return numpy
    return np


class _ArrayPickler(pickle.Pickler):
    """Plain pickle, with the fast reduction of numpy arrays above."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is sys.modules["numpy"].ndarray:
            return _reduce_array(obj)
        return NotImplemented


def _scan(obj: Any, depth: int) -> int:
    """-1 if ``obj`` is not plain (see :func:`dumps_plain`), else 1 if it holds a numpy
    array, else 0."""
    t = type(obj)
    if t in _PLAIN:
        return 0
    if t is tuple or t is list:
        items: Any = obj
    elif t is dict:
        if not all(type(k) in _PLAIN for k in obj):
            return -1
        items = obj.values()
    else:
        return 1 if _is_leaf(obj) else -1
    if depth == 0:
        return -1
    found = 0
    for x in items:
        if type(x) in _PLAIN:
            continue
        r = _scan(x, depth - 1)
        if r < 0:
            return -1
        found |= r
    return found


# The arguments of a call without any: ``((), {})`` pickled (clients send these bytes,
# workers recognize them without unpickling).
NO_ARGS = pickle.dumps(((), {}), protocol=5)


def dumps(obj: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Serialize ``obj``; returns the pickle stream and its out-of-band buffers.

    Raises:
        TypeError: ``obj`` (or something inside it) cannot be serialized.
    """
    plain = dumps_plain(obj)
    if plain is not None:
        return plain
    buffers: list[pickle.PickleBuffer] = []
    try:
        data = _cloudpickle().dumps(obj, protocol=5, buffer_callback=buffers.append)
    except Exception as exc:  # pickling raises many types: TypeError, PicklingError, ...
        raise TypeError(f"cannot serialize {type(obj).__name__} value: {exc}") from exc
    return data, buffers


def loads(data: Any, buffers: Sequence[Any] = ()) -> Any:
    """Inverse of :func:`dumps`; buffers may be memoryviews of shared memory (zero copy)."""
    return pickle.loads(data, buffers=buffers)


def nbytes(buffers: Sequence[Any]) -> int:
    """Total size in bytes of out-of-band buffers."""
    total = 0
    for b in buffers:
        total += b.nbytes if type(b) is memoryview else memoryview(b).nbytes
    return total


def dumps_function(fn: Any) -> bytes:
    """Cloudpickle a function (by value where it cannot be imported by name)."""
    try:
        return _cloudpickle().dumps(fn, protocol=5)
    except Exception as exc:
        name = getattr(fn, "__qualname__", repr(fn))
        raise TypeError(f"remote function {name} cannot be serialized: {exc}") from exc


def describe_unpicklable(args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """Name the first argument that cannot be serialized, for a clear TypeError."""
    for i, a in enumerate(args):
        try:
            _cloudpickle().dumps(a, protocol=5, buffer_callback=lambda b: None)
        except Exception as exc:
            return f"argument {i} ({type(a).__name__} {_short_repr(a)}) cannot be serialized: {exc}"
    for k, a in kwargs.items():
        try:
            _cloudpickle().dumps(a, protocol=5, buffer_callback=lambda b: None)
        except Exception as exc:
            return (f"argument {k}= ({type(a).__name__} {_short_repr(a)}) cannot be "
                    f"serialized: {exc}")
    return "the arguments cannot be serialized"


def _short_repr(obj: Any) -> str:
    try:
        r = repr(obj)
    except Exception:
        r = object.__repr__(obj)
    return r if len(r) <= 60 else r[:57] + "..."


def dumps_error(exc: BaseException, skip_frames: int = 0) -> bytes:
    """Pickle an exception raised by user code with its formatted traceback.

    ``skip_frames`` drops that many outer frames (iris's own, around the user's call).
    """
    tb_obj = exc.__traceback__
    for _ in range(skip_frames):
        if tb_obj is not None and tb_obj.tb_next is not None:
            tb_obj = tb_obj.tb_next
    tb = "".join(traceback.format_exception(type(exc), exc, tb_obj))
    try:
        blob = _cloudpickle().dumps((exc, tb), protocol=5)
        pickle.loads(blob)  # exceptions whose __init__ takes other arguments fail here
        return blob
    except Exception:
        stand_in = RuntimeError(f"{type(exc).__qualname__}: {exc} (the original exception "
                                f"could not be sent back as it is)")
        return pickle.dumps((stand_in, tb), protocol=5)


def loads_error(data: Any) -> tuple[BaseException | None, str]:
    """Inverse of :func:`dumps_error`; an exception that fails to unpickle becomes None."""
    try:
        exc, tb = pickle.loads(data)
    except Exception as err:
        return None, f"<the remote exception could not be unpickled here: {err}>"
    return exc, tb
