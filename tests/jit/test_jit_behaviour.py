"""strategy="jit": specialisation, options, fallback, logging, pickling, introspection."""

from __future__ import annotations

import logging
import pickle
from decimal import Decimal
from typing import Any

import cloudpickle
import numpy as np
import pytest

import iris
import iris.jit
from iris.jit import break_if, if_else, prange


@iris.offload
def scale(x, factor=2.0, *, shift=0):
    return x * factor + shift


@iris.offload(return_type="float")
def as_float(x):
    return x + 1


@iris.offload(return_type="int")
def as_int(x):
    return x * 2.6


@iris.offload(return_type="bool")
def as_bool(x):
    return x - 1


@iris.offload(return_type=np.float32)
def as_f32(a):
    return a * 2


@iris.offload
def uses_decimal(x):
    # numba cannot type Decimal: this runs as plain Python.
    return float(Decimal(x) * 2) + sum(v for v in range(3))


@iris.offload(parallel=True)
def parallel_sum_sq(a):
    s = 0.0
    for i in prange(a.shape[0]):
        s += a[i] * a[i]
    return s


@iris.offload(fastmath=True)
def fast_dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@iris.offload
def inner(x):
    return x * x + 1


@iris.offload
def outer(a):
    return sum(inner(v) for v in a)


@iris.offload
def first_item(t):
    return t[0] + t[1] * 2


@iris.offload
def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


def test_new_argument_types_compile_new_specialisations() -> None:
    f = iris.offload(lambda x, y: x + y)
    assert f.signatures == [] and not f.compiled
    assert f(1, 2) == 3 and isinstance(f(1, 2), int)
    assert len(f.signatures) == 1 and f.compiled
    assert f(1.5, 2.0) == 3.5
    assert len(f.signatures) == 2
    assert f(1, 2) == 3  # an existing specialisation: nothing new
    assert len(f.signatures) == 2
    assert [str(t) for t in f.signatures[0]] == ["int64", "int64"]


def test_defaults_and_keyword_arguments() -> None:
    assert scale(3.0) == 6.0
    assert scale(3.0, 3.0) == 9.0
    assert scale(3.0, factor=0.5, shift=1) == 2.5
    assert scale.compiled


@pytest.mark.parametrize(("fn", "arg", "want", "kind"), [
    (as_float, 1, 2.0, float),
    (as_int, 2.0, 5, int),
    (as_bool, 1.0, False, bool),
    (as_bool, 3, True, bool),
    (as_f32, 1.5, 3.0, np.float32),
])
def test_return_type_converts_scalars(fn: Any, arg: Any, want: Any, kind: type) -> None:
    got = fn(arg)
    assert type(got) is kind and got == want
    assert fn.compiled


def test_return_type_converts_arrays() -> None:
    got = as_f32(np.arange(3.0))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [0.0, 2.0, 4.0])


def test_results_are_python_values() -> None:
    assert type(inner(2)) is int and type(inner(2.0)) is float
    assert type(inner(np.float32(2.0))) is float
    assert type(iris.offload(lambda x: x > 1)(np.float64(2.0))) is bool


def test_fallback_runs_plain_python_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    f = iris.offload(uses_decimal.py_func)  # a fresh wrapper, so the warning is ours
    caplog.set_level(logging.WARNING, logger="iris.jit")
    assert f(1.5) == 6.0
    assert f(2.5) == 8.0
    assert not f.compiled
    assert f.fallback_reason is not None and "Decimal" in f.fallback_reason
    warnings = [r for r in caplog.records if r.name == "iris.jit" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "uses_decimal" in warnings[0].getMessage()
    assert "plain Python" in warnings[0].getMessage()
    stats = f.statistics()
    assert stats.fallback_calls == 2 and not stats.compiled


def test_fallback_keeps_intrinsics_working() -> None:
    @iris.offload
    def mixed(x, a):
        d = Decimal(x)  # uncompilable
        return float(d) + sum(break_if(v > 2, v) for v in a) + if_else(x > 0, 1, 2)

    assert mixed(1.0, np.array([1.0, 2.0, 3.0, 1.0])) == 5.0
    assert not mixed.compiled


def test_fallback_is_per_argument_types() -> None:
    @iris.offload
    def pick(t, i):
        return t[i]

    assert pick((1.0, 2.0), 1) == 2.0  # a homogeneous tuple: compiled
    assert pick.compiled and pick.fallback_reason is None
    assert pick((1, 2.5), 1) == 2.5  # runtime index into a mixed tuple: numba cannot
    assert pick((3, 4.5), 0) == 3
    assert pick.fallback_reason is not None
    assert pick.compiled and len(pick.signatures) == 1
    assert pick.statistics().fallback_calls == 2
    assert pick((5.0, 6.0), 0) == 5.0  # the compiled specialisation still serves


def test_parallel_prange() -> None:
    a = np.arange(10_000, dtype=np.float64)
    assert parallel_sum_sq(a) == pytest.approx(float(np.dot(a, a)), rel=1e-12)
    assert parallel_sum_sq.compiled


def test_fastmath() -> None:
    a = np.linspace(0.0, 1.0, 1001)
    assert fast_dot(a, a) == pytest.approx(float(np.dot(a, a)), rel=1e-9)


def test_offloaded_function_calls_another() -> None:
    a = np.array([1.0, 2.0, 3.0])
    assert outer(a) == 17.0
    assert outer.compiled


def test_recursion() -> None:
    assert fact(10) == 3628800


def test_closure_variables_are_constants_of_the_kernel() -> None:
    k = 3.0

    @iris.offload
    def times_k(x):
        return x * k

    assert times_k(2.0) == 6.0
    assert times_k.compiled


def test_lists_and_tuples() -> None:
    assert outer([1.0, 2.0, 3.0]) == 17.0  # the list is copied to an array
    assert outer([1, 2]) == 7
    assert first_item((1.0, 2.0)) == 5.0
    assert first_item((1, np.float32(2.5))) == 6.0
    assert first_item.compiled


def test_empty_and_unusual_arrays() -> None:
    assert outer(np.zeros(0)) == 0
    assert outer(np.arange(6.0)[::2]) == 23.0  # strided
    assert outer(np.asfortranarray(np.ones((2, 2)))[0]) == 4.0
    readonly = np.ones(3)
    readonly.flags.writeable = False
    assert outer(readonly) == 6.0


def test_map_runs_chunks_in_this_process() -> None:
    chunks = np.array_split(np.arange(10.0), 3)
    assert outer.map(chunks) == [outer(c) for c in chunks]
    assert outer.map(chunks, reduce=sum) == outer(np.arange(10.0))
    assert scale.map([1.0, 2.0], 3.0, shift=1) == [4.0, 7.0]


def test_statistics_and_repr() -> None:
    inner(5)
    stats = inner.statistics()
    assert stats.strategy == "jit" and stats.compiled
    assert "(int64)" in stats.signatures
    assert stats.cache_hits + stats.cache_misses >= 1
    assert "inner" in repr(inner) and "compiled" in repr(inner)


def test_pickles_by_reference_and_by_value() -> None:
    assert pickle.loads(pickle.dumps(inner)) is inner

    @iris.offload(return_type="float")
    def local(x):
        return if_else(x > 0, x, -x)

    copy = cloudpickle.loads(cloudpickle.dumps(local))
    assert copy is not local and copy(-2) == 2.0
    assert isinstance(copy, iris.jit.JitFunction)


def test_wrapper_metadata() -> None:
    assert scale.__name__ == "scale"
    assert scale.__wrapped__ is scale.py_func
    assert scale.strategy == "jit"
    assert scale.options.cache is True


def test_intrinsic_names_can_be_shadowed_by_the_module() -> None:
    def if_else(a: Any, b: Any, c: Any) -> Any:  # a user's own function of that name
        return 42

    @iris.offload
    def uses_own(x):
        return if_else(x, 1, 2)

    # The local if_else is a closure variable, not the intrinsic: it is called as is.
    assert uses_own(1.0) == 42


def test_bare_call_form_and_redecoration() -> None:
    f = iris.jit.offload(inner)  # re-wrapping an offloaded function wraps its function
    assert f.py_func is inner.py_func
    assert f(2) == 5


# -- logging ----------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Any:
    yield
    iris.jit.set_jit_logging(None)


def test_set_and_get_jit_logging(monkeypatch: pytest.MonkeyPatch, restore_logging: Any) -> None:
    monkeypatch.delenv("IRIS_JIT_LOG", raising=False)
    assert iris.jit.set_jit_logging(None) is False
    assert iris.jit.set_jit_logging(True) is True and iris.jit.get_jit_logging()
    assert iris.jit.set_jit_logging(False) is False and not iris.jit.get_jit_logging()
    iris.jit.set_jit_logging(None)
    monkeypatch.setenv("IRIS_JIT_LOG", "1")
    assert iris.jit.get_jit_logging() is True
    monkeypatch.setenv("IRIS_JIT_LOG", "off")
    assert iris.jit.get_jit_logging() is False
    monkeypatch.setenv("MY_JIT_LOG", "yes")
    assert iris.jit.set_jit_logging(None, env_var="MY_JIT_LOG") is True
    iris.jit.set_jit_logging(None, env_var="IRIS_JIT_LOG")
    with pytest.raises(TypeError, match="True, False or None"):
        iris.jit.set_jit_logging("yes")  # type: ignore[arg-type]


def test_compile_logs_when_enabled(caplog: pytest.LogCaptureFixture,
                                   restore_logging: Any) -> None:
    caplog.set_level(logging.INFO, logger="iris.jit")
    iris.jit.set_jit_logging(True)

    @iris.offload
    def logged(x):
        return x + 1

    assert logged(1) == 2
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "iris.jit")
    assert "logged(int64)" in text and ("compiled" in text or "loaded from cache" in text)

    caplog.clear()
    iris.jit.set_jit_logging(False)
    assert logged(1.5) == 2.5
    assert not [r for r in caplog.records if r.levelno == logging.INFO]
