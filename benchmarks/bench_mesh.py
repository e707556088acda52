"""Actor-mesh benchmarks: iris.Runtime beside pykka, in the same run.

Measures
  1. throughput: messages/s through one push actor, 1M messages sent from the main thread
     and counted when *handled* (the clock stops when the handler has seen the last one);
  2. ring: a token passed around a ring of 1,000 actors (hops/s);
  3. spawn: 100,000 actors spawned (time, and resident memory added).

pykka (ThreadingActor, one OS thread per actor) runs the same workloads at sizes it can
bear -- fewer messages, and spawns of a few thousand actors -- and the rates are compared.

Run:  python benchmarks/bench_mesh.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

import iris  # noqa: E402

try:
    import pykka
except ImportError:  # pragma: no cover - pykka is optional
    pykka = None


def _pykka_version() -> str:
    if pykka is None:
        return "missing"
    from importlib.metadata import version
    return version("pykka")


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


# -- iris ----------------------------------------------------------------------------------

def iris_throughput(n: int) -> float:
    with iris.Runtime() as rt:
        done = threading.Event()
        count = [0]

        def handler(msg: object) -> None:
            count[0] += 1
            if count[0] == n:
                done.set()

        pid = rt.spawn(handler)
        send = rt.send
        payload = b"x" * 16
        start = time.perf_counter()
        for _ in range(n):
            send(pid, payload)
        done.wait()
        return n / (time.perf_counter() - start)


def iris_ring(size: int, laps: int) -> float:
    with iris.Runtime() as rt:
        pids: list[int] = []
        done = threading.Event()
        send = rt.send

        def make(i: int) -> Callable[[int], None]:
            nxt = (i + 1) % size

            def handler(left: int) -> None:
                if i == 0:
                    if left == 0:
                        done.set()
                        return
                    left -= 1
                send(pids[nxt], left)
            return handler

        pids.extend(rt.spawn(make(i)) for i in range(size))
        start = time.perf_counter()
        send(pids[0], laps)
        done.wait()
        return size * laps / (time.perf_counter() - start)


def iris_spawn(n: int) -> tuple[float, float]:
    gc.collect()
    before = rss_mb()
    with iris.Runtime() as rt:
        start = time.perf_counter()
        spawn = rt.spawn

        def handler(msg: object) -> None:
            pass

        for _ in range(n):
            spawn(handler)
        elapsed = time.perf_counter() - start
        grown = rss_mb() - before
    return elapsed, grown


# -- pykka ---------------------------------------------------------------------------------

def pykka_throughput(n: int) -> float:
    done = threading.Event()

    class Counter(pykka.ThreadingActor):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def on_receive(self, message: object) -> None:
            self.count += 1
            if self.count == n:
                done.set()

    ref = Counter.start()
    payload = b"x" * 16
    start = time.perf_counter()
    for _ in range(n):
        ref.tell(payload)
    done.wait()
    rate = n / (time.perf_counter() - start)
    ref.stop()
    return rate


def pykka_ring(size: int, laps: int) -> float:
    done = threading.Event()
    refs: list[object] = []

    class Node(pykka.ThreadingActor):
        def __init__(self, i: int) -> None:
            super().__init__()
            self.i = i

        def on_receive(self, left: int) -> None:
            if self.i == 0:
                if left == 0:
                    done.set()
                    return
                left -= 1
            refs[(self.i + 1) % size].tell(left)  # type: ignore[attr-defined]

    refs.extend(Node.start(i) for i in range(size))
    start = time.perf_counter()
    refs[0].tell(laps)  # type: ignore[attr-defined]
    done.wait()
    rate = size * laps / (time.perf_counter() - start)
    pykka.ActorRegistry.stop_all()
    return rate


def pykka_spawn(n: int) -> tuple[float, float]:
    class Idle(pykka.ThreadingActor):
        def on_receive(self, message: object) -> None:
            pass

    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    for _ in range(n):
        Idle.start()
    elapsed = time.perf_counter() - start
    grown = rss_mb() - before
    pykka.ActorRegistry.stop_all()
    return elapsed, grown


# -- report --------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    args = parser.parse_args()
    q = 10 if args.quick else 1
    n_msgs, ring, laps, n_spawn = 1_000_000 // q, 1000, 100 // q, 100_000 // q
    p_msgs, p_laps, p_spawn = 100_000 // q, 10 // q or 1, 2000 // q

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, "
          f"Python {platform.python_version()}, pykka "
          f"{_pykka_version()}")

    rows: list[tuple[str, str, str, str]] = []

    t = iris_throughput(n_msgs)
    p = pykka_throughput(p_msgs) if pykka else None
    rows.append((f"push actor, msgs/s (iris {n_msgs:,} / pykka {p_msgs:,} msgs)",
                 f"{t:,.0f}", "-" if p is None else f"{p:,.0f}",
                 "-" if p is None else f"{t / p:.1f}x"))

    r = iris_ring(ring, laps)
    pr = pykka_ring(ring, p_laps) if pykka else None
    rows.append((f"ring of {ring:,}, hops/s (iris {laps} laps / pykka {p_laps})",
                 f"{r:,.0f}", "-" if pr is None else f"{pr:,.0f}",
                 "-" if pr is None else f"{r / pr:.1f}x"))

    st, sm = iris_spawn(n_spawn)
    if pykka:
        pt, pm = pykka_spawn(p_spawn)
        per_iris, per_pykka = st / n_spawn, pt / p_spawn
        rows.append((f"spawn: iris {n_spawn:,} actors / pykka {p_spawn:,}, seconds",
                     f"{st:.3f}", f"{pt:.3f}", f"{per_pykka / per_iris:.1f}x per actor"))
        rows.append(("spawn: memory added, MB", f"{sm:.1f}", f"{pm:.1f}",
                     f"{(pm / p_spawn) / max(sm / n_spawn, 1e-9):.1f}x per actor"))
    else:
        rows.append((f"spawn {n_spawn:,} actors, seconds", f"{st:.3f}", "-", "-"))
        rows.append(("spawn: memory added, MB", f"{sm:.1f}", "-", "-"))

    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'iris':>12}  {'pykka':>12}  {'iris/pykka':>18}")
    for name, a, b, ratio in rows:
        print(f"{name:<{width}}  {a:>12}  {b:>12}  {ratio:>18}")


if __name__ == "__main__":
    main()
