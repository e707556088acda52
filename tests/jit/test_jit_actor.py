"""strategy="actor" on the embedded cluster: calls, .remote, .map, per-worker kernels."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np
import pytest

import iris

if importlib.util.find_spec("iris._api") is None:  # the cluster API has not landed
    pytest.skip("iris._api (the cluster API) is not available", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("offload_cluster")]


@iris.offload(strategy="actor")
def sum_sq(a):
    s = 0.0
    for v in a:
        s += v * v
    return s


@iris.offload(strategy="actor", return_type="int")
def count_above(a, threshold):
    return sum(1 for v in a if v > threshold)


@iris.offload(strategy="actor")
def checked(x):
    if x < 0:
        raise ValueError("negative input")
    return x * 2


@iris.offload
def jit_norm(a):
    return sum(v * v for v in a) ** 0.5


def test_blocking_call_returns_the_value() -> None:
    a = np.arange(100.0)
    assert sum_sq(a) == pytest.approx(float(np.dot(a, a)), rel=1e-12)
    assert checked(2.5) == 5.0


def test_remote_returns_an_object_ref() -> None:
    ref = sum_sq.remote(np.ones(10))
    assert isinstance(ref, iris.ObjectRef)
    assert iris.get(ref) == 10.0
    refs = [checked.remote(float(i)) for i in range(6)]
    assert iris.get(refs) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]


def test_map_splits_work_over_workers() -> None:
    data = np.random.default_rng(1).random(200_000)
    chunks = np.array_split(data, 8)
    parts = sum_sq.map(chunks)
    assert len(parts) == 8
    for part, chunk in zip(parts, chunks):
        assert part == pytest.approx(float(np.dot(chunk, chunk)), rel=1e-9)
    assert sum_sq.map(chunks, reduce=sum) == pytest.approx(float(np.dot(data, data)), rel=1e-9)
    assert count_above.map(chunks, 0.5, reduce=sum) == int((data > 0.5).sum())
    assert sum_sq.map([]) == []


def test_return_type_and_intrinsics_apply_on_workers() -> None:
    got = count_above(np.array([0.1, 0.7, 0.9]), 0.5)
    assert got == 2 and type(got) is int


def test_kernel_exception_reaches_caller() -> None:
    with pytest.raises(ValueError, match="negative input") as info:
        checked(-1.0)
    assert isinstance(info.value, iris.TaskError)
    with pytest.raises(ValueError, match="negative input"):
        iris.get(checked.remote(-2.0))


def test_unsupported_argument_type_reaches_caller() -> None:
    with pytest.raises(TypeError, match="'str'.*supported: bool, int, float"):
        checked("x")


def test_each_worker_compiles_once() -> None:
    a = np.arange(1000.0)
    for _ in range(3):
        sum_sq.map(np.array_split(a, 4))
    key, fn, options, source = sum_sq._key, sum_sq.py_func, sum_sq.options, sum_sq._source

    @iris.remote
    def probe(x: Any) -> Any:
        from iris.jit._actor import _kernel_for, kernel_statistics

        before = kernel_statistics(key)
        kernel = _kernel_for(key, fn, options, source)
        kernel(x)
        kernel(x)
        return os.getpid(), before, kernel.statistics()

    results = iris.get([probe.remote(np.array_split(a, 4)[0]) for _ in range(6)])
    for _pid, before, after in results:
        assert after.compiled, after
        # Every specialisation was compiled (or loaded from the disk cache) exactly once in
        # that process, however many calls it served.
        assert after.cache_hits + after.cache_misses == len(after.signatures), after
        if before is not None:
            assert set(before.signatures) <= set(after.signatures)
            # arguments reach tasks read-only, however they travelled
            assert "(readonly array(float64, 1d, C))" in after.signatures


def test_large_arrays_arrive_through_shared_memory() -> None:
    @iris.remote
    def writeable(a: Any) -> bool:
        return bool(a.flags.writeable)

    big = np.ones(2_000_000)
    # The object store maps large arrays read-only instead of unpickling a copy.
    assert iris.get(writeable.remote(big)) is False
    assert sum_sq(big) == 2_000_000.0


def test_jit_function_inside_a_task() -> None:
    @iris.offload
    def local_norm(a):
        return sum(v * v for v in a) ** 0.5

    @iris.remote
    def task(a: Any) -> Any:
        return local_norm(a), jit_norm(a), local_norm.compiled

    assert iris.get(task.remote(np.array([3.0, 4.0]))) == (5.0, 5.0, True)


def test_actor_function_inside_a_task() -> None:
    @iris.remote
    def task(x: float) -> Any:
        return checked(x) + 1

    assert iris.get(task.remote(3.0)) == 7.0


def test_statistics_in_the_driver() -> None:
    stats = checked.statistics()
    assert stats.strategy == "actor" and not stats.compiled  # workers compile, not us
    assert checked.signatures == []
    assert "strategy='actor'" in repr(checked)
