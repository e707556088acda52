"""The head's table of cluster-wide actor names (iris/head/_names.py): pure, no sockets."""

from __future__ import annotations

import pytest

import iris
from iris.exceptions import NotInitializedError
from iris.head._names import MAX_LEASE_S, NameTable, NameTakenError, handle_request


def test_register_lookup_unregister() -> None:
    t = NameTable()
    e = t.register("db", "10.0.0.2:4000", 5, "ownerA", 5.0, now=0.0)
    assert (e.node, e.pid, e.owner) == ("10.0.0.2:4000", 5, "ownerA")
    assert t.lookup("db", now=1.0) == e
    assert t.lookup("nope", now=1.0) is None
    assert not t.unregister("db", "ownerB")          # only the owner removes it
    assert not t.unregister("db", "ownerA", pid=6)   # ... and only for that actor
    assert t.unregister("db", "ownerA", pid=5)
    assert t.lookup("db", now=1.0) is None
    assert not t.unregister("db", "ownerA")


def test_a_name_held_by_another_owner_is_a_conflict_naming_the_holder() -> None:
    t = NameTable()
    t.register("db", "10.0.0.2:4000", 5, "ownerA", 5.0, now=0.0)
    with pytest.raises(NameTakenError, match=r"pid 5 on node 10.0.0.2:4000") as info:
        t.register("db", "10.0.0.3:4000", 9, "ownerB", 5.0, now=1.0)
    assert info.value.holder.owner == "ownerA"
    assert isinstance(info.value, ValueError)
    # The owner itself may point its name at another of its actors.
    assert t.register("db", "10.0.0.2:4000", 7, "ownerA", 5.0, now=1.0).pid == 7


def test_names_vanish_when_the_owner_lease_runs_out_and_renewals_keep_them() -> None:
    t = NameTable()
    t.register("a", "n1:1", 1, "o1", 2.0, now=0.0)
    t.register("b", "n2:1", 2, "o2", 2.0, now=0.0)
    assert t.renew("o1", 2.0, now=1.5)               # o1 heartbeats, o2 is silent
    assert t.lookup("a", now=3.0) is not None
    assert t.lookup("b", now=3.0) is None
    assert not t.renew("o2", 2.0, now=3.0)           # forgotten: it must register again
    assert t.names_of("o2") == []
    # Once expired, another owner may take the name.
    t.register("b", "n3:1", 3, "o3", 2.0, now=3.0)
    assert t.lookup("b", now=3.0).owner == "o3"  # type: ignore[union-attr]
    assert sorted(t.expire(now=100.0)) == ["a", "b"]
    assert len(t) == 0


def test_drop_owner_removes_all_of_its_names_only() -> None:
    t = NameTable()
    for i, name in enumerate(["x", "y"]):
        t.register(name, "n1:1", i + 1, "o1", 5.0, now=0.0)
    t.register("z", "n2:1", 9, "o2", 5.0, now=0.0)
    assert t.drop_owner("o1") == ["x", "y"]
    assert t.drop_owner("o1") == []
    assert set(t.snapshot(now=0.0)) == {"z"}


def test_handle_request_ops_and_replies() -> None:
    t = NameTable()
    reg = {"op": "name.register", "name": "svc", "node": "h:1", "pid": 3, "owner": "o",
           "lease_s": 1.0}
    assert handle_request(t, "name.register", reg, 0.0) == {
        "ok": True, "name": "svc", "node": "h:1", "pid": 3}
    other = dict(reg, owner="p", pid=4, node="h:2")
    reply = handle_request(t, "name.register", other, 0.5)
    assert reply["conflict"] is True and "pid 3 on node h:1" in reply["error"]
    assert reply["holder"] == {"node": "h:1", "pid": 3, "owner": "o"}
    assert handle_request(t, "name.lookup", {"name": "svc"}, 0.5) == {
        "found": True, "node": "h:1", "pid": 3, "owner": "o"}
    assert handle_request(t, "name.list", {}, 0.5) == {"names": {"svc": {"node": "h:1",
                                                                         "pid": 3}}}
    assert handle_request(t, "name.renew", {"owner": "o", "lease_s": 1.0}, 0.9) == {
        "known": True, "names": 1}
    assert handle_request(t, "name.lookup", {"name": "svc"}, 1.8)["found"] is True
    assert handle_request(t, "name.lookup", {"name": "svc"}, 2.0) == {"found": False}
    assert handle_request(t, "name.renew", {"owner": "o"}, 2.0)["known"] is False
    assert handle_request(t, "name.register", other, 2.0)["ok"] is True
    assert handle_request(t, "name.unregister", {"name": "svc", "owner": "o"}, 2.0) == {
        "ok": False}
    assert handle_request(t, "name.drop", {"owner": "p"}, 2.0) == {"dropped": ["svc"]}


@pytest.mark.parametrize("op, body", [
    ("name.register", {"name": "", "node": "h:1", "pid": 1, "owner": "o"}),
    ("name.register", {"name": "n", "node": "h:1", "pid": 0, "owner": "o"}),
    ("name.register", {"name": "n", "node": "h:1", "pid": True, "owner": "o"}),
    ("name.register", {"name": "n", "node": "h:1", "pid": 2**64, "owner": "o"}),
    ("name.register", {"name": "n", "node": 5, "pid": 1, "owner": "o"}),
    ("name.register", {"name": "n", "node": "h:1", "pid": 1, "owner": "o", "lease_s": "x"}),
    ("name.register", {"name": "n", "node": "h:1", "pid": 1, "owner": "o",
                       "lease_s": float("nan")}),
    ("name.register", {"name": "x" * 2000, "node": "h:1", "pid": 1, "owner": "o"}),
    ("name.lookup", {"name": None}),
    ("name.unregister", {"name": "n"}),
    ("name.renew", {}),
    ("name.drop", {"owner": ["o"]}),
    ("name.bogus", {}),
])
def test_malformed_requests_get_an_error_reply(op: str, body: dict[str, object]) -> None:
    t = NameTable()
    reply = handle_request(t, op, body, 0.0)
    assert "error" in reply
    assert len(t) == 0


def test_leases_are_clamped() -> None:
    t = NameTable()
    body = {"name": "n", "node": "h:1", "pid": 1, "owner": "o", "lease_s": 1e9}
    handle_request(t, "name.register", body, 0.0)
    assert t.lookup("n", now=MAX_LEASE_S - 1) is not None
    assert t.lookup("n", now=MAX_LEASE_S + 1) is None


def test_global_names_outside_a_cluster_say_how_to_join_one() -> None:
    iris.shutdown()
    with iris.Runtime() as rt:
        with pytest.raises(NotInitializedError, match="iris.init"):
            rt.whereis_global("x")
        rt.spawn(lambda m: None)
        with pytest.raises(RuntimeError, match="listen"):
            rt.register_global("x", 1)
