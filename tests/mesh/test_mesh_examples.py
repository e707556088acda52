"""Every program in examples/mesh runs to completion (exit status 0) as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "mesh").glob("*.py"))

# A long GIL switch interval makes "the main thread runs on until it blocks" hold even on a
# loaded machine, so README snippets that assume it (bounded_mailbox.py sends three messages
# before the actor may take the first) cannot flake. The programs are otherwise unchanged.
RUNNER = ("import runpy, sys; sys.setswitchinterval(1.0); "
          "runpy.run_path(sys.argv[1], run_name='__main__')")


def test_every_readme_example_has_a_program() -> None:
    assert len(EXAMPLES) >= 16


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout}\n{proc.stderr}"
