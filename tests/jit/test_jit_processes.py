"""Process-level behaviour: numba stays unimported, the disk cache serves later processes,
and the examples run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from _jit_testing import REPO, run_python

pytestmark = pytest.mark.slow


def test_import_and_decorate_never_import_numba() -> None:
    code = textwrap.dedent("""
        import sys
        import iris
        import iris.jit

        @iris.offload
        def f(x):
            return x + 1

        @iris.offload(strategy="actor")
        def g(x):
            return x

        before = "numba" in sys.modules
        assert f(1) == 2
        print(before, "numba" in sys.modules)
    """)
    out = run_python(["-c", code]).stdout.split()
    assert out == ["False", "True"]


CACHE_SCRIPT = """
import json
import numpy as np
import iris

@iris.offload
def kernel(a, n):
    return sum(v * v for v in a) + sum(i for i in range(n) if i % 2 == 0)

result = kernel(np.arange(10.0), 7)
stats = kernel.statistics()
print(json.dumps({"result": result, "hits": stats.cache_hits, "misses": stats.cache_misses,
                  "compiled": stats.compiled}))
"""


def test_cache_reuses_compiled_code_across_processes(tmp_path: Path) -> None:
    script = tmp_path / "cached_kernel.py"
    script.write_text(CACHE_SCRIPT)
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}

    first = json.loads(run_python([str(script)], env=env).stdout)
    assert first == {"result": 297.0, "hits": 0, "misses": 1, "compiled": True}
    index_files = list((tmp_path / "numba-cache").rglob("*.nbi"))
    # The kernel and its two lifted helpers each have an index.
    assert len(index_files) == 3, index_files

    second = json.loads(run_python([str(script)], env=env).stdout)
    assert second == {"result": 297.0, "hits": 1, "misses": 0, "compiled": True}


def test_cache_false_writes_nothing(tmp_path: Path) -> None:
    script = tmp_path / "uncached_kernel.py"
    script.write_text(CACHE_SCRIPT.replace("@iris.offload\n", "@iris.offload(cache=False)\n"))
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    out = json.loads(run_python([str(script)], env=env).stdout)
    assert out["hits"] == 0 and out["misses"] == 0 and out["compiled"]
    assert not list(tmp_path.rglob("*.nbi"))


def test_jit_log_env_var(tmp_path: Path) -> None:
    script = tmp_path / "logged.py"
    script.write_text("import iris\n@iris.offload\ndef f(x):\n    return x * 2\nprint(f(3))\n")
    proc = run_python([str(script)], env={"IRIS_JIT_LOG": "1",
                                          "NUMBA_CACHE_DIR": str(tmp_path / "c")})
    assert proc.stdout.strip() == "6"
    assert "[iris][jit] f(int64) compiled in" in proc.stderr
    quiet = run_python([str(script)], env={"IRIS_JIT_LOG": "0",
                                           "NUMBA_CACHE_DIR": str(tmp_path / "c")})
    assert "[iris][jit]" not in quiet.stderr


@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "examples").glob(
    "offload_*.py")))
def test_example_runs(example: str, tmp_path: Path) -> None:
    proc = run_python([str(REPO / "examples" / example)],
                      env={"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}, timeout_s=100)
    assert proc.stdout.strip()
    assert "Traceback" not in proc.stderr


def test_actor_strategy_without_cluster_says_to_call_init() -> None:
    code = textwrap.dedent("""
        import sys
        import iris

        @iris.offload(strategy="actor")
        def f(x):
            return x

        for call in (lambda: f(1.0), lambda: f.remote(1.0), lambda: f.map([1.0])):
            try:
                call()
            except iris.NotInitializedError as exc:
                assert "iris.init()" in str(exc) and "'f'" in str(exc), exc
            else:
                raise AssertionError("no NotInitializedError")
        print("numba" in sys.modules)
    """)
    assert run_python(["-c", code]).stdout.strip() == "False"
