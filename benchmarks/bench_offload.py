"""Benchmark of @iris.offload against plain Python, numpy and hand-written numba.njit.

Four measurements, all in one run (issue 4, "Performance"):

1. a scalar kernel: per-call time in µs (plain Python, njit, iris jit, iris actor);
2. a streaming kernel (sum of squares) over N float64 in GB/s, beside the machine's
   streaming-read ceiling (numpy ``np.dot(x, x)``, multi-threaded BLAS on all cores);
3. a compute-bound kernel with ``.map`` on a cluster of 1 and of 2 workers;
4. first-call latency with a cold and a warm numba disk cache (fresh processes).

Run: python benchmarks/bench_offload.py [--n 100000000] [--skip-cluster]
Each figure is the best of a few repeats; record results in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

import iris
from iris.jit import prange

REPO = Path(__file__).resolve().parents[1]


# -- kernels ---------------------------------------------------------------------------


def scalar_py(x, y):
    return math.sqrt(x * x + y * y) + math.sin(x) * 0.5


@iris.offload
def scalar_iris(x, y):
    return sqrt(x * x + y * y) + sin(x) * 0.5


def sum_sq_py(a):
    s = 0.0
    for v in a:
        s += v * v
    return s


@iris.offload
def sum_sq_iris(a):
    s = 0.0
    for v in a:
        s += v * v
    return s


@iris.offload(parallel=True)
def sum_sq_iris_par(a):
    s = 0.0
    for i in prange(a.shape[0]):
        s += a[i] * a[i]
    return s


@iris.offload(parallel=True, fastmath=True)
def sum_sq_iris_par_fast(a):
    s = 0.0
    for i in prange(a.shape[0]):
        s += a[i] * a[i]
    return s


@numba.njit(parallel=True, fastmath=True, cache=True)
def sum_sq_njit_par_fast(a):
    s = 0.0
    for i in numba.prange(a.shape[0]):
        s += a[i] * a[i]
    return s


@iris.offload(strategy="actor")
def sum_sq_actor(a):
    s = 0.0
    for v in a:
        s += v * v
    return s


def heavy_py(a):
    s = 0.0
    for v in a:
        s += math.sin(v) * math.exp(-v) + math.sqrt(v)
    return s


@iris.offload(strategy="actor")
def heavy_actor(a):
    s = 0.0
    for v in a:
        s += sin(v) * exp(-v) + sqrt(v)
    return s


scalar_njit = numba.njit(cache=True)(scalar_py)
sum_sq_njit = numba.njit(cache=True)(sum_sq_py)
heavy_njit = numba.njit(cache=True)(heavy_py)


@numba.njit(parallel=True, cache=True)
def sum_sq_njit_par(a):
    s = 0.0
    for i in numba.prange(a.shape[0]):
        s += a[i] * a[i]
    return s


# -- helpers ---------------------------------------------------------------------------


def best(fn: Callable[[], Any], repeat: int = 5, number: int = 1) -> float:
    """Best time of one call, in seconds."""
    fn()  # warm up (compile)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<44} {value:>14}  {note}")


# -- 1. scalar -------------------------------------------------------------------------


def bench_scalar(cluster: bool) -> None:
    print("\n1. scalar kernel sqrt(x*x + y*y) + sin(x)/2: time per call")
    n = 100_000
    t_py = best(lambda: scalar_py(1.5, 2.5), number=n)
    t_nj = best(lambda: scalar_njit(1.5, 2.5), number=n)
    t_jit = best(lambda: scalar_iris(1.5, 2.5), number=n)
    row("plain Python", f"{t_py * 1e6:.3f} µs")
    row("numba.njit (hand-written)", f"{t_nj * 1e6:.3f} µs")
    row("iris offload jit", f"{t_jit * 1e6:.3f} µs",
        f"{t_jit / t_nj:.2f}x njit, +{(t_jit - t_nj) * 1e9:.0f} ns wrapper")
    if cluster:
        t_act = best(lambda: scalar_actor(1.5, 2.5), repeat=3, number=200)
        row("iris offload actor (round trip, blocking)", f"{t_act * 1e6:.1f} µs")


@iris.offload(strategy="actor")
def scalar_actor(x, y):
    return sqrt(x * x + y * y) + sin(x) * 0.5


# -- 2. streaming ----------------------------------------------------------------------


def bench_streaming(n: int, cluster: bool) -> None:
    print(f"\n2. streaming sum of squares over {n:,} float64 ({n * 8 / 1e9:.1f} GB): GB/s")
    x = np.random.default_rng(0).random(n)
    gb = x.nbytes / 1e9
    ceiling = gb / best(lambda: np.dot(x, x))
    row("ceiling: numpy np.dot(x, x), all cores", f"{ceiling:.1f} GB/s", "100%")

    def show(label: str, seconds: float, note: str = "") -> float:
        rate = gb / seconds
        row(label, f"{rate:.2f} GB/s", f"{rate / ceiling * 100:.0f}% of ceiling {note}")
        return seconds

    small = x[: 1_000_000]
    t_py = best(lambda: sum_sq_py(small), repeat=3) * (n / small.size)
    show("plain Python loop (timed on 1M, scaled)", t_py)
    show("numpy (x * x).sum()", best(lambda: (x * x).sum(), repeat=3))
    t_nj = show("numba.njit, 1 thread", best(lambda: sum_sq_njit(x)))
    t_jit = show("iris offload jit, 1 thread", best(lambda: sum_sq_iris(x)))
    print(f"  {'':<44} {'':>14}  iris jit / njit time: {t_jit / t_nj:.3f}x")
    t_njp = show("numba.njit parallel prange", best(lambda: sum_sq_njit_par(x)))
    t_jp = show("iris offload jit parallel=True", best(lambda: sum_sq_iris_par(x)))
    print(f"  {'':<44} {'':>14}  iris parallel / njit parallel time: {t_jp / t_njp:.3f}x")
    # fastmath lets the reduction be reassociated, hence vectorised, as BLAS's dot is.
    t_njf = show("numba.njit parallel prange fastmath", best(lambda: sum_sq_njit_par_fast(x)))
    t_jf = show("iris jit parallel=True fastmath=True", best(lambda: sum_sq_iris_par_fast(x)))
    print(f"  {'':<44} {'':>14}  iris / njit time (fastmath): {t_jf / t_njf:.3f}x")
    if cluster:
        t0 = time.perf_counter()
        ref = iris.put(x)
        t_put = time.perf_counter() - t0
        row("iris.put of the array (one copy into shm)", f"{gb / t_put:.2f} GB/s",
            f"{t_put * 1e3:.0f} ms")
        show("iris actor, 1 worker (array already put)",
             best(lambda: sum_sq_actor(ref), repeat=3))
        chunk_refs = [iris.put(c) for c in np.array_split(x, 2)]
        show("iris actor .map, 2 chunks on 2 workers",
             best(lambda: sum_sq_actor.map(chunk_refs, reduce=sum), repeat=3))
        show("iris actor, passing the array each call",
             best(lambda: sum_sq_actor(x), repeat=3), "(includes the copy into shm)")
        del ref, chunk_refs


# -- 3. compute-bound on workers ------------------------------------------------------


def _wait_for_workers(n: int, timeout_s: float = 30.0) -> None:
    from iris import _api

    deadline = time.monotonic() + timeout_s
    while len(_api._client.workers) < n:  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(_api._client.workers)} of {n} workers started")
        time.sleep(0.01)


def bench_compute(n: int) -> None:
    print(f"\n3. compute-bound sin*exp+sqrt over {n:,} float64, 8 chunks: seconds")
    x = np.random.default_rng(1).random(n)
    t_nj = best(lambda: heavy_njit(x), repeat=3)
    row("numba.njit in the driver, 1 thread", f"{t_nj:.3f} s")
    times = {}
    for workers in (1, 2):
        iris.init(num_workers=workers)
        try:
            _wait_for_workers(workers)  # else the warm-up may miss a worker still starting
            refs = [iris.put(c) for c in np.array_split(x, 8)]
            heavy_actor.map(refs)  # every worker compiles or loads its kernel
            heavy_actor.map(refs)
            times[workers] = best(lambda: heavy_actor.map(refs, reduce=sum), repeat=3)
            row(f"iris actor .map on {workers} worker(s)", f"{times[workers]:.3f} s")
            del refs
        finally:
            iris.shutdown()
    row("speed-up 2 workers vs 1", f"{times[1] / times[2]:.2f}x", "(goal >= 1.8x)")


# -- 4. first-call latency -------------------------------------------------------------


LATENCY_SCRIPT = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import iris
    t_iris = time.perf_counter() - t0
    assert "numba" not in sys.modules
    import numpy as np
    t0 = time.perf_counter()
    import numba
    t_numba = time.perf_counter() - t0

    @iris.offload
    def kernel(a, n):
        return sum(v * v for v in a) + sum(i for i in range(n) if i % 3 == 0)

    @numba.njit(cache=True)
    def hand(a, n):
        s = 0.0
        for v in a:
            s += v * v
        t = 0
        for i in range(n):
            if i % 3 == 0:
                t += i
        return s + t

    fn = kernel if sys.argv[1] == "iris" else hand
    a = np.arange(10.0)
    t0 = time.perf_counter()
    fn(a, 5)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn(a, 5)
    second = time.perf_counter() - t0
    print(json.dumps({"import_iris": t_iris, "import_numba": t_numba, "first": first,
                      "second": second}))
""")


def bench_first_call() -> None:
    print("\n4. first call in a fresh process (numba already imported), same kernel: ms")
    results: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "first_call.py"
        script.write_text(LATENCY_SCRIPT)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "cache"),
               "PYTHONPATH": str(REPO)}
        for which in ("njit", "iris"):
            for cache in ("cold", "warm"):
                out = subprocess.run([sys.executable, str(script), which], env=env,
                                     capture_output=True, text=True, check=True, timeout=300)
                results[which, cache] = json.loads(out.stdout)
    cold = results["njit", "cold"]
    row("import iris (numba not imported)", f"{cold['import_iris'] * 1e3:.1f} ms")
    row("import numba", f"{cold['import_numba'] * 1e3:.0f} ms")
    for which, label in (("njit", "numba.njit (hand-written)"),
                         ("iris", "iris offload (kernel + 2 helpers)")):
        for cache in ("cold", "warm"):
            r = results[which, cache]
            row(f"{label}, {cache} cache", f"{r['first'] * 1e3:.0f} ms",
                f"second call {r['second'] * 1e6:.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000_000, help="streaming array length")
    parser.add_argument("--compute-n", type=int, default=20_000_000)
    parser.add_argument("--skip-cluster", action="store_true")
    opts = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, "
          f"numba {numba.__version__}, numba threads {numba.get_num_threads()}")
    cluster = not opts.skip_cluster
    if cluster:
        iris.init(num_workers=2)
    try:
        bench_scalar(cluster)
        bench_streaming(opts.n, cluster)
    finally:
        if cluster:
            iris.shutdown()
    if cluster:
        bench_compute(opts.compute_n)
    bench_first_call()


if __name__ == "__main__":
    main()
