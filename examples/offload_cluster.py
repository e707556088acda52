"""Offload on the cluster: strategy="actor" runs kernels on the worker processes.

Run: python examples/offload_cluster.py
"""

from __future__ import annotations

import numpy as np

import iris


@iris.offload(strategy="actor")
def sum_sq(a):
    s = 0.0
    for v in a:
        s += v * v
    return s


@iris.offload(strategy="actor", return_type="int")
def count_above(a, threshold):
    return sum(1 for v in a if v > threshold)


def main() -> None:
    iris.init(num_workers=2)
    try:
        data = np.random.default_rng(0).random(2_000_000)
        print("sum_sq (one worker)   =", sum_sq(data))               # blocks, returns the value
        ref = sum_sq.remote(data[:1000])                             # an ObjectRef, like a task
        print("sum_sq.remote         =", iris.get(ref))
        total = sum_sq.map(np.array_split(data, 8), reduce=sum)      # 8 chunks over 2 workers
        print("sum_sq.map(8 chunks)  =", total, "numpy:", float(np.dot(data, data)))
        print("count_above.map       =", count_above.map(np.array_split(data, 4), 0.5))
    finally:
        iris.shutdown()


if __name__ == "__main__":
    main()
