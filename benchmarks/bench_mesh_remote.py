"""Cross-process actor-mesh throughput beside raw pyzmq PUSH/PULL, in the same run.

Measures messages/s from this process to an actor in a second process, counted when the
remote actor has *handled* them (the receiver answers "done" after the last one):

  1. iris ``send_remote(addr, pid, data)``, one call per message: the I/O thread drains
     everything queued for the node into batch frames of up to ~512 KiB (CURVE-encrypted,
     like every mesh socket); the receiver parses each frame into runs and hands them to
     the actor, whose handler runs once per message;
  2. iris ``send(proxy, data)``: the same through the proxy PID from ``resolve_remote``;
  3. iris ``send_remote_many(addr, pid, batch)``: the batch API, ``--many-batch``
     messages per call (the same messages on the wire, handled one by one);
  4. raw pyzmq PUSH/PULL with the same batching: the sender packs ``[pid u64][len u32]
     [data]`` records into frames of the average batch size iris used in (1) in the
     same round, the receiver unpacks each record and counts it. No CURVE, no actors,
     no threads;
  5. the same with CURVE on the raw sockets (the like-for-like floor: iris encrypts).

Every round measures all five, interleaved, so a change in the machine's load hits them
alike; the report gives the medians over ``--repeat`` rounds and the ratios of medians.

Run:  python benchmarks/bench_mesh_remote.py [--messages N] [--size BYTES] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
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


class IrisBench:
    """A sender runtime here, a receiver process with the ``sink`` actor, connected."""

    def __init__(self, n: int, payload: bytes, env: dict[str, str], many_batch: int) -> None:
        self.n, self.payload = n, payload
        self.batch = [payload] * many_batch
        token = Credentials.generate().token
        self.rt = rt = iris.Runtime(token=token)
        self.done = threading.Event()
        inbox = rt.spawn(lambda m: self.done.set())
        me = rt.listen("127.0.0.1:0")
        self.proc, self.addr = _child(["--iris-recv", token, me, str(inbox), str(n)], env)
        proxy = rt.resolve_remote(self.addr, "sink")
        assert proxy is not None
        self.proxy = proxy
        self.pid = rt._proxies[proxy][1]  # the remote actor's own pid, for send_remote
        self.avg_batch = 0.0

    def run(self, how: str) -> float:
        """Messages/s of one run of ``n`` messages, sent ``how``."""
        rt, n, payload, addr, pid = self.rt, self.n, self.payload, self.addr, self.pid
        self.done.clear()
        before = rt.network_statistics()
        t0 = time.perf_counter()
        if how == "send_remote":
            for _ in range(n):
                rt.send_remote(addr, pid, payload)
        elif how == "send":
            proxy = self.proxy
            for _ in range(n):
                rt.send(proxy, payload)
        else:  # send_remote_many: n // len(batch) calls, then the rest
            batch = self.batch
            for _ in range(n // len(batch)):
                rt.send_remote_many(addr, pid, batch)
            if n % len(batch):
                rt.send_remote_many(addr, pid, batch[:n % len(batch)])
        assert self.done.wait(600), "the receiver never reported"
        rate = n / (time.perf_counter() - t0)
        after = rt.network_statistics()
        frames = after["frames_out"] - before["frames_out"]
        self.avg_batch = (after["messages_out"] - before["messages_out"]) / max(frames, 1)
        return rate

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.rt.shutdown()


class RawBench:
    """Raw pyzmq PUSH/PULL (optionally with CURVE) to a receiver process."""

    def __init__(self, n: int, payload: bytes, env: dict[str, str], curve: bool) -> None:
        self.n, self.payload = n, payload
        self.ctx = ctx = zmq.Context()
        self.back = back = ctx.socket(zmq.PULL)
        back_port = back.bind_to_random_port("tcp://127.0.0.1")
        keys = Credentials.generate() if curve else None
        self.proc, addr = _child(["--raw-recv", str(n), keys.token if keys else ""], env)
        self.push = push = ctx.socket(zmq.PUSH)
        if keys is not None:
            push.curve_serverkey = keys.public
            push.curve_publickey = keys.public
            push.curve_secretkey = keys.secret
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"127.0.0.1:{back_port}\n")
        self.proc.stdin.flush()
        push.connect("tcp://" + addr)

    def run(self, batch: int) -> float:
        """Messages/s of one run of ``n`` messages in frames of ``batch`` messages."""
        n, payload, push, pack = self.n, self.payload, self.push, _REC.pack
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
        assert self.back.poll(600_000), "the raw receiver never reported"
        self.back.recv()
        return n / (time.perf_counter() - t0)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.push.close(0)
        self.back.close(0)
        self.ctx.term()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=64, help="payload bytes per message")
    ap.add_argument("--repeat", type=int, default=3,
                    help="measured rounds (each: every iris way and both baselines); "
                         "medians are reported")
    ap.add_argument("--many-batch", type=int, default=1000,
                    help="messages per send_remote_many call")
    args = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    payload = b"x" * args.size
    n = args.messages
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}, pyzmq {zmq.pyzmq_version()}, libzmq "
          f"{zmq.zmq_version()}")
    print(f"{n:,} messages of {args.size} B, two processes on loopback tcp, "
          f"{args.repeat} rounds (medians; every round measures all five)\n")
    ways = ["send_remote", "send", "send_remote_many"]
    rates: dict[str, list[float]] = {w: [] for w in [*ways, "raw", "raw+CURVE"]}
    batches: list[float] = []
    raw_batches: list[int] = []
    ib = IrisBench(n, payload, env, args.many_batch)
    raws = []
    try:
        for how in ways:
            ib.run(how)  # warm-up: connections, allocator, caches
        raws = [RawBench(n, payload, env, curve=False), RawBench(n, payload, env, curve=True)]
        for raw in raws:
            raw.run(max(1, round(ib.avg_batch)))  # warm-up
        raw_batches = []
        for r in range(args.repeat):
            # Interleaved, so a change in the machine's load hits every column alike.
            for how in ways:
                rates[how].append(ib.run(how))
                if how == "send_remote":
                    batches.append(ib.avg_batch)
            # the raw baselines use the batching iris send_remote had in this round
            batch = max(1, round(batches[-1]))
            raw_batches.append(batch)
            rates["raw"].append(raws[0].run(batch))
            rates["raw+CURVE"].append(raws[1].run(batch))
            print(f"round {r + 1}: " + ", ".join(
                f"{k} {v[-1]:,.0f}" for k, v in rates.items()), flush=True)
    finally:
        ib.close()
        for raw in raws:
            raw.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    print()
    print(f"iris send_remote          {med['send_remote']:>12,.0f} msg/s  (average batch "
          f"{statistics.median(batches):,.0f} messages/frame)")
    print(f"iris send(proxy)          {med['send']:>12,.0f} msg/s")
    print(f"iris send_remote_many     {med['send_remote_many']:>12,.0f} msg/s  "
          f"({args.many_batch:,} messages per call)")
    batch_text = "/".join(f"{b:,}" for b in raw_batches)
    print(f"raw pyzmq PUSH/PULL       {med['raw']:>12,.0f} msg/s  (batch per round "
          f"{batch_text}: iris send_remote's)")
    print(f"raw pyzmq PUSH/PULL+CURVE {med['raw+CURVE']:>12,.0f} msg/s  (same batches; "
          f"iris encrypts every mesh socket)")
    for base in ("raw", "raw+CURVE"):
        print(f"ratio {base} / iris (medians): " + "   ".join(
            f"{w}: {med[base] / med[w]:.2f}x" for w in ways))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--iris-recv":
        iris_receiver(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--raw-recv":
        raw_receiver(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
    else:
        main()
