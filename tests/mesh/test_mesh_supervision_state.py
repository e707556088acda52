"""The pure supervision state machine, driven with a fake clock."""

from __future__ import annotations

import pytest

from iris.mesh._supervision import (
    ONE_FOR_ALL,
    ONE_FOR_ONE,
    PERMANENT,
    REST_FOR_ONE,
    TEMPORARY,
    TRANSIENT,
    Restart,
    Shutdown,
    SupervisorState,
    Terminate,
    parse_restart,
    parse_strategy,
)


def factory() -> int:
    return 0


def _sup(strategy: str, n: int = 3, **kw: float) -> tuple[SupervisorState, list[int]]:
    sup = SupervisorState(**kw)  # type: ignore[arg-type]
    keys = [sup.add(10 + i, factory, PERMANENT, strategy) for i in range(n)]
    return sup, keys


def test_parse_names() -> None:
    assert parse_strategy("RestartOne") == ONE_FOR_ONE
    assert parse_strategy("restart_all") == ONE_FOR_ALL
    assert parse_strategy("rest-for-one") == REST_FOR_ONE
    with pytest.raises(ValueError, match="valid strategies"):
        parse_strategy("one_for_some")
    assert parse_restart("Transient") == TRANSIENT
    with pytest.raises(ValueError, match="valid types"):
        parse_restart("sometimes")


def test_one_for_one_restarts_only_the_child() -> None:
    sup, keys = _sup(ONE_FOR_ONE)
    assert sup.on_exit(11, "Crash", now=0.0) == [Restart(keys[1])]
    assert sup.pids() == [10, 12]
    assert sup.started(keys[1], 21) == []
    assert sup.pids() == [10, 21, 12]


def test_one_for_all_terminates_siblings_newest_first_then_restarts_all() -> None:
    sup, keys = _sup(ONE_FOR_ALL)
    actions = sup.on_exit(11, "Crash", now=0.0)
    assert actions == [Terminate(12), Terminate(10)] + [Restart(k) for k in keys]
    assert sup.pids() == []


def test_rest_for_one_restarts_it_and_the_younger_ones() -> None:
    sup, keys = _sup(REST_FOR_ONE)
    actions = sup.on_exit(11, "Crash", now=0.0)
    assert actions == [Terminate(12), Restart(keys[1]), Restart(keys[2])]
    assert sup.pids() == [10]


def test_restart_types() -> None:
    sup = SupervisorState()
    p = sup.add(1, factory, PERMANENT)
    t = sup.add(2, factory, TRANSIENT)
    sup.add(3, factory, TEMPORARY)
    sup.add(4, None)  # watch-only
    assert sup.on_exit(1, "Normal", 0.0) == [Restart(p)]
    assert sup.on_exit(2, "Normal", 0.0) == []
    assert sup.on_exit(3, "Crash", 0.0) == []
    assert sup.on_exit(4, "Crash", 0.0) == []
    assert [c.key for c in sup.children] == [p]
    t2 = sup.add(5, factory, TRANSIENT)
    assert sup.on_exit(5, "Killed", 0.0) == []
    t3 = sup.add(6, factory, TRANSIENT)
    assert sup.on_exit(6, "Crash", 0.0) == [Restart(t3)]
    assert t != t2


def test_one_for_all_drops_temporary_siblings() -> None:
    sup = SupervisorState()
    a = sup.add(1, factory, PERMANENT, ONE_FOR_ALL)
    sup.add(2, factory, TEMPORARY, ONE_FOR_ALL)
    c = sup.add(3, factory, TRANSIENT, ONE_FOR_ALL)
    actions = sup.on_exit(1, "Crash", 0.0)
    assert actions == [Terminate(3), Terminate(2), Restart(a), Restart(c)]
    assert [ch.key for ch in sup.children] == [a, c]


def test_intensity_exceeded_shuts_down() -> None:
    sup, keys = _sup(ONE_FOR_ONE, max_restarts=2, period_s=10.0)
    now = 0.0
    for i in range(2):
        assert sup.on_exit(10 if i == 0 else 30 + i, "Crash", now) == [Restart(keys[0])]
        sup.started(keys[0], 31 + i)
        now += 1.0
    actions = sup.on_exit(32, "Crash", now)
    assert len(actions) == 1 and isinstance(actions[0], Shutdown)
    assert actions[0].pids == (12, 11)  # newest first
    assert "intensity" in actions[0].reason
    assert not sup.alive
    assert sup.on_exit(11, "Crash", now) == []


def test_intensity_window_slides_with_the_clock() -> None:
    sup, keys = _sup(ONE_FOR_ONE, n=1, max_restarts=1, period_s=5.0)
    assert sup.on_exit(10, "Crash", 0.0) == [Restart(keys[0])]
    sup.started(keys[0], 20)
    # 6 s later the first restart is out of the window: allowed again.
    assert sup.on_exit(20, "Crash", 6.0) == [Restart(keys[0])]
    sup.started(keys[0], 21)
    assert isinstance(sup.on_exit(21, "Crash", 7.0)[0], Shutdown)


def test_failed_factory_retries_until_intensity() -> None:
    sup, keys = _sup(ONE_FOR_ONE, n=1, max_restarts=2, period_s=5.0)
    assert sup.on_exit(10, "Crash", 0.0) == [Restart(keys[0])]
    assert sup.start_failed(keys[0], 0.1, "boom") == [Restart(keys[0])]
    actions = sup.start_failed(keys[0], 0.2, "boom")
    assert isinstance(actions[0], Shutdown) and "boom" in actions[0].reason


def test_unknown_exit_is_ignored_and_validation() -> None:
    sup, _ = _sup(ONE_FOR_ONE)
    assert sup.on_exit(999, "Crash", 0.0) == []
    with pytest.raises(ValueError):
        SupervisorState(max_restarts=-1)
    with pytest.raises(ValueError):
        SupervisorState(period_s=0)
    assert sup.remove_pid(10) and not sup.remove_pid(10)
