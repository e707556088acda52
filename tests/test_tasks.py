"""Remote tasks and objects on a real embedded cluster."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import threading

import numpy as np
import pytest

import iris
from iris import _api
from iris.testing import wait_until

pytestmark = pytest.mark.slow


@iris.remote
def square(x: int) -> int:
    return x * x


@iris.remote
def add(a: int, b: int = 0) -> int:
    return a + b


@iris.remote(num_returns=2)
def divmod_task(a: int, b: int) -> tuple[int, int]:
    return divmod(a, b)


@iris.remote
def fail(message: str) -> None:
    raise ValueError(message)


@iris.remote
def pid() -> int:
    return os.getpid()


def test_the_issue_script(cluster: iris.ClusterContext) -> None:
    refs = [square.remote(i) for i in range(1000)]
    assert iris.get(refs) == [i * i for i in range(1000)]
    big = iris.put(np.arange(10_000_000, dtype=np.float64))
    total = iris.get(iris.remote(lambda a: float(a.sum())).remote(big))
    assert total == float(np.arange(10_000_000).sum())


def test_tasks_run_in_worker_processes(cluster: iris.ClusterContext) -> None:
    pids = set(iris.get([pid.remote() for _ in range(50)]))
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2


def test_kwargs_options_and_num_returns(cluster: iris.ClusterContext) -> None:
    assert iris.get(add.remote(1, b=2)) == 3
    q, r = divmod_task.remote(17, 5)
    assert iris.get([q, r]) == [3, 2]
    a, b = iris.remote(lambda t: t).options(num_returns=2).remote((1, 2))
    assert iris.get(a) == 1 and iris.get(b) == 2


def test_wrong_num_returns_is_a_task_error(cluster: iris.ClusterContext) -> None:
    refs = add.options(num_returns=3).remote(5)
    with pytest.raises(iris.TaskError, match="num_returns=3"):
        iris.get(refs[0])


def test_ref_arguments_are_resolved_and_nested_refs_stay_refs(
        cluster: iris.ClusterContext) -> None:
    x = square.remote(3)
    assert iris.get(add.remote(x, b=square.remote(2))) == 13

    @iris.remote
    def inspect(box: list) -> tuple[bool, int]:
        return isinstance(box[0], iris.ObjectRef), iris.get(box[0])

    assert iris.get(inspect.remote([x])) == (True, 9)


def test_tasks_submit_tasks_and_get_inside_a_worker(cluster: iris.ClusterContext) -> None:
    @iris.remote
    def outer(n: int) -> int:
        return sum(iris.get([square.remote(i) for i in range(n)]))

    assert iris.get(outer.remote(10)) == sum(i * i for i in range(10))


def test_put_and_get_small_and_large(cluster: iris.ClusterContext) -> None:
    assert iris.get(iris.put({"a": 1})) == {"a": 1}
    arr = np.random.default_rng(0).random(1_000_000)
    got = iris.get(iris.put(arr))
    np.testing.assert_array_equal(got, arr)
    assert not got.flags.writeable  # a zero-copy view of shared memory


def test_large_results_come_back_as_read_only_views(cluster: iris.ClusterContext) -> None:
    @iris.remote
    def make(n: int) -> np.ndarray:
        return np.arange(n, dtype=np.float64)

    got = iris.get(make.remote(2_000_000))
    assert got[-1] == 1_999_999.0
    assert not got.flags.writeable


def test_large_by_value_argument(cluster: iris.ClusterContext) -> None:
    arr = np.ones(3_000_000)
    assert iris.get(iris.remote(lambda a: float(a.sum())).remote(arr)) == 3_000_000.0


def test_task_error_is_also_the_original_class(cluster: iris.ClusterContext) -> None:
    ref = fail.remote("bad input 42")
    with pytest.raises(ValueError) as info:
        iris.get(ref)
    err = info.value
    assert isinstance(err, iris.TaskError)
    assert isinstance(err.cause, ValueError)
    assert err.__cause__ is err.cause
    assert "bad input 42" in str(err)
    assert "Remote traceback" in str(err) and "in fail" in str(err)


def test_errors_propagate_through_dependent_tasks(cluster: iris.ClusterContext) -> None:
    with pytest.raises(ValueError, match="upstream"):
        iris.get(add.remote(fail.remote("upstream"), 1))


def test_get_timeout(cluster: iris.ClusterContext) -> None:
    gate = threading.Event()

    @iris.remote
    def slow(path: str) -> int:
        import time
        deadline = time.monotonic() + 30
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        return 1

    path = f"/tmp/iris-test-gate-{os.getpid()}-{id(gate)}"
    ref = slow.remote(path)
    try:
        with pytest.raises(iris.GetTimeoutError) as info:
            iris.get(ref, timeout=0.05)
        assert isinstance(info.value, TimeoutError)
    finally:
        open(path, "w").close()
    try:
        assert iris.get(ref, timeout=30) == 1
    finally:
        os.unlink(path)


def test_wait_returns_ready_and_not_ready_in_order(cluster: iris.ClusterContext) -> None:
    refs = [square.remote(i) for i in range(5)]
    ready, not_ready = iris.wait(refs, num_returns=5, timeout=30)
    assert ready == refs and not_ready == []
    ready, not_ready = iris.wait(refs, num_returns=2)
    assert ready == refs[:2] and not_ready == refs[2:]


def test_future_and_await(cluster: iris.ClusterContext) -> None:
    fut = square.remote(6).future()
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=30) == 36
    with pytest.raises(ValueError):
        fail.remote("in future").future().result(timeout=30)

    async def main() -> int:
        return await square.remote(7)

    assert asyncio.run(main()) == 49


def test_refs_are_hashable_and_readable(cluster: iris.ClusterContext) -> None:
    ref = iris.put(1)
    assert ref in {ref}
    assert repr(ref).startswith("ObjectRef(")
    assert ref.hex() in repr(ref)


def test_objects_are_freed_when_refs_go(cluster: iris.ClusterContext) -> None:
    from iris.testing import shm_segments as all_segments

    def shm_segments(cid: str) -> list[str]:  # pooled segments are kept for reuse, bounded
        return [n for n in all_segments(cid) if "-pool-" not in n]

    client = _api._client
    gc.collect()
    base, base_segments = client.object_count(), len(shm_segments(cluster.cluster_id))
    for _ in range(5):
        iris.get([square.remote(i) for i in range(200)])
        iris.put(np.ones(200_000))
        iris.get(iris.remote(np.ones).remote(300_000))
    gc.collect()
    assert client.object_count() <= base
    assert len(shm_segments(cluster.cluster_id)) <= base_segments
    kept = [iris.put(np.ones(200_000)) for _ in range(3)]
    assert client.object_count() == base + 3
    assert len(shm_segments(cluster.cluster_id)) == base_segments + 3
    del kept


def test_bad_calls_get_clear_errors(cluster: iris.ClusterContext) -> None:
    with pytest.raises(TypeError, match=r"square.remote\(\.\.\.\)"):
        square(3)
    with pytest.raises(TypeError, match="ObjectRef"):
        iris.get(3)
    with pytest.raises(TypeError, match="ObjectRef"):
        iris.get([iris.put(1), "x"])
    with pytest.raises(TypeError, match=r"argument 1 \(lock"):
        add.remote(1, threading.Lock())
    with pytest.raises(TypeError, match="unknown option"):
        square.options(num_gpus=1)
    with pytest.raises(ValueError, match="num_returns"):
        square.options(num_returns=0)
    with pytest.raises(ValueError):
        iris.wait([iris.put(1)], num_returns=2)


def test_init_twice_is_an_error_unless_ignored(cluster: iris.ClusterContext) -> None:
    with pytest.raises(RuntimeError, match="already"):
        iris.init()
    assert iris.init(ignore_reinit_error=True) is cluster
    assert iris.is_initialized()


def test_second_driver_joins_by_address(cluster: iris.ClusterContext) -> None:
    import subprocess
    import sys

    code = ("import iris, sys; iris.init(address=sys.argv[1]); "
            "f = iris.remote(lambda x: x + 1); print(iris.get(f.remote(41))); iris.shutdown()")
    out = subprocess.run([sys.executable, "-c", code, cluster.address], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


def test_blocking_tasks_cannot_starve_the_workers(cluster: iris.ClusterContext) -> None:
    # More blocking parents than workers: each parent waits for children that must run
    # on the same two workers. A worker keeps serving its queue while a task waits.
    @iris.remote
    def parent(n: int) -> int:
        return sum(iris.get([square.remote(i) for i in range(n)]))

    @iris.remote
    def grandparent(k: int) -> int:
        return sum(iris.get([parent.remote(5) for _ in range(k)]))

    expected = sum(i * i for i in range(5))
    assert iris.get([parent.remote(5) for _ in range(6)], timeout=60) == [expected] * 6
    assert iris.get([grandparent.remote(3) for _ in range(4)], timeout=60) == [3 * expected] * 4


def test_tasks_blocked_in_get_do_not_count_against_the_in_flight_limit(
        cluster: iris.ClusterContext) -> None:
    import time

    # Long tasks make the driver send one task per worker at a time.
    iris.get([iris.remote(time.sleep).remote(0.01) for _ in range(6)])
    assert iris._api._client._cap() == 1

    @iris.remote
    def wait_for(box: list) -> int:
        return iris.get(box[0]) + 1

    busy = [iris.remote(time.sleep).remote(0.05) for _ in range(2)]
    b = square.remote(3)
    c = add.remote(b, 1)  # becomes ready only after b: queued behind every wait_for
    waiting = [wait_for.remote([c]) for _ in range(4)]
    # Each wait_for blocks on c; unless blocked tasks stop counting as load, c never goes out.
    assert iris.get(waiting, timeout=60) == [11] * 4
    iris.get(busy)


@iris.remote
def fib(n: int) -> int:
    if n < 2:
        return n
    return sum(iris.get([fib.remote(n - 1), fib.remote(n - 2)]))


def test_deep_recursion_of_blocking_tasks(cluster: iris.ClusterContext) -> None:
    assert iris.get(fib.remote(12), timeout=60) == 144


def test_many_blocking_parents_with_wide_fan_out(cluster: iris.ClusterContext) -> None:
    @iris.remote
    def outer(n: int) -> int:
        return sum(iris.get([square.remote(i) for i in range(n)]))

    expected = sum(i * i for i in range(100))
    assert iris.get([outer.remote(100) for _ in range(50)], timeout=60) == [expected] * 50


def test_arguments_and_puts_are_snapshots(cluster: iris.ClusterContext) -> None:
    small = np.zeros(10)
    ref = iris.put(small)
    small[0] = 5.0
    assert iris.get(ref)[0] == 0.0
    big = np.zeros(1_000_000)
    first = iris.remote(lambda a: float(a[0])).remote(big)
    big[0] = 5.0  # after .remote() returned: the task must see the value at the call
    assert iris.get(first) == 0.0
    tiny = np.zeros(10)
    ref2 = iris.remote(lambda a: float(a[0])).remote(tiny)
    tiny[0] = 7.0
    assert iris.get(ref2) == 0.0


def test_values_read_back_are_read_only_whatever_their_size(cluster: iris.ClusterContext
                                                            ) -> None:
    make = iris.remote(lambda n: np.ones(n))
    for n in (10, 10_000, 1_000_000):
        assert not iris.get(make.remote(n)).flags.writeable, n
    assert not iris.get(iris.put(np.ones(10))).flags.writeable


def test_map_submits_one_task_per_item(cluster: iris.ClusterContext) -> None:
    square = iris.remote(lambda x: x * x)
    assert iris.get(square.map(range(300))) == [i * i for i in range(300)]
    add = iris.remote(lambda x, y: x + y)
    assert iris.get(add.map([1, 2, 3], [10, 20, 30])) == [11, 22, 33]
    pair = iris.remote(lambda x: (x, -x)).options(num_returns=2)
    refs = pair.map([1, 2])
    assert [iris.get(r) for r in refs] == [[1, -1], [2, -2]]
    assert iris.get(square.map([])) == []
    # Refs as items are resolved like .remote() arguments.
    assert iris.get(square.map([iris.put(4), square.remote(3)])) == [16, 81]


def test_map_refuses_bad_input_and_submits_nothing(cluster: iris.ClusterContext) -> None:
    import threading

    import numpy as np

    from iris import _api

    f = iris.remote(lambda x: x)
    with pytest.raises(ValueError, match="same length"):
        f.map([1, 2], [1])
    with pytest.raises(TypeError, match="at least one iterable"):
        f.map()
    client = _api._client
    # (Objects of earlier tests may be freed meanwhile: look for new ones, not the count.)
    before = set(client.objects)
    medium = [np.full(4000, float(i)) for i in range(20)]  # arena-sized arguments first
    with pytest.raises(TypeError, match="lock"):
        f.map([*medium, threading.Lock()])
    assert set(client.objects) <= before
    arena = client.arena
    assert arena is None or all(c.live == 0 for c in arena.chunks)
    assert iris.get(f.map(medium[:3]))[2][0] == 2.0  # and it keeps working


def test_empty_and_odd_shaped_arrays_come_back(cluster: iris.ClusterContext) -> None:
    import numpy as np

    same = iris.remote(lambda a: a)
    for a in (np.zeros((0, 3)), np.zeros((2, 0, 4)), np.array(7.0), np.arange(12)[::3]):
        b = iris.get(same.remote(a))
        assert b.shape == a.shape and b.dtype == a.dtype
        np.testing.assert_array_equal(b, a)
    assert iris.get(iris.remote(lambda: np.zeros((0, 3))).remote()).shape == (0, 3)


def test_exceptions_with_other_init_arguments_keep_their_traceback(
        cluster: iris.ClusterContext) -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}/{b}")

    def boom() -> None:
        raise Odd(1, 2)

    with pytest.raises(iris.TaskError) as info:
        iris.get(iris.remote(boom).remote())
    text = str(info.value)
    assert "Odd" in text and "1/2" in text and "in boom" in text
    assert text.count("Traceback (most recent call last)") + text.count(
        "traceback (most recent call last)") == 1


def test_refs_from_an_earlier_init_are_lost_not_hung() -> None:
    from iris.testing import local_cluster

    with local_cluster(num_workers=1):
        old = iris.put(1)
    with local_cluster(num_workers=1):
        with pytest.raises(iris.ObjectLostError, match="earlier iris.init"):
            iris.get(old, timeout=30)



def test_a_task_waiting_for_an_earlier_task_of_its_batch_gets_its_result() -> None:
    """One worker takes [slow, waiter] as one batch; the waiter blocks on the slow task's
    result, which is done but not sent yet: it must go out (it did not, once)."""
    from iris.testing import local_cluster

    @iris.remote
    def slow(s: float = 0.3) -> int:
        threading.Event().wait(s)  # long enough that the flusher fired before it ended
        return 7

    @iris.remote
    def waiter(refs: list[iris.ObjectRef]) -> int:
        return int(iris.get(refs[0], timeout=60)) + 1

    with local_cluster(num_workers=1):
        for _ in range(3):
            busy = slow.remote(0.1)  # goes at once; the next two then go out together
            a = slow.remote()
            b = waiter.remote([a])
            assert iris.get(b, timeout=60) == 8
            assert iris.get(busy) == 7
