"""Every example program runs and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=110)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_batch_compute_main_job() -> None:
    out = run("examples/batch_compute.py", "--samples", "400000", "--workers", "2")
    assert "pi ~= 3.1" in out
    assert "std 1.00" in out
    assert "done in" in out


def test_actors_example() -> None:
    out = run("examples/actors.py", "--workers", "2", "--steps", "10")
    assert "updates applied 40" in out
    mean = float(out.rsplit("mean value", 1)[1])
    assert 0.9 < mean < 1.0  # 40 steps of 10% towards 1.0 from 0.0
