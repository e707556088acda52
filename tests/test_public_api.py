"""The public surface: what ``import iris`` offers, and that it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import iris


def test_all_is_sorted_and_resolvable() -> None:
    assert iris.__all__ == sorted(iris.__all__)
    for name in iris.__all__:
        assert getattr(iris, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        iris.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_light() -> None:
    code = ("import sys, iris; heavy = [m for m in ('numba', 'numpy', 'zmq', 'cloudpickle') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_exceptions_module_is_public() -> None:
    import iris.exceptions as ex

    assert issubclass(ex.GetTimeoutError, TimeoutError)
    assert issubclass(ex.TaskError, ex.IrisError)
    assert iris.WorkerCrashedError is ex.WorkerCrashedError
