"""Refs that leave their owner: returned from tasks, stored inside puts. Nothing is lost,
and what is let go everywhere is freed."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import zmq

import iris
from iris.testing import shm_segments, wait_until


@iris.remote
def put_and_return(n: int) -> iris.ObjectRef:
    return iris.put(np.arange(float(n)))


@iris.remote
def two_refs() -> list[iris.ObjectRef]:
    return [iris.put("first"), iris.put(np.ones(1000))]


@iris.remote(num_returns=2)
def pair_of_refs() -> tuple[iris.ObjectRef, iris.ObjectRef]:
    return iris.put(1), iris.put(2)


@iris.remote
def subtask_refs() -> list[iris.ObjectRef]:
    return [square.remote(i) for i in range(5)]


@iris.remote
def square(x: int) -> int:
    return x * x


@iris.remote
def collect(_: int) -> int:
    gc.collect()  # the worker drops whatever it still held
    return 1


def _churn() -> None:
    gc.collect()
    iris.get([collect.remote(i) for i in range(8)])


def test_a_ref_returned_by_a_task_outlives_the_task(cluster: iris.ClusterContext) -> None:
    ref = iris.get(put_and_return.remote(10))
    _churn()
    np.testing.assert_array_equal(iris.get(ref, timeout=30), np.arange(10.0))
    first, second = iris.get(two_refs.remote())
    a, b = pair_of_refs.remote()
    inner_a, inner_b = iris.get([a, b])
    del a, b
    _churn()
    assert iris.get(first, timeout=30) == "first"
    assert iris.get(second, timeout=30).sum() == 1000.0
    assert iris.get([inner_a, inner_b], timeout=30) == [1, 2]


def test_refs_of_tasks_submitted_inside_a_task(cluster: iris.ClusterContext) -> None:
    refs = iris.get(subtask_refs.remote())
    _churn()
    assert iris.get(refs, timeout=30) == [i * i for i in range(5)]


def test_refs_inside_a_put_live_as_long_as_the_put(cluster: iris.ClusterContext) -> None:
    inner = iris.put(np.arange(5.0))
    outer = iris.put({"inner": inner})
    del inner
    gc.collect()
    got = iris.get(outer)["inner"]
    np.testing.assert_array_equal(iris.get(got), np.arange(5.0))


def test_returned_objects_are_freed_once_every_holder_lets_go(
        cluster: iris.ClusterContext) -> None:
    def mine() -> list[str]:  # segments of big values (pooled ones are kept for reuse)
        return [n for n in shm_segments(cluster.cluster_id) if "-pool-" not in n
                and "-arena-" not in n]

    _churn()
    before = len(mine())
    refs = iris.get([put_and_return.remote(500_000) for _ in range(4)])  # 4 MB each
    assert len(mine()) >= before + 4
    assert [float(iris.get(r).sum()) for r in refs] == [float(np.arange(500_000.0).sum())] * 4
    del refs
    gc.collect()
    wait_until(lambda: (_churn() or True) and len(mine()) <= before, 30,
               "the worker to free the objects nobody holds any more")


def test_a_malformed_borrow_update_is_refused_and_the_owner_keeps_serving(
        cluster: iris.ClusterContext) -> None:
    import zmq

    from iris import _api
    from iris._protocol import MsgType, encode_control
    from iris._transport import Credentials, connect_client

    client = _api._client
    ref = iris.put("kept")
    sock = connect_client(zmq.DEALER, Credentials.from_token(cluster.token), client.endpoint)
    try:
        for body in ({"op": "borrow", "oid": ref.oid, "borrow": 5},
                     {"op": "borrow", "oid": "x"}, {"op": "what", "oid": ref.oid}):
            sock.send_multipart(encode_control(MsgType.REQUEST, body))
        # A well-formed release of a borrow that was never taken changes nothing either.
        sock.send_multipart(encode_control(MsgType.REQUEST, {
            "op": "borrow", "oid": ref.oid, "borrow": -1, "transit": -1}))
        assert iris.get(iris.remote(lambda rs: iris.get(rs[0])).remote([ref])) == "kept"
        assert iris.get(ref) == "kept"
    finally:
        sock.close(0)


@pytest.mark.parametrize("n", [1, 3])
def test_nested_refs_in_arguments_still_work(cluster: iris.ClusterContext, n: int) -> None:
    refs = [iris.put(i) for i in range(n)]
    total = iris.remote(lambda rs: sum(iris.get(rs)))
    assert iris.get(total.remote(refs)) == sum(range(n))


def test_a_request_for_another_owner_is_not_answered_with_our_object(
        cluster: iris.ClusterContext) -> None:
    # A client that got the port of a dead one must not serve or count the dead one's
    # objects: requests name the owner they are for.
    from iris import _api
    from iris._protocol import MsgType, decode_frames, decode_results, encode_control
    from iris._transport import Credentials, connect_client
    from iris._values import from_value

    client = _api._client
    ref = iris.put("mine")
    stranger = client.endpoint + "#0000000000000000"
    sock = connect_client(zmq.DEALER, Credentials.from_token(cluster.token), client.endpoint)
    try:
        sock.send_multipart(encode_control(MsgType.REQUEST, {
            "op": "borrow", "oid": ref.oid, "transit": -1, "owner": stranger}))
        sock.send_multipart(encode_control(MsgType.OBJ_GET, {
            "oid": ref.oid, "host": "", "owner": stranger}))
        assert sock.poll(30_000)
        (rec,) = decode_results(decode_frames(sock.recv_multipart())[0])
        with pytest.raises(iris.ObjectLostError, match="is lost: its owner"):
            from_value(rec.values[0])
    finally:
        sock.close(0)
    # The stray release (read before the request answered on the same connection)
    # counted nothing.
    assert client.objects[ref.oid].transit == 0
    assert iris.get(ref) == "mine"


@iris.remote
class Keeper:
    def delay_registrations(self, seconds: float) -> None:
        """Make this worker's borrow registrations arrive late (after call results)."""
        import time

        from iris import _api

        client = _api._client
        send = client._send_owner

        def late(owner: str, body: dict) -> None:
            if body.get("borrow") == 1:
                time.sleep(seconds)
            send(owner, body)

        client._send_owner = late

    def keep(self, box: list) -> bool:
        self.ref = box[0]
        return True

    def read(self) -> object:
        return iris.get(self.ref, timeout=30)


def test_a_kept_ref_outlives_its_callers_ref_whatever_arrives_first(
        cluster: iris.ClusterContext) -> None:
    # The keeper's registration as a borrower travels on another connection than the
    # call's result; here it comes seconds after it. The result says which argument refs
    # the worker kept, and the owner holds those until the registration came.
    from iris import _api

    keeper = Keeper.remote()
    iris.get(keeper.delay_registrations.remote(1.5))
    ref = iris.put("kept value")
    oid = ref.oid
    assert iris.get(keeper.keep.remote([ref]))
    del ref
    gc.collect()  # the caller's own ref (and the call's pins) are gone now
    assert iris.get(keeper.read.remote(), timeout=60) == "kept value"
    iris.kill(keeper)
    del keeper
    # ... and nothing holds it for ever: once the keeper is gone, so is the object.
    wait_until(lambda: oid not in _api._client.objects, 30, "the object to be freed")


@iris.remote
class Maker:
    def make(self) -> list:
        return [iris.put("made elsewhere")]  # owned by this actor's worker


def test_a_kept_ref_of_a_third_owner_outlives_its_callers_ref(
        cluster: iris.ClusterContext) -> None:
    # The same with an object neither the caller nor the keeper owns: the caller has the
    # owner hold it before its own release goes out.
    maker, keeper = Maker.remote(), Keeper.remote()
    iris.get(keeper.delay_registrations.remote(1.5))
    box = iris.get(maker.make.remote())
    assert iris.get(keeper.keep.remote(box))
    del box
    gc.collect()
    assert iris.get(keeper.read.remote(), timeout=60) == "made elsewhere"
    iris.kill(keeper)
    iris.kill(maker)


def test_an_object_whose_owner_died_is_lost_not_waited_for(
        fresh_cluster: iris.ClusterContext) -> None:
    import os
    import signal

    @iris.remote
    def make() -> list:
        # The puts belong to this task's worker (its client owns them), not to the driver.
        return [iris.put("read before"), iris.put("never read"), os.getpid()]

    @iris.remote
    def read(x: str) -> str:
        return x

    (seen, unseen, pid) = iris.get(make.remote())
    assert iris.get(seen) == "read before"
    os.kill(pid, signal.SIGKILL)
    # Neither a get nor a task taking it waits for an owner that will never answer.
    with pytest.raises(iris.ObjectLostError, match="its owner .* is gone"):
        iris.get(unseen, timeout=20)  # a worker's death is news at once (not after a TTL)
    with pytest.raises(iris.ObjectLostError, match="its owner .* is gone"):
        iris.get(read.remote(unseen), timeout=20)
    # A value this process holds already stays readable, and usable as an argument.
    assert iris.get(seen) == "read before"
    assert iris.get(read.remote(seen), timeout=20) == "read before"
