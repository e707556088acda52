"""Serialization: plain values, code by value, out-of-band buffers, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from iris import _serialization as s


def test_plain_values_round_trip() -> None:
    for v in [(1, 2.5, "x", b"y", None, True), ((1,), {"a": 2}), 7, "text"]:
        header, bufs = s.dumps(v)
        assert bufs == []
        assert s.loads(header, bufs) == v


def test_lambdas_and_closures_travel_by_value() -> None:
    k = 10
    header, bufs = s.dumps((lambda x: x + k,))
    (fn,) = s.loads(header, bufs)
    assert fn(1) == 11


def test_arrays_use_out_of_band_buffers() -> None:
    a = np.arange(100_000, dtype=np.float64)
    header, bufs = s.dumps(a)
    assert len(header) < 1000
    assert s.nbytes(bufs) == a.nbytes
    np.testing.assert_array_equal(s.loads(header, bufs), a)


def test_unpicklable_value_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="lock"):
        s.dumps(threading.Lock())


def test_describe_unpicklable_names_the_argument() -> None:
    text = s.describe_unpicklable((1, threading.Lock()), {})
    assert text.startswith("argument 1 (lock")
    text = s.describe_unpicklable((), {"lk": threading.Lock()})
    assert "lk=" in text


def test_errors_keep_their_traceback() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        blob = s.dumps_error(exc)
    exc2, tb = s.loads_error(blob)
    assert isinstance(exc2, KeyError)
    assert "raise KeyError" in tb


def test_unpicklable_exception_is_replaced() -> None:
    class Weird(Exception):
        def __init__(self) -> None:
            super().__init__("weird")
            self.lock = threading.Lock()

    try:
        raise Weird()
    except Weird as exc:
        blob = s.dumps_error(exc)
    exc2, tb = s.loads_error(blob)
    assert isinstance(exc2, RuntimeError)
    assert "Weird" in str(exc2)


@pytest.mark.parametrize("a", [
    np.arange(10.0), np.arange(12).reshape(3, 4), np.zeros((0, 3)), np.array(5.0),
    np.array([True, False]), np.arange(6, dtype=">i2"), np.array([1 + 2j]),
    np.asfortranarray(np.ones((3, 2))), np.ones(2, dtype="M8[D]"), np.arange(10)[::2],
    np.ones(3, dtype=[("a", "i4"), ("b", "f8")]),
])
def test_arrays_round_trip_with_their_dtype_and_shape(a: np.ndarray) -> None:
    header, buffers = s.dumps_plain(((a,), {"k": a}))  # type: ignore[misc]
    (b,), kw = s.loads(header, buffers)
    for x in (b, kw["k"]):
        assert x.dtype == a.dtype and x.shape == a.shape
        np.testing.assert_array_equal(x, a)


def test_array_calls_reuse_their_layout_but_not_aliasing() -> None:
    x, y = np.zeros(10), np.full(10, 1.0)
    h1, b1 = s.dumps_arrays((x, y))  # type: ignore[misc]
    (p, q), _ = s.loads(h1, b1)
    np.testing.assert_array_equal(q, y)
    # The same array twice pickles as one buffer used twice: never cached for the layout.
    assert s.dumps_arrays((x, x)) is None
    h2, b2 = s.dumps_arrays((y, x))  # type: ignore[misc]
    assert h2 == h1
    (p, q), _ = s.loads(h2, b2)
    np.testing.assert_array_equal(p, y)
    np.testing.assert_array_equal(q, x)
    assert s.dumps_arrays((np.arange(5)[::2],)) is None  # not contiguous: the slow path
    # Empty arrays (whose buffers cannot be cast to bytes) take the general path too.
    assert s.dumps_arrays((np.zeros((3, 0)),)) is None
    h3, b3 = s.dumps_arrays((np.arange(6, dtype=">i4").reshape(2, 3),))  # type: ignore[misc]
    assert [b.nbytes for b in b3] == [24] and s.nbytes(b3) == 24
    ((r,), _) = s.loads(h3, b3)
    np.testing.assert_array_equal(r, np.arange(6).reshape(2, 3))


@pytest.mark.parametrize("args, kwargs", [
    ((), {}), ((5,), {}), ((1, "a", 2.5, None, True, b"x", 3j), {}), ((5,), {"k": 1}),
    (([1, 2], {"a": 1}), {}), ((np.arange(4.0),), {}), ((np.arange(3), 1.5), {}),
    (([[1]],), {}),
])
def test_a_calls_quick_pickle_is_the_plain_one(args: tuple, kwargs: dict) -> None:
    made = s.dumps_call(args, kwargs)
    plain = s.dumps_plain((args, kwargs))
    assert (made is None) == (plain is None)  # too deep for the plain path: both say so
    if made is not None and plain is not None:
        out = s.loads(made[0], made[1])
        assert repr(out) == repr(s.loads(plain[0], plain[1])) == repr((args, kwargs))


def test_a_call_with_code_or_objects_is_not_quick() -> None:
    assert s.dumps_call((lambda: 1,), {}) is None
    assert s.dumps_call((object(),), {}) is None
