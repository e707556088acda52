"""Error paths of @iris.offload: bad options, bad arguments, raising kernels, misused intrinsics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import iris
import iris.jit
from iris.jit import break_if, continue_on_nan, if_else, sum_while


@iris.offload
def total(a):
    return sum(v for v in a)


@iris.offload
def checked_sqrt(x):
    if x < 0:
        raise ValueError("negative input")
    return x ** 0.5


@iris.offload
def int_div(a, b):
    return a // b


@pytest.mark.parametrize(("arg", "named"), [
    ("abc", "'str'"),
    ({"a": 1}, "'dict'"),
    (None, "'NoneType'"),
    (1 + 2j, "'complex'"),
    (object(), "'object'"),
    (np.array(["a"]), "dtype <U1"),
    (np.array([1.0], dtype=np.float16), "dtype float16"),
    (np.array([1 + 1j]), "dtype complex128"),
    (np.array([object()]), "dtype object"),
    ((1.0, "x"), "'str'"),
    (["a", "b"], "list of <U1"),
    ([[1.0], [2.0, 3.0]], "list numpy cannot make an array of"),
])
def test_unsupported_argument_type_is_a_type_error(arg: Any, named: str) -> None:
    with pytest.raises(TypeError) as info:
        total(arg)
    message = str(info.value)
    assert "argument 1 ('a') of total()" in message and named in message
    assert "supported: bool, int, float" in message


def test_unsupported_type_after_compiling_other_types() -> None:
    assert total(np.arange(3.0)) == 3.0
    with pytest.raises(TypeError, match="'str'"):
        total("abc")


def test_keyword_argument_of_unsupported_type() -> None:
    @iris.offload
    def kw(x, y=1.0):
        return x + y

    with pytest.raises(TypeError, match="argument 2 \\('y'\\) of kw\\(\\)"):
        kw(1.0, y="2")


def test_int_too_large_for_64_bits() -> None:
    with pytest.raises(OverflowError, match="does not fit in 64 bits"):
        int_div(2**70, 3)


def test_exception_in_kernel_reaches_caller_with_message() -> None:
    assert checked_sqrt(4.0) == 2.0
    with pytest.raises(ValueError, match="negative input"):
        checked_sqrt(-1.0)
    assert checked_sqrt.compiled


def test_division_by_zero_raises_like_python() -> None:
    assert int_div(7, 2) == 3
    with pytest.raises(ZeroDivisionError):
        int_div(7, 0)


def test_exception_in_fallback_reaches_caller() -> None:
    @iris.offload
    def bad(x):
        d = {"k": x, 1: "mixed keys"}  # numba cannot type this dict
        if x < 0:
            raise KeyError("no such key")
        return d["k"]

    with pytest.raises(KeyError, match="no such key"):
        bad(-1.0)
    assert bad(2.0) == 2.0 and not bad.compiled


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"strategy": "gpu"}, ValueError, r"unknown offload strategy 'gpu' \(known strategies: "
                                      r"\['jit', 'actor'\]\)"),
    ({"return_type": "string"}, ValueError, "return_type='string' is not supported"),
    ({"return_type": object}, ValueError, "not a numeric numpy dtype"),
    ({"parallel": "yes"}, TypeError, "parallel= takes True or False"),
    ({"cache": None}, TypeError, "cache= takes True or False"),
])
def test_bad_options(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        iris.offload(**kwargs)


@pytest.mark.parametrize("target", [len, 3, type("C", (), {})])
def test_decorating_a_non_function(target: Any) -> None:
    with pytest.raises(TypeError, match="takes a Python function"):
        iris.offload(target)


def test_loop_control_outside_a_reduction_is_a_syntax_error() -> None:
    @iris.offload
    def misplaced(x):
        return break_if(x > 1, x)

    with pytest.raises(SyntaxError, match="break_if\\(\\) can only be used"):
        misplaced(1.0)


def test_loop_control_in_a_predicate_is_a_syntax_error() -> None:
    @iris.offload
    def in_predicate(a):
        return sum(v for v in a if continue_on_nan(v) > 0)

    with pytest.raises(SyntaxError, match="continue_on_nan"):
        in_predicate(np.ones(2))


@pytest.mark.parametrize("which", ["if_else", "sum_while", "break_if"])
def test_wrong_intrinsic_arity(which: str) -> None:
    @iris.offload
    def wrong_if_else(x):
        return if_else(x, 1)

    @iris.offload
    def wrong_sum_while(n):
        return sum_while(i, 0, i < n, i + 1)

    @iris.offload
    def wrong_break_if(a):
        return sum(break_if(v) for v in a)

    fn = {"if_else": wrong_if_else, "sum_while": wrong_sum_while,
          "break_if": wrong_break_if}[which]
    with pytest.raises(SyntaxError, match=f"{which}\\(\\) takes"):
        fn(np.ones(2))


def test_sum_while_var_must_be_a_name() -> None:
    @iris.offload
    def bad_var(n):
        return sum_while(n + 1, 0, n < 3, n + 1, n)

    with pytest.raises(SyntaxError, match="loop variable's name"):
        bad_var(1)


def test_sum_while_safety_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("iris.jit._lower.MAX_WHILE_ITERATIONS", 50)

    @iris.offload
    def runaway(n):
        return sum_while(i, 0, i >= 0, i + 1, i) + n

    with pytest.raises(RuntimeError, match="ran more than 50 iterations"):
        runaway(1)


@pytest.mark.parametrize("stub", ["break_if", "continue_on_nan", "sum_while", "any_while"])
def test_intrinsic_stubs_called_directly(stub: str) -> None:
    with pytest.raises(RuntimeError, match=f"{stub}\\(\\) is an @iris.offload intrinsic"):
        getattr(iris.jit, stub)(True, 1)


def test_if_else_works_as_a_plain_function() -> None:
    assert iris.jit.if_else(True, 1, 2) == 1
    assert iris.jit.if_else(0, 1, 2) == 2
    assert iris.jit.prange(3) == range(3)
