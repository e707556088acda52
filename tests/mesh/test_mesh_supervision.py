"""Supervisors in a running runtime: strategies, restart types, intensity, paths."""

from __future__ import annotations

import pytest
from _mesh_testing import wait_until

from iris.mesh import Runtime


def crashy(msg: object) -> object:
    if msg == b"crash":
        raise RuntimeError("asked to crash")
    return msg


class Factory:
    """Spawns crashy workers and remembers every PID it made."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.made: list[int] = []

    def __call__(self) -> int:
        pid = self.rt.spawn(crashy)
        self.made.append(pid)
        return pid


def _group(rt: Runtime, strategy: str, n: int = 3, path: str | None = None,
           restart: str = "permanent") -> list[Factory]:
    factories = [Factory(rt) for _ in range(n)]
    for f in factories:
        pid = f()
        if path is None:
            rt.supervise_with_factory(pid, f, strategy, restart=restart)
        else:
            rt.path_supervise_with_factory(path, pid, f, strategy, restart=restart)
    return factories


def test_one_for_one(rt: Runtime) -> None:
    fs = _group(rt, "one_for_one")
    old = [f.made[0] for f in fs]
    rt.send(old[1], b"crash")
    wait_until(lambda: len(fs[1].made) == 2)
    new = fs[1].made[1]
    assert rt.child_pids() == [old[0], new, old[2]]
    assert rt.is_alive(old[0]) and rt.is_alive(old[2]) and not rt.is_alive(old[1])
    assert rt.call(new, b"ok").result() == b"ok"


def test_one_for_all_stops_siblings(rt: Runtime) -> None:
    fs = _group(rt, "one_for_all")
    old = [f.made[0] for f in fs]
    rt.send(old[0], b"crash")
    wait_until(lambda: all(len(f.made) == 2 for f in fs))
    assert not any(rt.is_alive(p) for p in old)
    assert rt.child_pids() == [f.made[1] for f in fs]
    assert rt.children_count() == 3


def test_rest_for_one(rt: Runtime) -> None:
    fs = _group(rt, "rest_for_one")
    old = [f.made[0] for f in fs]
    rt.send(old[1], b"crash")
    wait_until(lambda: len(fs[1].made) == 2 and len(fs[2].made) == 2)
    assert rt.is_alive(old[0]) and not rt.is_alive(old[2])
    assert len(fs[0].made) == 1
    assert rt.child_pids() == [old[0], fs[1].made[1], fs[2].made[1]]


def test_permanent_restarts_even_after_stop(rt: Runtime) -> None:
    (f,) = _group(rt, "one_for_one", n=1)
    rt.stop(f.made[0])
    assert len(f.made) == 2  # restarted synchronously by the stopping thread
    assert rt.child_pids() == [f.made[1]]


def test_transient_restarts_only_after_a_crash(rt: Runtime) -> None:
    (f,) = _group(rt, "one_for_one", n=1, restart="transient")
    rt.send(f.made[0], b"crash")
    wait_until(lambda: len(f.made) == 2)
    rt.stop(f.made[1])
    assert len(f.made) == 2 and rt.child_pids() == []


def test_temporary_is_never_restarted(rt: Runtime) -> None:
    (f,) = _group(rt, "one_for_one", n=1, restart="temporary")
    rt.send(f.made[0], b"crash")
    wait_until(lambda: not rt.is_alive(f.made[0]))
    assert rt.child_pids() == [] and len(f.made) == 1


def test_intensity_limit_makes_the_supervisor_exit() -> None:
    with Runtime(max_restarts=2, restart_period_s=60.0) as rt:
        watcher = rt.spawn_observed_handler()
        sup = rt.supervisor_pid()
        assert sup is not None and rt.monitor(watcher, sup)
        fs = _group(rt, "one_for_one", n=2)
        for _ in range(3):
            rt.send(fs[0].made[-1], b"crash")
            current = len(fs[0].made)
            wait_until(lambda: len(fs[0].made) > current or not rt.is_alive(sup))
        wait_until(lambda: not rt.is_alive(sup))
        assert len(fs[0].made) == 3  # two restarts, then it gave up
        assert not rt.is_alive(fs[1].made[0])  # siblings stopped too
        wait_until(lambda: rt.get_messages(watcher))
        (msg,) = rt.get_messages(watcher)
        assert msg.type_name == "EXIT" and msg.reason == "Crash"
        assert "intensity" in msg.metadata["error"]
        # A fresh global supervisor takes over.
        assert rt.child_pids() == [] and rt.supervisor_pid() != sup


def test_broken_factory_exhausts_intensity() -> None:
    with Runtime(max_restarts=3, restart_period_s=60.0) as rt:
        calls = []

        def broken() -> int:
            calls.append(1)
            raise OSError("cannot start")

        pid = rt.spawn(crashy)
        sup = rt.supervisor_pid()
        rt.supervise_with_factory(pid, broken, "one_for_one")
        rt.stop(pid)
        assert len(calls) == 3 and not rt.is_alive(sup)  # type: ignore[arg-type]


def test_path_supervisor(rt: Runtime) -> None:
    pid = rt.spawn_with_path_observed(10, "/svc/test/one")
    rt.create_path_supervisor("/svc/test")
    rt.path_supervisor_watch("/svc/test", pid)
    assert rt.path_supervisor_children("/svc/test") == [pid]
    rt.stop(pid)  # watch-only: forgotten, not restarted
    assert rt.path_supervisor_children("/svc/test") == []
    fs = _group(rt, "one_for_all", n=2, path="/svc/pay")
    rt.send(fs[1].made[0], b"crash")
    wait_until(lambda: all(len(f.made) == 2 for f in fs))
    assert rt.path_supervisor_children("/svc/pay") == [f.made[1] for f in fs]
    assert rt.child_pids() == []  # the global supervisor is not involved
    rt.remove_path_supervisor("/svc/pay")
    assert rt.path_supervisor_children("/svc/pay") == []
    assert all(rt.is_alive(f.made[1]) for f in fs)  # children keep running
    assert rt.path_supervisor_children("/nothing") == []


def test_stopping_a_supervisor_stops_its_children(rt: Runtime) -> None:
    fs = _group(rt, "one_for_one", n=2, path="/svc/x")
    sup = rt.supervisor_pid("/svc/x")
    assert sup is not None
    rt.stop(sup)
    assert not any(rt.is_alive(f.made[0]) for f in fs)
    assert rt.path_supervisor_children("/svc/x") == []
    assert all(len(f.made) == 1 for f in fs)


def test_escalation_to_a_parent_supervisor() -> None:
    with Runtime() as rt:
        def make_group() -> int:
            rt.create_path_supervisor("/inner", max_restarts=0, period_s=60.0)
            _group(rt, "one_for_one", n=1, path="/inner")
            pid = rt.supervisor_pid("/inner")
            assert pid is not None
            return pid

        inner = make_group()
        first_child = rt.path_supervisor_children("/inner")[0]
        rt.supervise_with_factory(inner, make_group, "one_for_one")
        rt.send(first_child, b"crash")  # inner gives up at once and exits (Crash)
        wait_until(lambda: rt.child_pids() and rt.child_pids()[0] != inner)
        new_inner = rt.child_pids()[0]
        assert rt.is_alive(new_inner) and rt.supervisor_pid("/inner") == new_inner
        assert len(rt.path_supervisor_children("/inner")) == 1


def test_watch_path_and_errors(rt: Runtime) -> None:
    a = rt.spawn(lambda m: None, 10)
    b = rt.spawn(lambda m: None, 10)
    rt.register_path("/system/service/one", a)
    rt.register_path("/system/service/two/deep", b)
    rt.watch_path("/system/service")
    assert rt.child_pids() == [a] and rt.children_count() == 1
    with pytest.raises(ValueError, match="not a live actor"):
        rt.supervise_with_factory(99999, lambda: 1, "one_for_one")
    with pytest.raises(TypeError, match="factory must be callable"):
        rt.supervise_with_factory(a, "nope", "one_for_one")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid strategies"):
        rt.supervise_with_factory(a, lambda: 1, "sometimes")
