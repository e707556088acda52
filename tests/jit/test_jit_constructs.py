"""Every construct of the README's "Current JIT support" compiles and matches plain Python.

Kernels live at module scope so each specialisation compiles once per test process.
Each case checks ``fn.compiled`` (numba really compiled it, no silent fallback) and
compares with a plain-Python reference: the undecorated function where it is valid Python,
an explicit loop where the kernel uses an intrinsic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from _jit_testing import ARRAY_DTYPES, assert_same, sample, tolerance

import iris
from iris.jit import (
    all_while,
    any_while,
    break_if,
    break_on_nan,
    break_unless,
    break_when,
    continue_if,
    continue_on_nan,
    continue_unless,
    continue_when,
    if_else,
    sum_while,
)

# -- scalar kernels ---------------------------------------------------------------------


@iris.offload
def arith(x, y):
    return x * y + x - y / 4 + x % 3 + (-x) + (+y) - 2 * x


@iris.offload
def power(x, y):
    return abs(x) ** 0.5 + y ** 2 + 2 ** 3 + abs(x) ** -1.0 if x != 0 else y ** 2


@iris.offload
def compare(x, y):
    return (x < y, x <= y, x > y, x >= y, x == y, x != y)


@iris.offload
def chained(x, y, z):
    return (x < y < z, x <= y > z, x < y <= z < 100)


@iris.offload
def logic(x, y):
    return ((x > 0 and y > 0) or not (x < y), not x, True and x > 1, False or y < 2)


@iris.offload
def ternary(x, y):
    return x - y if x > y else y - x


@iris.offload(return_type="float")
def with_if_else(x, y):
    return if_else(x > y, x - y, if_else(x == y, 0.5, y - x))


@iris.offload
def constants(x):
    return x * pi + e


@iris.offload
def math_bare(x):
    return (sin(x) + cos(x) + tan(x) + sinh(x) + cosh(x) + tanh(x) + exp(x)
            + log(abs(x) + 1) + sqrt(abs(x)) + pow(abs(x), 1.5) + abs(x))


@iris.offload
def math_module(x):
    return (math.sin(x) + math.cos(x) + math.tan(x) + math.sinh(x) + math.cosh(x)
            + math.tanh(x) + math.exp(x) + math.log(abs(x) + 1) + math.sqrt(abs(x))
            + math.pow(abs(x), 2.0) + math.fabs(x) + math.pi - math.e)


@iris.offload
def python_mod_round(x, y):
    return (x % y, round(x), round(x * 1.0, 1), min(x, y), max(x, y))


def _ref_if_else(x: Any, y: Any) -> float:
    return float(x - y if x > y else (0.5 if x == y else y - x))


def _ref_constants(x: Any) -> Any:
    return x * math.pi + math.e


def _ref_math_bare(x: Any) -> Any:
    m = math
    return (m.sin(x) + m.cos(x) + m.tan(x) + m.sinh(x) + m.cosh(x) + m.tanh(x) + m.exp(x)
            + m.log(abs(x) + 1) + m.sqrt(abs(x)) + pow(abs(x), 1.5) + abs(x))


SCALAR_CASES: list[tuple[str, Any, Callable[..., Any] | None, list[tuple[Any, ...]]]] = [
    ("arith", arith, None, [(3.5, -1.25), (7, 2), (-7, 3), (np.float32(2.5), np.float32(4.0))]),
    ("power", power, None, [(2.25, 3.0), (9, 2), (0, 5), (np.float32(4.0), np.float32(1.5))]),
    ("compare", compare, None, [(1.5, 2.5), (3, 3), (True, False), (np.int32(4), np.int32(2))]),
    ("chained", chained, None, [(1.0, 2.0, 3.0), (1, 5, 2), (3, 2, 1), (1.0, 1.0, 200.0)]),
    ("logic", logic, None, [(1.5, -2.0), (3, 1), (True, True), (0.0, 0.0)]),
    ("ternary", ternary, None, [(1.5, 2.5), (7, 3), (np.float32(1.0), np.float32(0.5))]),
    ("if_else", with_if_else, _ref_if_else, [(1.5, 2.5), (7, 3), (4, 4), (True, False)]),
    ("constants", constants, _ref_constants, [(2.0,), (3,), (np.float32(0.5),)]),
    ("math_bare", math_bare, _ref_math_bare, [(0.3,), (-1.2,), (2,), (np.float32(0.7),)]),
    ("math_module", math_module, None, [(0.3,), (-1.2,), (2,), (np.float32(0.7),)]),
    ("mod_round", python_mod_round, None,
     [(-7.5, 2.0), (7.5, -2.0), (2.5, 3.0), (-0.5, 1.5), (-7, 3), (7, -3), (3.5, 1.25)]),
]


@pytest.mark.parametrize(
    ("kernel", "reference", "args"),
    [pytest.param(k, r, a, id=f"{name}-{'-'.join(type(v).__name__ for v in a)}-{i}")
     for name, k, r, cases in SCALAR_CASES for i, a in enumerate(cases)])
def test_scalar_construct_matches_python(kernel: Any, reference: Any,
                                         args: tuple[Any, ...]) -> None:
    want = (reference or kernel.py_func)(*args)
    got = kernel(*args)
    assert kernel.compiled, kernel.fallback_reason
    assert kernel.fallback_reason is None
    # numpy computes float32 scalars in float32, numba partly in float64.
    assert_same(got, want, 1e-5 if any(type(a) is np.float32 for a in args) else 1e-12)


def test_python_semantics_for_mod_round_and_or() -> None:
    # The original runtime followed C here; iris follows Python.
    assert python_mod_round(-7.5, 2.0)[0] == 0.5
    assert python_mod_round(-7, 3)[0] == 2
    assert python_mod_round(2.5, 1.0)[1] == 2  # banker's rounding
    assert python_mod_round(3.5, 1.0)[1] == 4
    assert logic(0.0, 0.0) == (True, True, False, True)


# -- array and range kernels -----------------------------------------------------------


@iris.offload
def gen_sum(a):
    return sum(v * v for v in a)


@iris.offload
def gen_sum_pred(a):
    return sum(v for v in a if v > 2)


@iris.offload
def gen_any_all(a):
    return (any(v > 5 for v in a), all(v >= 0 for v in a), any(v > 100 for v in a),
            all(v < 3 for v in a if v > 1))


@iris.offload
def gen_start(a):
    return sum((v for v in a), 10)


@iris.offload
def gen_ternary(a):
    return sum(v * 2 if v > 3 else v + 1 for v in a)


@iris.offload
def gen_zip_enumerate(a, b):
    return (sum(x * y for x, y in zip(a, b)), sum(i * v for i, v in enumerate(a)))


@iris.offload
def break_family(a):
    return (sum(break_if(v > 6, v) for v in a), sum(break_when(v == 9, v * 2) for v in a),
            sum(break_unless(v < 7, v) for v in a), any(break_if(v > 3, v == 4) for v in a),
            all(break_if(v > 6, v < 7) for v in a))


@iris.offload
def continue_family(a):
    return (sum(continue_if(v > 6, v) for v in a), sum(continue_when(v == 9, v) for v in a),
            sum(continue_unless(v < 7, v) for v in a),
            sum(continue_if(v > 4, v) if v != 3 else 100 for v in a),
            sum(1 + continue_if(v > 4, v) for v in a if v > 0))


@iris.offload
def plain_loop(a):
    out = np.empty(a.shape[0])
    s = 0.0
    for i in range(len(a)):
        out[i] = a[i] * 2 + 1
        s += out[i]
    return s, out


def _ref_break_family(a: Any) -> tuple[Any, ...]:
    def summed(stop: Callable[[Any], bool], val: Callable[[Any], Any]) -> Any:
        acc = 0
        for v in a:
            if stop(v):
                break
            acc = acc + val(v)
        return acc

    def any_until(stop: Callable[[Any], bool], cond: Callable[[Any], bool]) -> bool:
        for v in a:
            if stop(v):
                return False
            if cond(v):
                return True
        return False

    def all_until(stop: Callable[[Any], bool], cond: Callable[[Any], bool]) -> bool:
        for v in a:
            if stop(v):
                return True
            if not cond(v):
                return False
        return True

    return (summed(lambda v: v > 6, lambda v: v), summed(lambda v: v == 9, lambda v: v * 2),
            summed(lambda v: not v < 7, lambda v: v),
            any_until(lambda v: v > 3, lambda v: v == 4),
            all_until(lambda v: v > 6, lambda v: v < 7))


def _ref_continue_family(a: Any) -> tuple[Any, ...]:
    return (sum(v for v in a if not v > 6), sum(v for v in a if not v == 9),
            sum(v for v in a if v < 7),
            sum((100 if v == 3 else v) for v in a if v == 3 or not v > 4),
            sum(1 + v for v in a if v > 0 and not v > 4))


ARRAY_CASES: list[tuple[str, Any, Callable[..., Any] | None]] = [
    ("gen_sum", gen_sum, None),
    ("gen_sum_pred", gen_sum_pred, None),
    ("gen_any_all", gen_any_all, None),
    ("gen_start", gen_start, None),
    ("gen_ternary", gen_ternary, None),
    ("break_family", break_family, _ref_break_family),
    ("continue_family", continue_family, _ref_continue_family),
    ("plain_loop", plain_loop, None),
]


@pytest.mark.parametrize("dtype", ARRAY_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("kernel", "reference"), [pytest.param(k, r, id=n)
                                                   for n, k, r in ARRAY_CASES])
def test_array_construct_matches_python(kernel: Any, reference: Any, dtype: Any) -> None:
    a = sample(dtype)
    want = (reference or kernel.py_func)(a)
    got = kernel(a)
    assert kernel.compiled, kernel.fallback_reason
    assert_same(got, want, tolerance(a))


@pytest.mark.parametrize("dtype", ARRAY_DTYPES, ids=lambda d: np.dtype(d).name)
def test_two_buffers_zip_and_enumerate(dtype: Any) -> None:
    a = sample(dtype)
    b = sample(np.float64)[::-1].copy()
    assert_same(gen_zip_enumerate(a, b), gen_zip_enumerate.py_func(a, b), tolerance(a))
    assert gen_zip_enumerate.compiled


@iris.offload
def range_reductions(n):
    return (sum(i * i for i in range(n)), sum(i for i in range(1, n, 3) if i % 2 == 0),
            any(i == 7 for i in range(n)), all(i < 100 for i in range(0, n, 2)),
            sum(i for i in range(n, 0, -2)), sum(sum(i * j for j in range(i)) for i in range(n)))


@pytest.mark.parametrize("n", [0, 1, 10, 250, np.int32(12)])
def test_range_reductions(n: Any) -> None:
    assert_same(range_reductions(n), range_reductions.py_func(n))
    assert range_reductions.compiled


@iris.offload
def while_reductions(n):
    return (sum_while(i, 0, i < n, i + 1, i * i),
            any_while(i, 1, i < n, i * 2, i == 64),
            all_while(k, n, k > 0, k - 3, k % 7 != 0),
            sum_while(i, 0, i < n, i + 1, continue_if(i % 3 == 0, break_if(i > 20, i))))


def _ref_while(n: Any) -> tuple[Any, ...]:
    s, i = 0, 0
    while i < n:
        s, i = s + i * i, i + 1
    found, i = False, 1
    while i < n:
        if i == 64:
            found = True
            break
        i *= 2
    every, k = True, n
    while k > 0:
        if k % 7 == 0:
            every = False
            break
        k -= 3
    s2, i = 0, 0
    while i < n:
        if i % 3 != 0:
            if i > 20:
                break
            s2 += i
        i += 1
    return s, found, every, s2


@pytest.mark.parametrize("n", [0, 5, 65, 100, 6])
def test_while_reductions(n: int) -> None:
    assert_same(while_reductions(n), _ref_while(n))
    assert while_reductions.compiled


@iris.offload
def nan_guards(a):
    return (sum(break_on_nan(v) for v in a), sum(continue_on_nan(v) * 2 for v in a),
            any(continue_on_nan(v) > 8 for v in a), sum(continue_on_nan(v) for v in a if v > 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_nan_guards(dtype: Any) -> None:
    a = np.array([1.0, 2.0, np.nan, 9.0, 3.0], dtype=dtype)
    assert_same(nan_guards(a), (3.0, 30.0, True, 14.0), tolerance(a))
    clean = np.array([1.0, 2.0], dtype=dtype)
    assert_same(nan_guards(clean), (3.0, 6.0, False, 2.0))
    assert nan_guards.compiled


@iris.offload
def row_sums(m):
    out = np.zeros(m.shape[0])
    for i in range(m.shape[0]):
        out[i] = sum(v for v in m[i] if v > 1)
    return out


@pytest.mark.parametrize("dtype", ARRAY_DTYPES, ids=lambda d: np.dtype(d).name)
def test_two_dimensional_arrays(dtype: Any) -> None:
    m = np.arange(12).reshape(3, 4).astype(dtype)
    assert_same(row_sums(m), row_sums.py_func(m), tolerance(m))
    assert_same(row_sums(m[:, ::2]), row_sums.py_func(m[:, ::2]), tolerance(m))  # strided
    assert row_sums.compiled


@iris.offload
def unsigned_sum(a):
    return sum(v for v in a if v % 2 == 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16])
def test_other_integer_dtypes(dtype: Any) -> None:
    a = np.arange(20, dtype=dtype)
    assert unsigned_sum(a) == 100
    assert unsigned_sum.compiled
