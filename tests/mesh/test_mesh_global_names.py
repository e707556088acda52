"""Cluster-wide names through the head: register_global / whereis_global /
unregister_global, between runtimes in this process and in a second driver process joined
to the same embedded cluster."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _mesh_testing import mesh_threads, wait_until

import iris
from iris._transport import Credentials
from iris.mesh import Runtime
from iris.testing import local_cluster

ROOT = Path(__file__).resolve().parents[2]

# A second driver: joins the cluster (iris.init(address=...), or only the head with
# connect_head), listens, registers its actor svc cluster-wide under argv[4]; svc answers
# each message by sending b"echo:" + it to the actor registered cluster-wide as "inbox".
# stdin: "stop" stops svc; EOF shuts the runtime down and ends the process.
DRIVER = """
import sys, iris
head, token, mode, name = sys.argv[1:5]
if mode == "init":
    iris.init(address=head)
rt = iris.Runtime(token=token)
rt.configure_network(heartbeat_interval_s=0.2, heartbeat_timeout_s=1.0)
addr = rt.listen("127.0.0.1:0")
if mode == "connect":
    rt.connect_head(head)
inbox = []

def svc(msg):
    if not inbox:
        inbox.append(rt.whereis_global("inbox"))
    rt.send(inbox[0], b"echo:" + msg)

pid = rt.spawn(svc)
rt.register_global(name, pid)
print(addr, pid, flush=True)
for line in sys.stdin:
    if line.strip() == "stop":
        rt.stop(pid)
        rt.join(pid, 10)
        print("stopped", flush=True)
rt.shutdown()
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[iris.ClusterContext]:
    with local_cluster(num_workers=1) as ctx:
        yield ctx


@pytest.fixture
def token() -> str:
    return Credentials.generate().token


@pytest.fixture
def rt(cluster: iris.ClusterContext, token: str) -> Iterator[Runtime]:
    before = set(mesh_threads())
    runtime = Runtime(token=token)
    try:
        runtime.listen("127.0.0.1:0")
        yield runtime
    finally:
        runtime.shutdown()
    wait_until(lambda: not (set(mesh_threads()) - before), 10.0,
               lambda: set(mesh_threads()) - before)


class Driver:
    """A second driver process (see DRIVER); always killed at the end."""

    def __init__(self, head: str, token: str, mode: str, name: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER, head, token, mode, name],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        try:
            line = self.readline()
            assert line, f"the driver exited with {self.proc.wait()}"
        except BaseException:
            self.close()
            raise
        self.addr, pid = line.split()
        self.pid = int(pid)
        self.name = name

    def readline(self) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        assert ready, "the driver process did not answer"
        return self.proc.stdout.readline().strip()

    def command(self, text: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.readline()

    def close(self) -> None:
        """Close its stdin (it shuts down, dropping its names), kill it if it lingers."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            self.proc.kill()
            self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()


@pytest.fixture
def driver(cluster: iris.ClusterContext, token: str, request: pytest.FixtureRequest
           ) -> Iterator[Driver]:
    d = Driver(cluster.address, token, "init", "svc-" + request.node.name)
    try:
        yield d
    finally:
        d.close()


@pytest.mark.slow
def test_register_in_one_process_look_up_and_send_from_another(
        rt: Runtime, driver: Driver) -> None:
    got: list[bytes] = []
    done = threading.Event()
    inbox = rt.spawn(lambda m: (got.append(m), done.set()))
    rt.register_global("inbox", inbox)
    svc = rt.whereis_global(driver.name)
    assert svc is not None and svc != driver.pid   # a proxy for the other process's actor
    assert rt.global_names()[driver.name] == (driver.addr, driver.pid)
    assert rt.send(svc, b"ping")
    assert done.wait(20), "no answer from the other process"
    assert got == [b"echo:ping"]
    assert rt.whereis_global(driver.name) == svc    # the same proxy again
    assert rt.whereis_global("inbox") == inbox      # our own actor: its local pid
    assert rt.whereis_global("nobody") is None


@pytest.mark.slow
def test_a_name_held_elsewhere_is_a_conflict_naming_the_holder(
        rt: Runtime, driver: Driver) -> None:
    mine = rt.spawn(lambda m: None)
    holder = rf"'{driver.name}'.*pid {driver.pid} on node {driver.addr}"
    with pytest.raises(ValueError, match=holder):
        rt.register_global(driver.name, mine)
    assert rt.global_names()[driver.name] == (driver.addr, driver.pid)


@pytest.mark.slow
def test_the_name_goes_when_its_actor_exits(rt: Runtime, driver: Driver) -> None:
    watcher = rt.spawn_observed_handler()
    svc = rt.whereis_global(driver.name)
    assert svc is not None
    rt.monitor(watcher, svc)
    assert driver.command("stop") == "stopped"
    wait_until(lambda: driver.name not in rt.global_names(), 20.0, rt.global_names)
    assert rt.whereis_global(driver.name) is None
    wait_until(lambda: not rt.is_alive(svc), 20.0)  # the proxy followed its actor
    # Free again: this runtime may take it.
    rt.register_global(driver.name, rt.spawn(lambda m: None))
    assert rt.global_names()[driver.name][0] == rt.listen_address


@pytest.mark.slow
def test_the_names_of_a_killed_process_go_when_its_lease_ends(
        rt: Runtime, cluster: iris.ClusterContext, token: str) -> None:
    # This driver joined the head only (connect_head), without iris.init.
    d = Driver(cluster.address, token, "connect", "svc-killed")
    try:
        assert rt.global_names()[d.name] == (d.addr, d.pid)
        d.proc.kill()
        d.proc.wait(10)
        # Nobody tells the head: the lease (heartbeat_timeout_s=1 in the driver) runs out.
        wait_until(lambda: d.name not in rt.global_names(), 20.0, rt.global_names)
        assert rt.whereis_global(d.name) is None
    finally:
        d.close()


def test_two_runtimes_of_one_process_unregister_and_exit(rt: Runtime, token: str) -> None:
    with Runtime(token=token) as other:
        other.listen("127.0.0.1:0")
        a = rt.spawn(lambda m: None)
        rt.register_global("g1", a)
        rt.register_global("g1", a)                     # again, same actor: fine
        with pytest.raises(ValueError, match="already registered by pid"):
            other.register_global("g1", other.spawn(lambda m: None))
        assert other.whereis_global("g1") is not None
        assert rt.unregister_global("g1") is True
        assert rt.unregister_global("g1") is False
        b = other.spawn(lambda m: None)
        other.register_global("g1", b)
        proxy = rt.whereis_global("g1")
        assert proxy is not None and rt.is_alive(proxy)
        other.stop(b)
        wait_until(lambda: "g1" not in rt.global_names(), 20.0, rt.global_names)
        # Shutting down drops every name the runtime holds.
        other.register_global("g2", other.spawn(lambda m: None))
    assert "g2" not in rt.global_names()


def test_register_global_checks_its_arguments(rt: Runtime) -> None:
    with pytest.raises(ValueError, match="not a live actor"):
        rt.register_global("x", 123456)
    with pytest.raises(ValueError, match="non-empty"):
        rt.register_global("", rt.spawn(lambda m: None))
    with pytest.raises(TypeError):
        rt.register_global("x", "1")  # type: ignore[arg-type]
    assert rt.whereis_global("x") is None       # connects to the cluster's head
    with pytest.raises(RuntimeError, match="already uses the head"):
        rt.connect_head("127.0.0.1:1", token=Credentials.generate().token)
