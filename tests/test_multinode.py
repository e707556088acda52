"""A real two-machine cluster: a head on one "machine", a worker node on another.

The machines are network namespaces joined by a veth pair (10.77.0.1 and 10.77.0.2, which
exist only inside the namespaces this test makes): the head and the driver run in one, the
worker node in the other, each with its own ``IRIS_HOST_ID`` so that objects cross the
network instead of shared memory. Where network namespaces cannot be made (not root, no
``ip``), the same scenario runs on loopback with distinct ``IRIS_HOST_ID``s and only the
namespace variant is skipped.

The scenario: tasks land on the remote node's workers and a several-MB numpy array makes
the round trip; then the remote node is killed outright, the head declares it dead when its
lease runs out, the task without retries fails with ``WorkerCrashedError``, and the task
with retries runs again on a node that joins afterwards.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from iris.testing import live_children, wait_until

pytestmark = pytest.mark.slow

REPO = str(Path(__file__).resolve().parents[1])
_ids = itertools.count()


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def _netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None if they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"irisprobe{os.getpid()}x{uuid.uuid4().hex[:6]}"
    made = _run("ip", "netns", "add", probe)
    if made.returncode != 0:
        return f"`ip netns add` failed (needs root): {made.stderr.strip()}"
    _run("ip", "netns", "del", probe)
    return None


@dataclass
class Machines:
    """Two stand-in machines: how to run a command on each, and their addresses."""

    tmp: Path
    head_ip: str
    node_ip: str
    wrap: dict[str, list[str]]  # machine name -> command prefix
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, host_id: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("IRIS_") and k != "PYTHONPATH"}
        env.update(IRIS_STATE_DIR=str(self.tmp / f"state-{host_id}"), PYTHONPATH=REPO,
                   IRIS_HOST_ID=host_id)
        return env

    def start(self, machine: str, host_id: str, name: str, *args: str
              ) -> subprocess.Popen[bytes]:
        """Start ``python -m iris ARGS`` on ``machine``; output goes to NAME.log."""
        with open(self.tmp / f"{name}.log", "wb") as log:
            p = subprocess.Popen([*self.wrap[machine], sys.executable, "-m", "iris", *args],
                                 stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=self.env(host_id))
        self.procs.append(p)
        return p

    def iris(self, machine: str, host_id: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -m iris ARGS`` on ``machine`` to completion."""
        return subprocess.run([*self.wrap[machine], sys.executable, "-m", "iris", *args],
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, env=self.env(host_id))

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def kill_tree(self, p: subprocess.Popen[bytes]) -> list[int]:
        """SIGKILL a process and every descendant at once (a machine losing power)."""
        try:
            root = psutil.Process(p.pid)
            victims = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for v in victims:
            try:
                v.kill()
            except psutil.NoSuchProcess:
                pass
        p.wait(30)
        psutil.wait_procs(victims, timeout=30)
        return [v.pid for v in victims]

    def close(self) -> None:
        for p in self.procs:
            self.kill_tree(p)
        for ns in self.namespaces:
            for pid in _run("ip", "netns", "pids", ns).stdout.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "del", ns)


def _link_up(ns: str) -> bool:
    out = _run("ip", "-n", ns, "-o", "link", "show", "eth0").stdout
    return "state UP" in out


def _make_netns(tmp: Path) -> Machines:
    tag = f"{os.getpid()}x{next(_ids)}x{uuid.uuid4().hex[:4]}"
    a, b = f"iris-head-{tag}", f"iris-node-{tag}"
    m = Machines(tmp, "10.77.0.1", "10.77.0.2",
                 {"head": ["ip", "netns", "exec", a], "node": ["ip", "netns", "exec", b]})
    for ns in (a, b):
        r = _run("ip", "netns", "add", ns)
        assert r.returncode == 0, r.stderr
        m.namespaces.append(ns)
    steps = [
        ["ip", "link", "add", "eth0", "netns", a, "type", "veth", "peer", "name", "eth0",
         "netns", b],
        ["ip", "-n", a, "addr", "add", "10.77.0.1/24", "dev", "eth0"],
        ["ip", "-n", b, "addr", "add", "10.77.0.2/24", "dev", "eth0"],
        *[["ip", "-n", ns, "link", "set", dev, "up"] for ns in (a, b) for dev in ("lo", "eth0")],
    ]
    for cmd in steps:
        r = _run(*cmd)
        assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    wait_until(lambda: _link_up(a) and _link_up(b), 10, "the veth link to come up")
    return m


@pytest.fixture(params=["netns", "loopback"])
def machines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Machines]:
    """Two stand-in machines: network namespaces, or loopback with distinct host ids."""
    if request.param == "netns":
        reason = _netns_unavailable()
        if reason is not None:
            pytest.skip(f"network namespaces unavailable, loopback variant only: {reason}")
        m = _make_netns(tmp_path)
    else:
        m = Machines(tmp_path, "127.0.0.1", "127.0.0.1", {"head": [], "node": []})
    try:
        yield m
    finally:
        m.close()
        wait_until(lambda: not live_children(), 30, "every process of the test to exit")


DRIVER = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import iris

    iris.init()  # IRIS_ADDRESS and IRIS_TOKEN come from `iris submit`
    out = sys.argv[1]

    @iris.remote
    def where(i):
        return os.environ["IRIS_HOST_ID"], i

    @iris.remote
    def grow(a):
        # A several-MB argument in, a several-MB result out, both across the network.
        return np.concatenate([a, a + 1.0])

    @iris.remote
    def block(name):
        open(os.path.join(out, "started-" + name), "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(out, "release")):
            if time.monotonic() > deadline:
                raise TimeoutError("never released")
            time.sleep(0.01)
        return os.environ["IRIS_HOST_ID"]

    hosts = sorted({h for h, _ in iris.get([where.remote(i) for i in range(40)], timeout=60)})
    a = np.random.default_rng(7).random(1_000_000)  # 8 MB
    b = iris.get(grow.remote(a), timeout=60)
    big_ok = b.shape == (2_000_000,) and bool((b[:1_000_000] == a).all()) \\
        and bool((b[1_000_000:] == a + 1.0).all())
    retried = block.remote("retried")
    doomed = block.options(max_retries=0).remote("doomed")
    try:
        iris.get(doomed, timeout=60)
        doomed_error = "no error"
    except iris.WorkerCrashedError as exc:
        doomed_error = "WorkerCrashedError: " + str(exc)
    retried_host = iris.get(retried, timeout=60)
    print(json.dumps({"hosts": hosts, "big_ok": big_ok, "doomed": doomed_error,
                      "retried_host": retried_host}))
""")


def _status(m: Machines, address: str, token_file: Path) -> dict[str, Any]:
    r = m.iris("head", "machine-a", "status", "--json", "--address", address,
               "--token-file", str(token_file))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_tasks_and_objects_cross_machines_and_survive_a_lost_node(machines: Machines,
                                                                  tmp_path: Path) -> None:
    m = machines
    token_file = tmp_path / "cluster.token"
    port = "6380"
    head_args = ["start", "--head", "--num-workers", "0", "--node-timeout", "3",
                 "--token-file", str(token_file)]
    if m.head_ip == "127.0.0.1":  # loopback: other tests may run heads, take a free port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = str(s.getsockname()[1])
        head_args += ["--host", "127.0.0.1"]
    head_args += ["--port", port]
    head = m.start("head", "machine-a", "head", *head_args)
    address = f"{m.head_ip}:{port}"
    # In the namespace the head binds 0.0.0.0 and must advertise the veth's address.
    wait_until(lambda: f"address   {address}" in m.log("head"), 30,
               f"the head to advertise {address}")

    node_args = ["start", "--worker", "--address", address, "--token-file", str(token_file),
                 "--num-workers", "2"]
    node_b = m.start("node", "machine-b", "node-b", *node_args)
    st = wait_until(lambda: len((s := _status(m, address, token_file))["workers"]) == 2 and s,
                    60, "the remote node's two workers")
    (node_b_id,) = st["nodes"]
    # The workers listen on the node's own address, which the driver's machine can reach.
    assert all(w["address"].startswith(f"tcp://{m.node_ip}:") for w in st["workers"])

    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    driver = m.start("head", "machine-a", "driver", "submit", "--address", address,
                     "--token-file", str(token_file), str(script), str(out))
    wait_until(lambda: (out / "started-retried").exists() and (out / "started-doomed").exists(),
               60, f"both blocking tasks to start on the remote node\n{m.log('driver')}")

    m.kill_tree(node_b)  # the whole remote machine goes down, workers and all
    (out / "release").touch()
    wait_until(lambda: node_b_id not in (s := _status(m, address, token_file))["nodes"]
               and not s["workers"], 30, "the head to declare the remote node dead")

    node_c = m.start("node", "machine-c", "node-c", *node_args)  # a replacement machine
    assert driver.wait(60) == 0, m.log("driver")
    result = json.loads(m.log("driver").strip().splitlines()[-1])
    assert result["hosts"] == ["machine-b"]  # every task ran on the remote node
    assert result["big_ok"] is True
    assert result["doomed"].startswith("WorkerCrashedError:"), result
    assert "no retries left" in result["doomed"]
    assert result["retried_host"] == "machine-c"  # retried on the node that joined later

    stop = m.iris("head", "machine-a", "stop", "--address", address, "--token-file",
                  str(token_file))
    assert stop.returncode == 0, stop.stderr
    assert head.wait(30) == 0
    assert node_c.wait(30) == 0  # told to stop by the head, across the network
