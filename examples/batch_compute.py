"""Batch compute on the embedded local cluster: the README's main job.

Estimates pi by Monte Carlo in parallel tasks, then computes per-chunk statistics of a
large array shared once through the object store (workers read it without a copy).

Run:  python examples/batch_compute.py [--samples N] [--workers N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import iris


@iris.remote
def count_inside(seed: int, samples: int) -> int:
    """How many of ``samples`` random points in the unit square fall inside the circle."""
    rng = np.random.default_rng(seed)
    xy = rng.random((samples, 2))
    return int(np.count_nonzero((xy * xy).sum(axis=1) <= 1.0))


@iris.remote(num_returns=2)
def chunk_stats(data: np.ndarray, start: int, stop: int) -> tuple[float, float]:
    """Sum and sum of squares of one slice of a shared array."""
    part = data[start:stop]
    return float(part.sum()), float(np.dot(part, part))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000_000)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    t0 = time.perf_counter()
    ctx = iris.init(num_workers=args.workers)
    how = "started" if ctx.embedded else "joined"
    print(f"cluster {ctx.cluster_id} at {ctx.address} {how} in "
          f"{time.perf_counter() - t0:.3f} s")

    tasks = 64
    per_task = args.samples // tasks
    t1 = time.perf_counter()
    inside = iris.get([count_inside.remote(seed, per_task) for seed in range(tasks)])
    pi = 4.0 * sum(inside) / (per_task * tasks)
    print(f"pi ~= {pi:.5f} from {per_task * tasks:,} samples in {tasks} tasks "
          f"({time.perf_counter() - t1:.3f} s)")

    data = np.random.default_rng(7).standard_normal(8_000_000)
    shared = iris.put(data)  # 64 MB, stored once in shared memory
    bounds = np.linspace(0, data.size, 17, dtype=int)
    refs = [chunk_stats.remote(shared, int(a), int(b)) for a, b in zip(bounds, bounds[1:])]
    sums = iris.get([s for s, _ in refs])
    squares = iris.get([q for _, q in refs])
    mean = sum(sums) / data.size
    std = (sum(squares) / data.size - mean * mean) ** 0.5
    assert abs(mean - data.mean()) < 1e-9 and abs(std - data.std()) < 1e-9
    print(f"mean {mean:+.6f}, std {std:.6f} over {data.size:,} values in 16 chunks")

    iris.shutdown()
    print(f"done in {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
