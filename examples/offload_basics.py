"""Offload basics: compile numeric functions with @iris.offload (strategy="jit").

Run: python examples/offload_basics.py
"""

from __future__ import annotations

import logging
from decimal import Decimal

import numpy as np

import iris
from iris.jit import prange


@iris.offload(return_type="float")
def vector_magnitude(x: float, y: float, z: float) -> float:
    return (x * x + y * y + z * z) ** 0.5


@iris.offload
def sum_sq(a):
    s = 0.0
    for v in a:
        s += v * v
    return s


@iris.offload(parallel=True)
def parallel_sum_sq(a):
    s = 0.0
    for i in prange(a.shape[0]):
        s += a[i] * a[i]
    return s


@iris.offload
def exact_half(x):
    # Decimal is beyond numba: this function runs as plain Python, with a warning logged once.
    return float(Decimal(x) / 2)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print("vector_magnitude(1, 2, 3) =", vector_magnitude(1.0, 2.0, 3.0))
    print("compiled signatures:", vector_magnitude.signatures)

    a = np.arange(1_000_000, dtype=np.float64)
    print("sum_sq(f64)         =", sum_sq(a))
    print("sum_sq(f32)         =", sum_sq(a.astype(np.float32)))  # a second specialisation
    print("parallel_sum_sq     =", parallel_sum_sq(a), "numpy:", float(np.dot(a, a)))
    print("sum_sq signatures   =", [str(s) for s in sum_sq.signatures])

    print("exact_half(3.0)     =", exact_half(3.0))
    print("compiled:", exact_half.compiled, "| reason:", (exact_half.fallback_reason or "")[:60])


if __name__ == "__main__":
    main()
