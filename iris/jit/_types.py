"""Argument checking and result conversion for offloaded functions.

Internal module, not part of the public API.

Supported arguments (what numba compiles and what the tests cover):

- Python ``bool``, ``int`` (within 64 bits), ``float``;
- numpy scalars of kind bool, signed/unsigned integer, ``float32``/``float64``;
- numpy arrays (any shape and layout) with those element types;
- tuples of supported values;
- lists of numbers, which are *copied* to a numpy array for the compiled code (the
  plain-Python fallback receives the list itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "NeedsConversion",
    "SUPPORTED_TYPES",
    "check_args",
    "convert_lists",
    "make_result_converter",
    "to_python",
]

#: Human-readable list of the accepted argument types, used in error messages.
SUPPORTED_TYPES = ("bool, int, float, numpy bool_/intN/uintN/float32/float64 scalars, numpy "
                   "arrays of those dtypes, tuples of these, and lists of numbers (copied to "
                   "an array)")

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


class NeedsConversion(Exception):
    """Internal signal: an argument is a list that must become an array first."""


def _dtype_ok(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "biu" or dtype in (np.float32, np.float64)


def _check(value: object, where: str, fname: str, allow_list: bool = True) -> None:
    kind = type(value)
    if kind is float or kind is bool:
        return
    if kind is int or isinstance(value, int):
        if not _INT64_MIN <= value <= _UINT64_MAX:  # type: ignore[operator]
            raise OverflowError(f"{where} of {fname}() is the int {value!r}, which does not "
                                "fit in 64 bits; compiled code cannot take it")
        return
    if isinstance(value, float):
        return
    if isinstance(value, np.ndarray):
        if _dtype_ok(value.dtype):
            return
        raise TypeError(f"{where} of {fname}() is a numpy array of dtype {value.dtype}, "
                        f"which offloaded functions do not support; supported: "
                        f"{SUPPORTED_TYPES}")
    if isinstance(value, np.generic):
        if _dtype_ok(value.dtype):
            return
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            _check(item, f"item {i} of {where}", fname, allow_list=False)
        return
    elif isinstance(value, list) and allow_list:
        raise NeedsConversion
    raise TypeError(f"{where} of {fname}() has type {kind.__qualname__!r}, which offloaded "
                    f"functions do not support; supported: {SUPPORTED_TYPES}")


def check_args(fname: str, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None,
               names: tuple[str, ...] = ()) -> None:
    """Raise unless every argument is of a supported type.

    ``names`` are the parameter names of the positional arguments, for messages.

    Raises:
        TypeError: an argument of an unsupported type (the message names it and lists the
            supported ones).
        OverflowError: an ``int`` outside the 64-bit range.
        NeedsConversion: a list argument (the caller converts it with ``convert_lists``).
    """
    for i, value in enumerate(args):
        _check(value, _label(i, names), fname)
    for key, value in (kwargs or {}).items():
        _check(value, f"argument {key!r}", fname)


def _list_to_array(fname: str, where: str, value: list[Any]) -> np.ndarray[Any, Any]:
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged nesting
        raise TypeError(f"{where} of {fname}() is a list numpy cannot make an array of "
                        f"({exc}); supported: {SUPPORTED_TYPES}") from None
    if value and not _dtype_ok(array.dtype):
        raise TypeError(f"{where} of {fname}() is a list of {array.dtype} values, not numbers; "
                        f"supported: {SUPPORTED_TYPES}")
    if not value:
        array = np.zeros(0)
    return array


def _label(i: int, names: tuple[str, ...]) -> str:
    return f"argument {i + 1} ({names[i]!r})" if i < len(names) else f"argument {i + 1}"


def convert_lists(fname: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                  names: tuple[str, ...] = ()) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Copy list arguments to numpy arrays (for the compiled path only)."""
    new_args = tuple(_list_to_array(fname, _label(i, names), a) if isinstance(a, list) else a
                     for i, a in enumerate(args))
    new_kwargs = {k: _list_to_array(fname, f"argument {k!r}", v) if isinstance(v, list) else v
                  for k, v in kwargs.items()}
    return new_args, new_kwargs


def to_python(value: Any) -> Any:
    """Numpy scalars -> the equivalent Python value, as numba returns them (recursive)."""
    if isinstance(value, np.generic):
        return value.item()
    if type(value) is tuple:
        return tuple(to_python(v) for v in value)
    return value


_NAMED = {"float": np.dtype(np.float64), "int": np.dtype(np.int64), "bool": np.dtype(np.bool_)}
_PY_TYPES: dict[Any, str] = {float: "float", int: "int", bool: "bool"}


def make_result_converter(return_type: object) -> Any:
    """The function applied to each result for ``return_type`` (None: no conversion).

    ``"float"``/``"int"``/``"bool"`` (or the Python types) give Python scalars; a numpy
    dtype (``np.float32``, ``"float32"``, ...) gives numpy scalars of that dtype. Arrays are
    cast with ``astype``; tuples are converted item by item.

    Raises:
        ValueError: ``return_type`` is not one of those.
    """
    if return_type is None:
        return None
    name = _PY_TYPES.get(return_type, return_type)
    if isinstance(name, str) and name in _NAMED:
        dtype = _NAMED[name]
        scalar: Any = {"float": float, "int": int, "bool": bool}[name]
    else:
        try:
            dtype = np.dtype(return_type)  # type: ignore[call-overload]
        except TypeError:
            raise ValueError(
                f"return_type={return_type!r} is not supported; use 'float', 'int', 'bool' or a "
                "numpy dtype such as np.float32") from None
        if not _dtype_ok(dtype) and dtype.kind != "c":
            raise ValueError(f"return_type={return_type!r} is not a numeric numpy dtype")
        scalar = dtype.type

    def convert(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return value.astype(dtype, copy=False)
        if isinstance(value, tuple):
            return tuple(convert(v) for v in value)
        return scalar(value)

    return convert
