"""Core benchmarks: iris tasks and objects beside raw ZeroMQ, a process pool, Ray and Dask.

Every figure is measured in this run, on this machine; ratios compare iris with each
baseline measured here too (baselines that are not installed are skipped).

Run:  python benchmarks/bench_core.py [--quick] [--only NAME[,NAME]]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import numpy as np

WORKERS = 2


# --------------------------------------------------------------------------- helpers

def machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.node()}: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:
        return False


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def best_of(n: int, fn: Callable[[], Any]) -> float:
    return min(timed(fn) for _ in range(n))


def run_script(code: str) -> dict[str, Any]:
    """Run code in a fresh interpreter; it prints one JSON line as its last output."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


results: dict[str, dict[str, Any]] = {}


def record(bench: str, system: str, value: float, unit: str) -> None:
    results.setdefault(bench, {})[system] = (value, unit)
    print(f"  {bench:<20} {system:<24} {value:>14,.3f} {unit}", flush=True)


# --------------------------------------------------------------------------- benchmarks

def bench_cold_start() -> None:
    print("cold start: fresh process, import, init, first result (s; best of 3)")
    # Compiled to bytecode first, as a regular install is (pip compiles what it installs,
    # so Ray's and Dask's modules are): an editable install under PYTHONDONTWRITEBYTECODE=1
    # would compile iris from source in every process, ~100 ms here.
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("iris")
    if spec is not None and spec.submodule_search_locations:
        compileall.compile_dir(list(spec.submodule_search_locations)[0], quiet=1)
    iris_code = """
        import time; t = time.perf_counter()
        import iris
        iris.init(num_workers=2)
        f = iris.remote(lambda: 1)
        assert iris.get(f.remote()) == 1
        d = time.perf_counter() - t
        iris.shutdown(); import json; print(json.dumps({"s": d}))
    """
    pool_code = """
        import time; t = time.perf_counter()
        import concurrent.futures as cf
        def one(): return 1
        if __name__ == "__main__":
            ex = cf.ProcessPoolExecutor(2)
            assert ex.submit(one).result() == 1
            d = time.perf_counter() - t
            ex.shutdown(); import json; print(json.dumps({"s": d}))
    """
    record("cold start", "iris", min(run_script(iris_code)["s"] for _ in range(3)), "s")
    record("cold start", "process pool", min(run_script(pool_code)["s"] for _ in range(3)),
           "s")
    if have("ray"):
        ray_code = """
            import time; t = time.perf_counter()
            import ray
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            f = ray.remote(lambda: 1)
            assert ray.get(f.remote()) == 1
            d = time.perf_counter() - t
            ray.shutdown(); import json; print(json.dumps({"s": d}))
        """
        record("cold start", "ray", run_script(ray_code)["s"], "s")
    if have("distributed"):
        dask_code = """
            import time; t = time.perf_counter()
            from distributed import Client, LocalCluster
            if __name__ == "__main__":
                c = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                        dashboard_address=None))
                assert c.submit(lambda: 1).result() == 1
                d = time.perf_counter() - t
                c.close(); import json; print(json.dumps({"s": d}))
        """
        record("cold start", "dask", run_script(dask_code)["s"], "s")


def cluster_memory_mb() -> tuple[float, float, int]:
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    rss = uss = 0
    for p in procs:
        info = p.memory_full_info()
        rss += info.rss
        uss += info.uss
    return rss / 1e6, uss / 1e6, len(procs)


def bench_idle_memory() -> None:
    print("idle memory of the whole local cluster (driver + every process it started)")
    code = """
        import json, time, gc
        import iris
        iris.init(num_workers=2)
        f = iris.remote(lambda: 1)
        iris.get([f.remote() for _ in range(10)])
        import sys; sys.path.insert(0, "benchmarks")
        from bench_core import cluster_memory_mb
        from iris.testing import wait_until
        wait_until(lambda: len(iris._api._client.workers) == 2, 30)
        rss, uss, n = cluster_memory_mb()
        iris.shutdown(); print(json.dumps({"rss": rss, "uss": uss, "n": n}))
    """
    r = run_script(code)
    record("idle memory", f"iris RSS ({r['n']} procs)", r["rss"], "MB")
    record("idle memory", f"iris USS ({r['n']} procs)", r["uss"], "MB")
    pool = """
        import json, concurrent.futures as cf, sys
        sys.path.insert(0, "benchmarks")
        from bench_core import cluster_memory_mb
        def one(): return 1
        if __name__ == "__main__":
            ex = cf.ProcessPoolExecutor(2)
            [ex.submit(one).result() for _ in range(10)]
            rss, uss, n = cluster_memory_mb(); ex.shutdown()
            print(json.dumps({"rss": rss, "uss": uss, "n": n}))
    """
    r = run_script(pool)
    record("idle memory", f"pool RSS ({r['n']} procs)", r["rss"], "MB")


def bench_noop_throughput(iris: Any, n: int) -> None:
    print(f"{n:,} async no-op tasks (tasks/s)")
    noop = iris.remote(lambda: None)
    iris.get([noop.remote() for _ in range(200)])  # warm: function shipped to every worker
    t = best_of(3, lambda: iris.get([noop.remote() for _ in range(n)]))
    record("no-op tasks/s", "iris", n / t, "tasks/s")
    with cf.ProcessPoolExecutor(WORKERS) as ex:
        list(ex.map(_noop, range(100)))
        t = best_of(3, lambda: [f.result() for f in [ex.submit(_noop, 0) for _ in range(n)]])
        record("no-op tasks/s", "process pool", n / t, "tasks/s")


def _noop(_: Any = None) -> None:
    return None


def _sum_sq(a: np.ndarray) -> float:
    return float(np.dot(a, a))


def zmq_round_trip_us(n: int) -> list[float]:
    """Raw DEALER/ROUTER echo with a second process: the floor for a sync round trip."""
    import zmq

    code = """
        import zmq, sys
        ctx = zmq.Context(); s = ctx.socket(zmq.ROUTER); port = s.bind_to_random_port("tcp://127.0.0.1")
        print(port, flush=True)
        while True:
            m = s.recv_multipart()
            if m[1] == b"stop": break
            s.send_multipart(m)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(f"tcp://127.0.0.1:{port}")
    payload = b"x" * 64
    for _ in range(200):
        s.send(payload)
        s.recv()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        s.send(payload)
        s.recv()
        samples.append((time.perf_counter() - t) * 1e6)
    s.send(b"stop")
    s.close(0)
    ctx.term()
    proc.wait(10)
    proc.stdout.close()
    return samples


def unix_round_trip_us(n: int) -> list[float]:
    """Raw Unix stream socket echo with a second process, both ends blocking in recv: the
    floor of iris's same-machine link (which is such a socket, not ZeroMQ)."""
    import socket
    import tempfile

    path = os.path.join(tempfile.mkdtemp(prefix="iris-bench-"), "s")
    code = f"""
        import socket
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); srv.bind({path!r})
        srv.listen(1); print("ready", flush=True)
        c, _ = srv.accept()
        while True:
            m = c.recv(65536)
            if not m or m == b"stop": break
            c.sendall(m)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    payload = b"x" * 64
    for _ in range(200):
        s.sendall(payload)
        s.recv(65536)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(payload)
        s.recv(65536)
        samples.append((time.perf_counter() - t) * 1e6)
    s.sendall(b"stop")
    s.close()
    proc.wait(10)
    proc.stdout.close()
    os.unlink(path)
    os.rmdir(os.path.dirname(path))
    return samples


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def bench_round_trip(iris: Any, n: int) -> None:
    print(f"sync task round trip, {n} calls (µs)")
    noop = iris.remote(lambda: None)
    for _ in range(100):
        iris.get(noop.remote())
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        iris.get(noop.remote())
        samples.append((time.perf_counter() - t) * 1e6)
    record("round trip median", "iris", statistics.median(samples), "µs")
    record("round trip p99", "iris", _pct(samples, 0.99), "µs")
    z = zmq_round_trip_us(n)
    record("round trip median", "raw zmq", statistics.median(z), "µs")
    record("round trip p99", "raw zmq", _pct(z, 0.99), "µs")
    u = unix_round_trip_us(n)
    record("round trip median", "raw unix socket", statistics.median(u), "µs")
    with cf.ProcessPoolExecutor(WORKERS) as ex:
        ex.submit(_noop).result()
        ps = []
        for _ in range(n):
            t = time.perf_counter()
            ex.submit(_noop).result()
            ps.append((time.perf_counter() - t) * 1e6)
        record("round trip median", "process pool", statistics.median(ps), "µs")


def bench_big_argument(iris: Any) -> None:
    print("a task with a 100 MB numpy argument (ms; best of 5)")
    a = np.random.default_rng(0).random(100_000_000 // 8)
    first = iris.remote(lambda x: x[0])
    iris.get(first.remote(a[:10]))
    t = best_of(5, lambda: iris.get(first.remote(a)))
    record("100 MB argument", "iris", t * 1e3, "ms")
    with cf.ProcessPoolExecutor(WORKERS) as ex:
        ex.submit(_first, a[:10]).result()
        t = best_of(5, lambda: ex.submit(_first, a).result())
        record("100 MB argument", "process pool", t * 1e3, "ms")


def _first(x: np.ndarray) -> float:
    return float(x[0])


def bench_put_get(iris: Any) -> None:
    print("put and get of a 200 MB array")
    a = np.random.default_rng(1).random(200_000_000 // 8)
    puts, gets = [], []
    for _ in range(5):
        gc.collect()
        t = time.perf_counter()
        ref = iris.put(a)
        puts.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = iris.get(ref)
        gets.append(time.perf_counter() - t)
        assert b.shape == a.shape and not b.flags.writeable
        del ref, b
    record("put 200 MB", "iris", a.nbytes / min(puts) / 1e9, "GB/s")
    record("put 200 MB, first", "iris (fresh pages)", a.nbytes / puts[0] / 1e9, "GB/s")
    record("get 200 MB", "iris", min(gets) * 1e3, "ms")
    t = best_of(5, lambda: a.copy())
    record("put 200 MB", "numpy copy (floor)", a.nbytes / t / 1e9, "GB/s")


def bench_array_tasks(iris: Any) -> None:
    print("2,000 tasks, each the sum of squares of its own 10,000-float array (s; best of 3)")
    arrays = [np.random.default_rng(i).random(10_000) for i in range(2000)]
    sum_sq = iris.remote(_sum_sq)
    iris.get([sum_sq.remote(arrays[i]) for i in range(50)])
    t = best_of(3, lambda: iris.get([sum_sq.remote(x) for x in arrays]))
    record("2,000 array tasks", "iris", t, "s")
    with cf.ProcessPoolExecutor(WORKERS) as ex:
        list(ex.map(_sum_sq, arrays[:50]))
        t = best_of(3, lambda: [f.result() for f in [ex.submit(_sum_sq, x) for x in arrays]])
        record("2,000 array tasks", "process pool", t, "s")
    t = best_of(3, lambda: [_sum_sq(x) for x in arrays])
    record("2,000 array tasks", "plain python loop", t, "s")


def bench_ray(n: int) -> None:
    if not have("ray"):
        print("ray: not installed, skipped")
        return
    import ray

    print("ray (same run)")
    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    try:
        noop = ray.remote(lambda: None)
        ray.get([noop.remote() for _ in range(200)])
        t = best_of(3, lambda: ray.get([noop.remote() for _ in range(n)]))
        record("no-op tasks/s", "ray", n / t, "tasks/s")
        samples = []
        for _ in range(300):
            t0 = time.perf_counter()
            ray.get(noop.remote())
            samples.append((time.perf_counter() - t0) * 1e6)
        record("round trip median", "ray", statistics.median(samples), "µs")
        arrays = [np.random.default_rng(i).random(10_000) for i in range(2000)]
        sq = ray.remote(_sum_sq)
        t = best_of(3, lambda: ray.get([sq.remote(x) for x in arrays]))
        record("2,000 array tasks", "ray", t, "s")
    finally:
        ray.shutdown()


def bench_dask(n: int) -> None:
    if not have("distributed"):
        print("dask: not installed, skipped")
        return
    from distributed import Client, LocalCluster

    print("dask (same run)")
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                      dashboard_address=None) as lc, Client(lc) as c:
        c.gather(c.map(_noop, range(200), pure=False))
        t = best_of(3, lambda: c.gather(c.map(_noop, range(n), pure=False)))
        record("no-op tasks/s", "dask", n / t, "tasks/s")
        samples = []
        for _ in range(300):
            t0 = time.perf_counter()
            c.submit(_noop, pure=False).result()
            samples.append((time.perf_counter() - t0) * 1e6)
        record("round trip median", "dask", statistics.median(samples), "µs")
        arrays = [np.random.default_rng(i).random(10_000) for i in range(2000)]
        t = best_of(3, lambda: c.gather(c.map(_sum_sq, arrays, pure=False)))
        record("2,000 array tasks", "dask", t, "s")


def print_ratios() -> None:
    print("\nratios (iris vs baseline; > 1 means iris is better)")
    higher_is_better = {"no-op tasks/s", "put 200 MB"}
    for bench, systems in results.items():
        mine = [v for k, v in systems.items() if k.startswith("iris")]
        if not mine:
            continue
        value = mine[0][0]
        for system, (other, _unit) in systems.items():
            if system.startswith("iris") or other == 0 or value == 0:
                continue
            ratio = value / other if bench in higher_is_better else other / value
            print(f"  {bench:<20} vs {system:<22} {ratio:8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    args = parser.parse_args()
    n = 1000 if args.quick else 5000
    only = set(filter(None, args.only.split(",")))
    print(f"iris core benchmarks, {time.strftime('%Y-%m-%d')}, {machine()}\n")

    def want(name: str) -> bool:
        return not only or name in only

    if want("cold"):
        bench_cold_start()
    if want("memory"):
        bench_idle_memory()
    import iris

    iris.init(num_workers=WORKERS)
    try:
        from iris.testing import wait_until

        wait_until(lambda: len(iris._api._client.workers) == WORKERS, 30)
        if want("noop"):
            bench_noop_throughput(iris, n)
        if want("rtt"):
            bench_round_trip(iris, 300 if args.quick else 2000)
        if want("bigarg"):
            bench_big_argument(iris)
        if want("putget"):
            bench_put_get(iris)
        if want("arrays"):
            bench_array_tasks(iris)
    finally:
        iris.shutdown()
    if want("ray"):
        bench_ray(n)
    if want("dask"):
        bench_dask(n)
    print_ratios()


if __name__ == "__main__":
    main()
