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
