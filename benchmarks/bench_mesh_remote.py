"""Cross-process actor-mesh throughput beside raw pyzmq PUSH/PULL, in the same run.

Measures messages/s from this process to an actor in a second process, counted when the
remote actor has *handled* them (the receiver answers "done" after the last one):

  1. iris ``send_remote(addr, pid, data)``: the I/O thread drains everything queued for
     the node into batch frames of up to ~512 KiB (CURVE-encrypted, like every mesh
     socket); the receiver parses each frame into runs and hands them to the actor;
  2. iris ``send(proxy, data)``: the same through the proxy PID from ``resolve_remote``;
  3. raw pyzmq PUSH/PULL with the same batching: the sender packs ``[pid u64][len u32]
     [data]`` records into frames of the average batch size iris used in (1), the
     receiver unpacks each record and counts it. No CURVE, no actors, no threads.

Run:  python benchmarks/bench_mesh_remote.py [--messages N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import os
import platform
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zmq  # noqa: E402

import iris  # noqa: E402
from iris._transport import Credentials  # noqa: E402

_REC = struct.Struct("!QI")


# -- receivers (the second process) --------------------------------------------------------

def iris_receiver(token: str, parent: str, inbox: int, n: int) -> None:
    rt = iris.Runtime(token=token)
    count = [0]

    def sink(msg: bytes) -> None:
        count[0] += 1
        if count[0] == n:
            count[0] = 0
            rt.send_remote(parent, inbox, b"done")

    rt.register("sink", rt.spawn(sink, budget=1000))
    print(rt.listen("127.0.0.1:0"), flush=True)
    sys.stdin.read()
    rt.shutdown()


def raw_receiver(n: int, secret: str = "") -> None:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    if secret:  # the same encryption iris pays for, without iris
        pull.curve_server = True
        pull.curve_secretkey = secret.encode()
        pull.curve_publickey = zmq.curve_public(secret.encode())
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    back = ctx.socket(zmq.PUSH)
    print(f"127.0.0.1:{port}", flush=True)
    back.connect("tcp://" + sys.stdin.readline().strip())
    count = 0
    unpack = _REC.unpack_from
    size = _REC.size
    while True:
        frame = pull.recv(copy=True)
        off, end = 0, len(frame)
        while off < end:
            _pid, length = unpack(frame, off)
            _data = frame[off + size:off + size + length]
            off += size + length
            count += 1
        if count >= n:
            count = 0
            back.send(b"done")


# -- senders (this process) ----------------------------------------------------------------

def _child(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, __file__, *args], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    addr = proc.stdout.readline().strip()
    assert addr, "receiver did not start"
    return proc, addr


def bench_iris(n: int, payload: bytes, env: dict[str, str]) -> tuple[float, float, float]:
    token = Credentials.generate().token
    rt = iris.Runtime(token=token)
    done = threading.Event()
    inbox = rt.spawn(lambda m: done.set())
    me = rt.listen("127.0.0.1:0")
    proc, addr = _child(["--iris-recv", token, me, str(inbox), str(n)], env)
    try:
        proxy = rt.resolve_remote(addr, "sink")
        assert proxy is not None
        pid = rt._proxies[proxy][1]  # the remote actor's own pid, for send_remote

        def run(send: object) -> float:
            done.clear()
            t0 = time.perf_counter()
            if send == "send_remote":
                for _ in range(n):
                    rt.send_remote(addr, pid, payload)
            else:
                for _ in range(n):
                    rt.send(proxy, payload)
            assert done.wait(600), "the receiver never reported"
            return n / (time.perf_counter() - t0)

        run("send_remote")  # warm-up: connections, allocator, caches
        before = rt.network_statistics()
        rate_remote = run("send_remote")
        after = rt.network_statistics()
        rate_proxy = run("send")
        frames = after["frames_out"] - before["frames_out"]
        avg_batch = (after["messages_out"] - before["messages_out"]) / max(frames, 1)
        return rate_remote, rate_proxy, avg_batch
    finally:
        proc.kill()
        proc.wait()
        rt.shutdown()


def bench_raw(n: int, payload: bytes, batch: int, env: dict[str, str],
              curve: bool = False) -> float:
    ctx = zmq.Context()
    back = ctx.socket(zmq.PULL)
    back_port = back.bind_to_random_port("tcp://127.0.0.1")
    keys = Credentials.generate() if curve else None
    proc, addr = _child(["--raw-recv", str(n), keys.token if keys else ""], env)
    push = ctx.socket(zmq.PUSH)
    if keys is not None:
        push.curve_serverkey = keys.public
        push.curve_publickey = keys.public
        push.curve_secretkey = keys.secret
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"127.0.0.1:{back_port}\n")
        proc.stdin.flush()
        push.connect("tcp://" + addr)
        pack = _REC.pack

        def run() -> float:
            t0 = time.perf_counter()
            parts: list[bytes] = []
            for _ in range(n):
                # the same work per message as iris: a header packed, the data appended
                parts.append(pack(7, len(payload)))
                parts.append(payload)
                if len(parts) >= 2 * batch:
                    push.send(b"".join(parts))
                    parts = []
            if parts:
                push.send(b"".join(parts))
            assert back.poll(600_000), "the raw receiver never reported"
            back.recv()
            return n / (time.perf_counter() - t0)

        run()  # warm-up
        return run()
    finally:
        proc.kill()
        proc.wait()
        push.close(0)
        back.close(0)
        ctx.term()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=64, help="payload bytes per message")
    args = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    payload = b"x" * args.size
    n = args.messages
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}, pyzmq {zmq.pyzmq_version()}, libzmq "
          f"{zmq.zmq_version()}")
    print(f"{n:,} messages of {args.size} B, two processes on loopback tcp\n")
    rate_remote, rate_proxy, avg_batch = bench_iris(n, payload, env)
    batch = max(1, round(avg_batch))
    rate_raw = bench_raw(n, payload, batch, env)
    rate_curve = bench_raw(n, payload, batch, env, curve=True)
    print(f"iris send_remote        {rate_remote:>12,.0f} msg/s  (average batch "
          f"{avg_batch:,.0f} messages/frame)")
    print(f"iris send(proxy)        {rate_proxy:>12,.0f} msg/s")
    print(f"raw pyzmq PUSH/PULL     {rate_raw:>12,.0f} msg/s  (batch {batch:,})")
    print(f"raw pyzmq PUSH/PULL+CURVE {rate_curve:>10,.0f} msg/s  (batch {batch:,}; iris "
          f"encrypts every mesh socket)")
    print(f"ratio raw / iris send_remote: {rate_raw / rate_remote:.2f}x   "
          f"raw / iris send(proxy): {rate_raw / rate_proxy:.2f}x")
    print(f"ratio raw+CURVE / iris send_remote: {rate_curve / rate_remote:.2f}x   "
          f"raw+CURVE / iris send(proxy): {rate_curve / rate_proxy:.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--iris-recv":
        iris_receiver(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--raw-recv":
        raw_receiver(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
    else:
        main()
