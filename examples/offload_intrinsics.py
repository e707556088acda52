"""The expression intrinsics of offloaded functions: reductions, loop control, math.

Everything here compiles with numba; none of these names needs importing (the imports
below only keep linters quiet).

Run: python examples/offload_intrinsics.py
"""

from __future__ import annotations

import numpy as np

import iris
from iris.jit import break_if, continue_on_nan, if_else, sum_while


@iris.offload
def clipped_energy(a, limit):
    # sum over an array with a predicate; stop at the first value above `limit`
    return sum(break_if(v > limit, v * v) for v in a if v > 0)


@iris.offload
def nan_mean(a):
    n = sum(1 for v in a if v == v)
    return sum(continue_on_nan(v) for v in a) / n if n else 0.0


@iris.offload
def odd_squares(n):
    return sum(i * i for i in range(1, n, 2))


@iris.offload
def collatz_steps(n):
    # a while reduction: count steps until 1
    return sum_while(k, n, k != 1, if_else(k % 2 == 0, k // 2, 3 * k + 1), 1)


@iris.offload
def wave(x):
    return if_else(x < 0, 0.0, sin(x) * exp(-x / 10) + cos(pi * x) / e)


def main() -> None:
    a = np.array([1.0, 2.0, -3.0, 4.0, 50.0, 6.0])
    print("clipped_energy =", clipped_energy(a, 10.0))          # 1 + 4 + 16 = 21
    print("nan_mean       =", nan_mean(np.array([1.0, np.nan, 3.0])))  # 2.0
    print("odd_squares    =", odd_squares(10))                   # 1+9+25+49+81 = 165
    print("collatz_steps  =", collatz_steps(27))                 # 111
    print("wave(1.5)      =", wave(1.5))
    for fn in (clipped_energy, nan_mean, odd_squares, collatz_steps, wave):
        assert fn.compiled, fn.fallback_reason


if __name__ == "__main__":
    main()
