"""Actors on the cluster: a parameter store that tasks update and read.

Run:  python examples/actors.py [--workers N] [--steps N]

A ``Store`` actor holds a vector; each step, tasks compute updates from the current vector
(passing the actor's handle around) and the actor applies them in the order they arrive.
"""

from __future__ import annotations

import argparse

import numpy as np

import iris


@iris.remote
class Store:
    """A vector that many tasks update: one call at a time, so no locks."""

    def __init__(self, size: int) -> None:
        self.values = np.zeros(size)
        self.updates = 0

    def read(self) -> np.ndarray:
        return self.values

    def apply(self, delta: np.ndarray) -> int:
        self.values = self.values + delta
        self.updates += 1
        return self.updates


@iris.remote
def worker_step(store: iris.ActorHandle, seed: int) -> int:
    """Read the store, compute an update pulling it towards 1.0, and push it."""
    current = iris.get(store.read.remote())
    rng = np.random.default_rng(seed)
    delta = 0.1 * (1.0 - current) + rng.normal(0, 0.001, current.shape)
    return iris.get(store.apply.remote(delta))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20)
    opts = parser.parse_args()
    iris.init(num_workers=opts.workers)
    try:
        store = Store.options(name="store").remote(1000)
        for step in range(opts.steps):
            iris.get([worker_step.remote(store, step * 4 + i) for i in range(4)])
        values = iris.get(iris.get_actor("store").read.remote())
        updates = iris.get(store.apply.remote(np.zeros(1000)))
        print(f"updates applied {updates - 1}, mean value {values.mean():.3f}")
    finally:
        iris.shutdown()


if __name__ == "__main__":
    main()
