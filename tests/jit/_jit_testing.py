"""Helpers shared by the offload tests."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]

#: Array element types every array construct is checked with (the issue's f64, f32, ints, bool).
ARRAY_DTYPES = [np.float64, np.float32, np.int64, np.int32, np.bool_]
BASE_VALUES = [0, 1, 2, 3, 7, 4, 9, 5, 6, 8, 3]


def sample(dtype: Any) -> np.ndarray[Any, Any]:
    """A small array of ``dtype`` with values that mean the same in every dtype."""
    if dtype is np.bool_:
        return np.array([v % 3 != 0 for v in BASE_VALUES], dtype=np.bool_)
    return np.array(BASE_VALUES, dtype=dtype)


def tolerance(*args: Any) -> float:
    """Relative tolerance: float32 inputs accumulate differently in numpy and numba."""
    for a in args:
        dtype = getattr(a, "dtype", None)
        if dtype == np.float32:
            return 1e-5
    return 1e-12


def assert_same(got: Any, want: Any, rtol: float = 1e-12) -> None:
    """``got`` (an offload result) equals ``want`` (plain Python's), with Python types."""
    if isinstance(want, np.ndarray) or isinstance(got, np.ndarray):
        assert isinstance(got, np.ndarray), f"expected an array, got {got!r}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, equal_nan=True)
        return
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{got!r} != {want!r}"
        for g, w in zip(got, want):
            assert_same(g, w, rtol)
        return
    assert not isinstance(got, np.generic), f"{got!r} is a numpy scalar, not a Python value"
    if isinstance(want, np.generic):
        want = want.item()
    if isinstance(want, float) or isinstance(got, float):
        if math.isnan(want):
            assert math.isnan(got), f"{got!r} != nan"
        else:
            assert math.isclose(got, want, rel_tol=rtol, abs_tol=rtol), f"{got!r} != {want!r}"
        return
    assert got == want, f"{got!r} != {want!r}"


def run_python(args: list[str], env: dict[str, str] | None = None, timeout_s: float = 90,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` with the repository importable; fail with its output if it fails."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [full_env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, *args], env=full_env, cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout_s)
    assert proc.returncode == 0, (f"python {' '.join(args)} exited with {proc.returncode}\n"
                                  f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc
