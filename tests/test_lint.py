"""The package passes its linters: ruff (style and likely bugs) and mypy (types)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("tool", [["ruff", "check", "iris"], ["mypy", "iris"]],
                         ids=["ruff", "mypy"])
def test_iris_is_lint_clean(tool: list[str], tmp_path: object) -> None:
    env = dict(os.environ, MYPY_CACHE_DIR=os.path.join(str(tmp_path), "mypy"),
               RUFF_CACHE_DIR=os.path.join(str(tmp_path), "ruff"))
    out = subprocess.run([sys.executable, "-m", *tool], cwd=ROOT, capture_output=True,
                         text=True, timeout=110, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
