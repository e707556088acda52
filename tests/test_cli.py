"""The ``iris`` command line: argument errors, and real clusters driven through subprocesses.

Every cluster runs on loopback on a free port, with its own state directory; a worker node
gets its own ``IRIS_HOST_ID`` so that it stands in for a second machine. Every process a test
starts is killed in teardown, with its descendants, even when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from iris.cli import main
from iris.testing import live_children, wait_until

REPO = str(Path(__file__).resolve().parents[1])


def _token() -> str:
    """A valid token that is not the cluster's; sometimes it starts with "-"."""
    from iris._transport import Credentials

    return Credentials.generate().token


def test_a_token_starting_with_a_dash_is_taken_as_a_token(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    monkeypatch.setenv("IRIS_STATE_DIR", str(tmp_path / "state"))
    dashed = "-" + _token()[1:]  # z85 text may start with "-"
    assert main(["submit", "--address", "127.0.0.1:6380", "--token", dashed,
                 str(tmp_path / "missing.py")]) == 1
    assert "no such script" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Procs:
    """The ``iris`` processes of one test, with an isolated environment (test helper)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("IRIS_") and k != "PYTHONPATH"}
        self.env.update(IRIS_STATE_DIR=str(tmp / "state"), PYTHONPATH=REPO)

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """Start ``python -m iris ARGS`` in the background; its output goes to NAME.log."""
        with open(self.tmp / f"{name}.log", "wb") as log:
            p = subprocess.Popen([sys.executable, "-m", "iris", *args], stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**self.env, **env}, start_new_session=True)
        self.procs.append(p)
        return p

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -m iris ARGS`` to completion; returns its exit code and output."""
        return subprocess.run([sys.executable, "-m", "iris", *args], capture_output=True,
                              text=True, env={**self.env, **env}, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def kill_all(self) -> None:
        """SIGKILL every process started here and all their descendants, then reap them."""
        victims: list[psutil.Process] = []
        for p in self.procs:
            try:
                parent = psutil.Process(p.pid)
                victims += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        for v in victims:
            try:
                v.kill()
            except psutil.NoSuchProcess:
                pass
        for p in self.procs:
            p.wait(30)
        psutil.wait_procs(victims, timeout=30)


@pytest.fixture
def procs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Procs]:
    """A :class:`Procs` whose processes are all gone after the test."""
    for key in ("IRIS_ADDRESS", "IRIS_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("IRIS_STATE_DIR", str(tmp_path / "state"))
    ps = Procs(tmp_path)
    try:
        yield ps
    finally:
        ps.kill_all()
        wait_until(lambda: not live_children(), 30, "every process of the test to exit")


def _status(address: str, token: str) -> dict[str, Any]:
    from iris._daemon import ask_head

    return ask_head(address, token, "status", timeout_s=10)


def _start_head(procs: Procs, *extra: str, name: str = "head", **env: str
                ) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a loopback head; returns its process and its state file's contents."""
    from iris._daemon import list_states

    p = procs.start(name, "start", "--head", "--host", "127.0.0.1", "--port",
                    str(_free_port()), *extra, **env)

    def started() -> dict[str, Any] | None:
        assert p.poll() is None, f"the head exited early:\n{procs.log(name)}"
        mine = [s for s in list_states() if s["pid"] == p.pid]
        return mine[0] if mine else None

    state = wait_until(started, 30, "the head's state file")
    return p, state


# ---------------------------------------------------------------------- no cluster needed
def test_importing_the_cli_is_light() -> None:
    code = ("import sys, iris.cli; bad = [m for m in ('zmq', 'numpy', 'iris._transport') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("start", "status", "stop", "submit", "list"):
        assert command in out


@pytest.mark.parametrize("argv, message", [
    (["start"], "one of the arguments --head --worker is required"),
    (["start", "--head", "--num-workers", "-1"], "expected 0 or more"),
    (["start", "--head", "--port", "http"], "expected a port number"),
    (["start", "--head", "--port", "70000"], "outside 0-65535"),
    (["status", "--timeout", "0"], "positive number of seconds"),
    (["launch"], "invalid choice"),
])
def test_bad_arguments_exit_with_usage(argv: list[str], message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["start", "--worker"], "needs --address HOST:PORT"),
    (["start", "--worker", "--address", "headnode"], "expected HOST:PORT"),
    (["start", "--worker", "--address", "10.0.0.5:99999"], "outside 1-65535"),
    (["start", "--worker", "--address", "http://10.0.0.5:6380"], "only tcp://"),
    (["start", "--worker", "--address", "127.0.0.1:6380"], "no token for the cluster"),
    (["start", "--worker", "--address", "127.0.0.1:6380", "--token", "abc"], "40 characters"),
    (["start", "--worker", "--address", "127.0.0.1:6380", "--token", "TOKEN", "--host",
      "0.0.0.0"], "not an address others can reach"),
    (["start", "--worker", "--address", "127.0.0.1:6380", "--token", "TOKEN", "--host",
      "10.254.254.254"], "cannot listen on 10.254.254.254"),
    (["start", "--worker", "--address", "127.0.0.1:6380", "--token-file", "MISSING"],
     "cannot read the token file"),
    (["start", "--head", "--address", "10.0.0.5:6380"], "--address is for --worker"),
    (["start", "--head", "--token", "TOKEN"], "a head does not take --token"),
    (["status"], "no cluster address"),
    (["stop", "--address", "nohost:port"], "expected HOST:PORT"),
    (["status", "--address", "127.0.0.1:6380"], "no token for the cluster"),
    (["submit", "--address", "127.0.0.1:6380", "--token", "TOKEN", "MISSING.py"],
     "no such script"),
])
def test_bad_requests_give_a_clear_error(argv: list[str], message: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    for key in ("IRIS_ADDRESS", "IRIS_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("IRIS_STATE_DIR", str(tmp_path / "state"))
    token = _token()
    argv = [token if a == "TOKEN" else str(tmp_path / a) if a.startswith("MISSING") else a
            for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("iris: error: ") and message in err, err


def test_a_token_file_that_is_not_a_token_is_refused(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    bad = tmp_path / "token"
    bad.write_text("hunter2\n")
    bad.chmod(0o600)
    assert main(["start", "--head", "--token-file", str(bad)]) == 1
    assert "40 characters" in capsys.readouterr().err


def test_a_state_dir_that_is_not_ours_is_refused(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Someone else's directory (here: a symlink to one) must not receive our tokens.
    real = tmp_path / "elsewhere"
    real.mkdir()
    (tmp_path / "state").symlink_to(real)
    monkeypatch.setenv("IRIS_STATE_DIR", str(tmp_path / "state"))
    assert main(["list"]) == 1
    assert "not a directory owned by this user" in capsys.readouterr().err


def test_unreachable_head_fails_quickly_without_traceback(procs: Procs) -> None:
    r = procs.run("status", "--address", f"127.0.0.1:{_free_port()}", "--timeout", "1",
                  IRIS_TOKEN=_token())
    assert r.returncode == 1
    assert "no iris head at 127.0.0.1:" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_busy_port_is_reported(procs: Procs) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = procs.run("start", "--head", "--host", "127.0.0.1", "--port",
                      str(s.getsockname()[1]), "--num-workers", "0")
    assert r.returncode == 1
    assert "Address already in use" in r.stderr and "--port" in r.stderr
    assert "Traceback" not in r.stderr


# ---------------------------------------------------------------------- real clusters
JOB = textwrap.dedent("""
    import os, sys
    import numpy as np
    import iris

    iris.init()  # joins the cluster through IRIS_ADDRESS and IRIS_TOKEN

    @iris.remote
    def where(i):
        return os.environ.get("IRIS_HOST_ID"), i * i

    @iris.remote
    def double(a):
        return a * 2

    results = iris.get([where.remote(i) for i in range(40)], timeout=60)
    assert [r[1] for r in results] == [i * i for i in range(40)]
    a = np.arange(500_000, dtype=np.float64)
    assert all((b == a * 2).all() for b in iris.get([double.remote(a) for _ in range(4)],
                                                    timeout=60))
    print("hosts", " ".join(sorted({str(r[0]) for r in results})), "args", *sys.argv[1:])
    sys.exit(int(sys.argv[1]))
""")


@pytest.mark.slow
def test_head_worker_status_submit_stop(procs: Procs, tmp_path: Path) -> None:
    token_file = tmp_path / "cluster.token"
    head, state = _start_head(procs, "--num-workers", "1", "--token-file", str(token_file),
                              "--node-timeout", "3", IRIS_HOST_ID="machine-a")
    address = state["address"].removeprefix("tcp://")
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    banner = wait_until(lambda: "Ctrl-C" in procs.log("head") and procs.log("head"), 30,
                        "the head's banner")
    assert address in banner and "secret" in banner
    assert f"iris start --worker --address {address} --token-file {token_file}" in banner
    assert token not in banner  # with a token file the secret is not printed

    node = procs.start("node", "start", "--worker", "--address", address, "--token-file",
                       str(token_file), "--num-workers", "1", IRIS_HOST_ID="machine-b")
    st = wait_until(lambda: len(_status(address, token)["workers"]) == 2
                    and _status(address, token), 30, "two workers on two nodes")
    assert len(st["nodes"]) == 2
    assert {w["host"] for w in st["workers"]} == {"machine-a", "machine-b"}

    listed = procs.run("list")
    assert listed.returncode == 0
    assert state["cluster_id"] in listed.stdout and "node" in listed.stdout
    assert token not in listed.stdout

    shown = procs.run("status", "--json")  # address and token found in the state dir
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)["workers"]) == 2
    human = procs.run("status", "--address", address, "--token-file", str(token_file))
    assert human.returncode == 0 and "nodes 2, workers 2" in human.stdout

    job = tmp_path / "job.py"
    job.write_text(JOB)
    r = procs.run("submit", str(job), "3", "extra")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "hosts machine-a machine-b args 3 extra" in r.stdout

    wrong = procs.run("status", "--address", address, "--token", _token())
    assert wrong.returncode == 1
    assert "token does not match" in wrong.stderr and "Traceback" not in wrong.stderr

    stop = procs.run("stop")
    assert stop.returncode == 0, stop.stderr
    assert head.wait(30) == 0
    assert node.wait(30) == 0  # the head told the node to stop
    assert "iris worker node stopped" in procs.log("node")
    wait_until(lambda: not live_children(), 30, "the cluster's processes to exit")
    assert procs.run("list").stdout.startswith("no iris cluster")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_a_signal_stops_the_head_and_its_workers(procs: Procs, how: str) -> None:
    head, state = _start_head(procs, "--num-workers", "2")
    address = state["address"].removeprefix("tcp://")
    workers = wait_until(lambda: len(w := _status(address, state["token"])["workers"]) == 2
                         and w, 30, "two workers")
    banner = procs.log("head")
    assert "secret" in banner and "IRIS_TOKEN='" in banner  # no token file: printed, quoted
    if how == "sigterm":
        head.send_signal(signal.SIGTERM)
    else:  # a terminal's Ctrl-C signals the whole foreground process group
        os.killpg(head.pid, signal.SIGINT)
    assert head.wait(30) == 0
    assert "Traceback" not in procs.log("head")
    wait_until(lambda: not any(psutil.pid_exists(w["pid"]) for w in workers), 30,
               "the workers to exit")
    assert not os.listdir(os.environ["IRIS_STATE_DIR"])  # state file removed


@pytest.mark.slow
def test_a_worker_node_stops_when_its_head_dies(procs: Procs) -> None:
    head, state = _start_head(procs, "--num-workers", "0", "--node-timeout", "2")
    address = state["address"].removeprefix("tcp://")
    node = procs.start("node", "start", "--worker", "--address", address, "--num-workers",
                       "1", IRIS_HOST_ID="machine-b")  # token from the local state file
    wait_until(lambda: _status(address, state["token"])["workers"], 30, "the node's worker")
    head.kill()
    head.wait(30)
    assert node.wait(60) == 0
    assert "no answer from the head" in procs.log("node")
    wait_until(lambda: not live_children(), 30, "the node's workers to exit")


@pytest.mark.slow
def test_a_node_cut_off_past_its_lease_registers_again(procs: Procs, tmp_path: Path) -> None:
    head, state = _start_head(procs, "--num-workers", "0", "--node-timeout", "2")
    address = state["address"].removeprefix("tcp://")
    token = state["token"]
    node = procs.start("node", "start", "--worker", "--address", address, "--num-workers",
                       "1", IRIS_HOST_ID="machine-b")
    wait_until(lambda: _status(address, token)["workers"], 30, "the node's worker")
    node_manager = psutil.Process(node.pid)
    node_manager.suspend()  # stands in for a network partition: no heartbeats
    try:
        wait_until(lambda: not _status(address, token)["workers"], 30,
                   "the head to give the silent node up")
    finally:
        node_manager.resume()
    st = wait_until(lambda: (s := _status(address, token))["workers"] and s, 30,
                    "the node and its worker to register again")
    assert [w["host"] for w in st["workers"]] == ["machine-b"] and len(st["nodes"]) == 1
    assert "registering again" in procs.log("node")
    job = tmp_path / "job.py"
    job.write_text(JOB)
    r = procs.run("submit", str(job), "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hosts machine-b args 0" in r.stdout  # tasks run on the node again


CRASHING_DRIVER = textwrap.dedent("""
    import os, signal
    import iris

    iris.init()

    @iris.remote
    class Box:
        def __init__(self):
            self.n = 0

        def add(self, k):
            self.n += k
            return self.n

        def hold(self, refs):
            self.refs = refs

        def give(self):
            return self.refs

    plain = Box.remote()
    named = Box.options(name="temporary").remote()
    kept = Box.options(name="keeper", lifetime="detached").remote()
    assert iris.get([a.add.remote(1) for a in (plain, named, kept)]) == [1, 1, 1]
    iris.get(kept.hold.remote([iris.put("owned by the driver that dies")]))
    print(plain._actor_id, plain._record.worker_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # gone without a goodbye
""")

AFTER_THE_CRASH = textwrap.dedent("""
    import sys
    import iris
    from iris._actors import ActorHandle
    from iris.testing import wait_until

    iris.init()

    def name_gone():
        try:
            iris.get_actor("temporary")
            return False
        except ValueError:
            return True

    orphan = ActorHandle(sys.argv[1], "", sys.argv[2], "plain", {"add"})

    def orphan_gone():
        try:
            iris.get(orphan.add.remote(0), timeout=30)
            return False
        except iris.ActorDiedError as exc:
            return "does not live" in str(exc)

    wait_until(name_gone, 30, "the name of the crashed driver's actor to go")
    wait_until(orphan_gone, 30, "the crashed driver's unnamed actor to go")
    keeper = iris.get_actor("keeper")
    print("keeper", iris.get(keeper.add.remote(1)))  # detached: it lives on, state and all
    (lost,) = iris.get(keeper.give.remote())  # a ref to an object of the dead driver
    try:
        iris.get(lost, timeout=30)
        print("read a value of a dead owner")
    except iris.ObjectLostError as exc:
        print("lost", "is gone" in str(exc))

    @iris.remote
    def hosted():
        from iris.worker._actor_host import hosted_count
        return hosted_count()

    print("hosted", iris.get(hosted.remote()))
    iris.kill(keeper)
    iris.shutdown()
""")


@pytest.mark.slow
def test_the_actors_of_a_driver_that_died_go_with_it(procs: Procs, tmp_path: Path) -> None:
    head, state = _start_head(procs, "--num-workers", "1", "--client-timeout", "3")
    wait_until(lambda: _status(state["address"], state["token"])["workers"], 30,
               "the worker")
    crash = tmp_path / "crash.py"
    crash.write_text(CRASHING_DRIVER)
    r = procs.run("submit", str(crash))
    assert r.returncode == 128 + signal.SIGKILL, r.stdout + r.stderr
    actor_id, worker_id = r.stdout.split()
    check = tmp_path / "check.py"
    check.write_text(AFTER_THE_CRASH)
    r = procs.run("submit", str(check), actor_id, worker_id)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["keeper", "2", "lost", "True", "hosted", "1"]
    assert "declaring it gone" in procs.log("head")


SERVICE = textwrap.dedent("""
    import os
    import iris

    iris.init()

    @iris.remote
    class Service:
        def __init__(self, start):
            self.n = start

        def add(self, k):
            self.n += k
            return self.n

        def pid(self):
            return os.getpid()

    s = Service.options(name="svc", lifetime="detached", max_restarts=1).remote(5)
    print(iris.get(s.add.remote(1)), iris.get(s.pid.remote()))
    iris.shutdown()  # the service stays: it is detached
""")

AFTER_ITS_WORKER_DIED = textwrap.dedent("""
    import sys
    import iris
    from iris.testing import wait_until

    iris.init()

    def answer():
        try:
            s = iris.get_actor("svc")
            return iris.get(s.pid.remote(), timeout=30), iris.get(s.add.remote(1), timeout=30)
        except (ValueError, iris.ActorDiedError):
            return None  # not restarted yet (or the head has not seen the death yet)

    pid, n = wait_until(answer, 60, "the service to live again")
    print(pid != int(sys.argv[1]), n)
    iris.kill(iris.get_actor("svc"))
    iris.shutdown()
""")


@pytest.mark.slow
def test_a_detached_actor_is_restarted_after_its_creator_left(procs: Procs,
                                                              tmp_path: Path) -> None:
    head, state = _start_head(procs, "--num-workers", "2")
    wait_until(lambda: len(_status(state["address"], state["token"])["workers"]) == 2, 30,
               "the workers")
    service = tmp_path / "service.py"
    service.write_text(SERVICE)
    r = procs.run("submit", str(service))
    assert r.returncode == 0, r.stdout + r.stderr
    value, pid = r.stdout.split()
    assert value == "6"
    os.kill(int(pid), signal.SIGKILL)  # its worker dies; its creator is long gone
    check = tmp_path / "check.py"
    check.write_text(AFTER_ITS_WORKER_DIED)
    r = procs.run("submit", str(check), pid)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["True", "6"]  # a new instance, made from its constructor
    assert "lives again" in procs.log("head")
