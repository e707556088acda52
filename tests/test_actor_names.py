"""Cluster-wide actor names and detached actors: the head's table, and drivers sharing
actors by name."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

import iris
from iris.head._actor_names import ActorEntry, ActorNames, handle_actor_request
from iris.testing import local_cluster, wait_until


def _entry(actor_id: str = "a1", worker: str = "w1", owner: bytes = b"c1",
           detached: bool = False) -> ActorEntry:
    return ActorEntry(actor_id, worker, owner, detached, ["incr"], "Counter")


def test_the_table_registers_updates_and_drops() -> None:
    t = ActorNames()
    assert t.register("x", _entry())
    assert not t.register("x", _entry(actor_id="a2"))  # another actor: refused
    assert t.register("x", _entry(worker="w2"))  # the same actor, restarted elsewhere
    assert t.entries["x"].worker_id == "w2"
    t.unregister("x", "a2")  # not its actor: ignored
    assert "x" in t.entries
    t.register("d", _entry(actor_id="d1", detached=True))
    t.register("y", _entry(actor_id="y1", worker="w9"))
    assert sorted(t.drop_owner(b"c1")) == ["x", "y"]  # the detached one stays
    assert list(t.entries) == ["d"]
    assert t.drop_worker("w2") == [] and t.drop_worker("w1") == ["d"]


@pytest.mark.parametrize("body", [
    {"name": ""}, {"name": 5}, {"name": "x" * 2000}, {"name": "x", "actor_id": ""},
    {"name": "x", "actor_id": "a", "worker_id": "w", "methods": "incr"},
    {"name": "x", "actor_id": "a", "worker_id": "w", "detached": "yes"},
    *[{"name": "x", "actor_id": "a", "worker_id": "w", "detached": True, "restart": r}
      for r in ("spec", {"blob": "!!", "args": "QQ==", "restarts": 1},
                {"blob": "QQ==", "args": "", "restarts": 1},
                {"blob": "QQ==", "args": "QQ==", "restarts": -1},
                {"blob": "QQ==", "args": "QQ==", "restarts": "1"})],
])
def test_malformed_requests_get_an_error_reply(body: dict) -> None:
    t = ActorNames()
    reply = handle_actor_request(t, "actor.register", body, b"c")
    assert "error" in reply and not t.entries
    assert "error" in handle_actor_request(t, "actor.nonsense", {}, b"c")


def test_a_restart_spec_is_kept_for_detached_actors_only() -> None:
    t = ActorNames()
    spec = {"blob": "QkxPQg==", "args": "QVJHUw==", "restarts": 2}
    for name, detached in (("kept", True), ("ignored", False)):
        assert handle_actor_request(t, "actor.register", {
            "name": name, "actor_id": name, "worker_id": "w", "detached": detached,
            "restart": spec}, b"c") == {"ok": True}
    assert t.entries["kept"].restart == (b"BLOB", b"ARGS", 2)
    assert t.entries["ignored"].restart is None
    t.entries["kept"].restarting = True  # the head is making it again: not found meanwhile
    assert handle_actor_request(t, "actor.lookup", {"name": "kept"}, b"c") == {
        "found": False, "restarting": True}


def test_lookup_and_list() -> None:
    t = ActorNames()
    ok = handle_actor_request(t, "actor.register", {
        "name": "n", "actor_id": "a", "worker_id": "w", "methods": ["m"], "cls": "C"}, b"c")
    assert ok == {"ok": True}
    clash = handle_actor_request(t, "actor.register", {
        "name": "n", "actor_id": "b", "worker_id": "w"}, b"c")
    assert clash.get("conflict") is True
    found = handle_actor_request(t, "actor.lookup", {"name": "n"}, b"other")
    assert found["found"] and found["actor_id"] == "a" and found["methods"] == ["m"]
    assert handle_actor_request(t, "actor.lookup", {"name": "zz"}, b"c") == {"found": False}
    assert handle_actor_request(t, "actor.list", {}, b"c")["names"]["n"]["worker_id"] == "w"


@pytest.fixture(scope="module")
def cluster() -> Iterator[iris.ClusterContext]:
    with local_cluster(num_workers=2) as ctx:
        yield ctx


def _driver(address: str, code: str) -> str:
    """Run ``code`` in another driver joined to the cluster; its printed output."""
    prelude = ("import iris, sys\n"
               "iris.init(address=sys.argv[1])\n"
               "@iris.remote\n"
               "class Box:\n"
               "    def __init__(self, v=0):\n"
               "        self.v = v\n"
               "    def add(self, n):\n"
               "        self.v += n\n"
               "        return self.v\n")
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), address],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@iris.remote
class Box:
    def __init__(self, v: int = 0) -> None:
        self.v = v

    def add(self, n: int) -> int:
        self.v += n
        return self.v


def _gone(name: str) -> bool:
    try:
        iris.get_actor(name)
    except ValueError:
        return True
    return False


def test_another_driver_reaches_a_named_actor(cluster: iris.ClusterContext) -> None:
    box = Box.options(name="shared-box").remote(10)
    assert iris.get(box.add.remote(1)) == 11
    out = _driver(cluster.address, """
        b = iris.get_actor("shared-box")
        print(iris.get(b.add.remote(100)))
        try:
            Box.options(name="shared-box").remote()
        except ValueError as exc:
            print("taken:", "exists already" in str(exc))
        iris.shutdown()
    """)
    assert out.splitlines() == ["111", "taken: True"]
    assert iris.get(box.add.remote(1)) == 112  # the same instance
    iris.kill(box)
    wait_until(lambda: _gone("shared-box"), 10, "the name is released")


def test_a_detached_actor_outlives_its_creator(cluster: iris.ClusterContext) -> None:
    out = _driver(cluster.address, """
        b = Box.options(name="keeper", lifetime="detached").remote(5)
        print(iris.get(b.add.remote(2)))
        iris.shutdown()
    """)
    assert out == "7"
    keeper = iris.get_actor("keeper")
    assert iris.get(keeper.add.remote(1)) == 8  # its state lived on
    iris.kill(keeper)
    wait_until(lambda: _gone("keeper"), 10, "the name is released")
    with pytest.raises(iris.ActorDiedError):
        iris.get(keeper.add.remote(1))


def test_a_named_actor_that_is_not_detached_dies_with_its_creator(
        cluster: iris.ClusterContext) -> None:
    out = _driver(cluster.address, """
        b = Box.options(name="temporary").remote()
        print(iris.get(b.add.remote(3)))
        print(b._actor_id, b._record.worker_id)
        iris.shutdown()
    """)
    value, where = out.splitlines()
    assert value == "3"
    wait_until(lambda: _gone("temporary"), 10, "the creator's goodbye drops the name")
    # And the instance itself was killed on the creator's way out.
    from iris._actors import ActorHandle

    actor_id, worker_id = where.split()
    orphan = ActorHandle(actor_id, "", worker_id, "temporary", {"add"})
    with pytest.raises(iris.ActorDiedError, match="does not live"):
        iris.get(orphan.add.remote(1))


def test_unknown_names_and_bad_lifetimes(cluster: iris.ClusterContext) -> None:
    with pytest.raises(ValueError, match="no actor named"):
        iris.get_actor("never-made")
    with pytest.raises(ValueError, match="non-empty str"):
        iris.get_actor("")
    with pytest.raises(ValueError, match="lifetime"):
        Box.options(lifetime="forever")


def test_a_restarted_named_actor_keeps_its_name() -> None:
    import os
    import signal

    from iris import _api

    with local_cluster(num_workers=1):  # the restart waits for the replacement worker
        box = Box.options(name="phoenix", max_restarts=1).remote(1)
        pid = iris.get(iris.remote(os.getpid).remote())
        first = iris.get_actor("phoenix")
        assert iris.get(first.add.remote(1)) == 2
        old_worker = _api._client.head_request({"op": "actor.lookup", "name": "phoenix"})
        os.kill(pid, signal.SIGKILL)

        def moved() -> bool:
            reply = _api._client.head_request({"op": "actor.lookup", "name": "phoenix"})
            return bool(reply.get("found")) and reply["worker_id"] != old_worker["worker_id"]

        wait_until(moved, 30, "the name follows the actor to its new worker")
        wait_until(lambda: iris.get(box.add.remote(0), timeout=30) == 1, 30,
                   "the restarted actor answers")


def test_only_plain_small_constructor_arguments_are_kept_for_the_head() -> None:
    import numpy as np

    from iris._actors import _restart_spec

    spec = _restart_spec(b"BLOB", (5, "x"), {"k": [1, 2]})
    assert spec is not None and set(spec) == {"blob", "args"}
    ref = iris.ObjectRef(1, "tcp://127.0.0.1:1#0000000000000000", counted=False)
    assert _restart_spec(b"BLOB", ([ref],), {}) is None  # a ref: its owner may be gone
    assert _restart_spec(b"BLOB", (np.arange(10.0),), {}) is None  # out-of-band buffers
    assert _restart_spec(b"B" * (2 << 20), (1,), {}) is None  # too large to keep
