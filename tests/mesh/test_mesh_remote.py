"""The cross-process mesh: listen, resolve_remote(_py), send_remote, monitor_remote,
is_node_up; proxies; batching; authentication; garbage; NodeDown with a real process."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from _mesh_testing import mesh_threads, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

from iris._protocol import MsgType, encode, encode_control, encode_mesh_send
from iris._transport import Credentials, connect_client
from iris.exceptions import AuthenticationError, ProtocolError
from iris.mesh import Runtime, SystemMessage
from iris.mesh._net_config import canonical_address, load_credentials, token_file_path
from iris.mesh._net_wire import pack_batch, parse_frame
from iris.mesh._remote import PROXY_PID_BASE

ROOT = Path(__file__).resolve().parents[2]


def exits(rt: Runtime, watcher: int) -> list[SystemMessage]:
    return [m for m in rt.get_messages(watcher)
            if isinstance(m, SystemMessage) and m.type_name == "EXIT"]


def wait_exit(rt: Runtime, watcher: int, timeout_s: float = 20.0) -> SystemMessage:
    wait_until(lambda: exits(rt, watcher), timeout_s, lambda: rt.get_messages(watcher))
    return exits(rt, watcher)[0]


@pytest.fixture
def token() -> str:
    return Credentials.generate().token


@pytest.fixture
def pair(token: str) -> Iterator[tuple[Runtime, Runtime, str]]:
    """Two runtimes in this process: ``a`` (client) and ``b`` listening on loopback."""
    before = set(mesh_threads())
    a, b = Runtime(token=token), Runtime(token=token)
    try:
        addr = b.listen("127.0.0.1:0")
        yield a, b, addr
    finally:
        a.shutdown()
        b.shutdown()
    wait_until(lambda: not (set(mesh_threads()) - before), 10.0,
               lambda: set(mesh_threads()) - before)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- addresses, tokens -----------------------------------------------------------------

@pytest.mark.parametrize("address", ["nohost", "1.2.3.4:99999", "udp://1.2.3.4:5", "",
                                     "host:port", 9000])
def test_bad_address_is_a_value_error_naming_it(address: Any) -> None:
    with Runtime() as rt:
        for call in (lambda: rt.listen(address), lambda: rt.send_remote(address, 1, b"x"),
                     lambda: rt.resolve_remote(address, "n"), lambda: rt.is_node_up(address)):
            with pytest.raises(ValueError, match="host:port"):
                call()


def test_addresses_are_canonical() -> None:
    assert canonical_address("127.0.0.1:9000") == "tcp://127.0.0.1:9000"
    assert canonical_address("tcp://127.0.0.1:9000") == "tcp://127.0.0.1:9000"
    assert canonical_address("[::1]:80") == "tcp://[::1]:80"


def test_listen_port_zero_reports_the_bound_address(pair: tuple[Runtime, Runtime, str]
                                                    ) -> None:
    a, b, addr = pair
    host, port = addr.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert b.listen_address == addr and a.listen_address is None
    with pytest.raises(RuntimeError, match="already listens"):
        b.listen("127.0.0.1:0")
    with pytest.raises(OSError, match="cannot listen"):
        a.listen(addr)  # taken by b


def test_token_from_env_then_per_user_file(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path, token: str) -> None:
    monkeypatch.setenv("IRIS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("IRIS_TOKEN", token)
    assert load_credentials(None).token == token
    monkeypatch.delenv("IRIS_TOKEN")
    first = load_credentials(None)
    path = token_file_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_credentials(None).token == first.token != token
    assert load_credentials(token).token == token  # explicit wins
    with pytest.raises(AuthenticationError):
        load_credentials("too short")


# -- resolve, send, proxies ----------------------------------------------------------------

def test_resolve_and_send_through_proxy_raw_pid_and_send_remote(
        pair: tuple[Runtime, Runtime, str]) -> None:
    a, b, addr = pair
    got: list[bytes] = []
    pid = b.spawn(got.append)
    b.register("worker", pid)
    proxy = a.resolve_remote(addr, "worker")
    assert proxy is not None and proxy >= PROXY_PID_BASE and proxy != pid
    assert a.resolve_remote(addr, "worker") == proxy  # same remote actor, same proxy
    assert a.resolve_remote(addr, "nobody") is None
    assert a.is_alive(proxy)
    assert a.send(proxy, b"1")                 # location transparent
    assert a.send_remote(addr, pid, b"2")      # the remote's own pid
    assert a.send_remote(addr, proxy, b"3")    # the README passes the resolved pid
    assert a.send_remote("tcp://" + addr, pid, bytearray(b"4"))
    wait_until(lambda: len(got) == 4, describe=lambda: got)
    assert got == [b"1", b"2", b"3", b"4"]
    with pytest.raises(TypeError, match="bytes"):
        a.send(proxy, "not bytes")
    with pytest.raises(TypeError, match="does not cross processes"):
        a.call(proxy, b"x").result(5)


def test_resolve_remote_py_is_awaitable_and_resolves_paths(
        pair: tuple[Runtime, Runtime, str]) -> None:
    a, b, addr = pair
    pid = b.spawn(lambda m: None)
    b.register("svc", pid)
    b.register_path("/svc/one", pid)

    async def main() -> tuple[int | None, int | None, int | None]:
        return (await a.resolve_remote_py(addr, "svc"),
                await a.resolve_remote_py(addr, "/svc/one"),
                await a.resolve_remote_py(addr, "missing"))

    by_name, by_path, missing = asyncio.run(main())
    assert by_name is not None and by_name == by_path and missing is None


def test_many_messages_keep_their_order_and_are_batched(
        pair: tuple[Runtime, Runtime, str]) -> None:
    a, b, addr = pair
    got: list[bytes] = []
    pid = b.spawn(got.append)
    proxy = a.resolve_remote(addr, str(b.register("sink", pid)) and "sink")
    assert proxy is not None
    n = 20_000
    for i in range(n):
        # Alternate the two ways in: one sender, one receiver, one order.
        data = i.to_bytes(4, "big")
        assert (a.send(proxy, data) if i % 2 else a.send_remote(addr, pid, data))
    wait_until(lambda: len(got) == n, describe=lambda: len(got))
    assert [int.from_bytes(m, "big") for m in got] == list(range(n))
    stats = a.network_statistics()
    assert stats["messages_out"] >= n and stats["frames_out"] < stats["messages_out"]


def test_send_remote_many_delivers_in_order_mixed_with_single_sends(
        pair: tuple[Runtime, Runtime, str]) -> None:
    a, b, addr = pair
    got: list[bytes] = []
    pid = b.spawn(got.append)
    b.register("sink", pid)
    proxy = a.resolve_remote(addr, "sink")
    assert proxy is not None
    expected: list[bytes] = []
    for round_ in range(30):
        # Uniform sizes, mixed sizes (one header per size), bytes-like, one of each way in.
        uniform = [round_.to_bytes(2, "big") + i.to_bytes(4, "big") for i in range(500)]
        mixed = [b"m" * (i % 7) for i in range(50)]
        assert a.send_remote_many(addr, pid, uniform) == 500
        assert a.send_remote_many(addr, proxy, iter(mixed)) == 50   # any iterable
        assert a.send_remote_many("tcp://" + addr, pid, [bytearray(b"ba"), memoryview(b"mv")]) == 2
        assert a.send_many(proxy, (b"p", b"q")) == 2                # send_many to a proxy
        assert a.send_remote(addr, pid, b"single")
        expected += uniform + mixed + [b"ba", b"mv", b"p", b"q", b"single"]
    assert a.send_remote_many(addr, pid, []) == 0
    wait_until(lambda: len(got) >= len(expected), describe=lambda: len(got))
    assert got == expected
    assert all(m.__class__ is bytes for m in got)
    stats = a.network_statistics()
    assert stats["messages_out"] >= len(expected) > stats["frames_out"]


def test_send_remote_many_bad_input_raises_before_sending_anything(
        pair: tuple[Runtime, Runtime, str]) -> None:
    a, b, addr = pair
    got: list[bytes] = []
    pid = b.spawn(got.append)
    a.configure_network(max_payload_bytes=16)
    with pytest.raises(TypeError, match=r"payloads\[1\] is str"):
        a.send_remote_many(addr, pid, [b"ok", "text", b"ok"])
    with pytest.raises(TypeError, match="not one bytes"):
        a.send_remote_many(addr, pid, b"abc")   # a bytes object is not a list of messages
    with pytest.raises(TypeError, match="iterable"):
        a.send_remote_many(addr, pid, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"payloads\[2\] has 17 bytes"):
        a.send_remote_many(addr, pid, [b"a", b"b", b"x" * 17])
    with pytest.raises(ValueError, match=r"\[0, 2\*\*64\)"):
        a.send_remote_many(addr, -1, [b"a"])
    with pytest.raises(TypeError, match="int"):
        a.send_remote_many(addr, "1", [b"a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid mesh address"):
        a.send_remote_many("nohost", pid, [b"a"])
    proxy = a.resolve_remote(addr, str(b.register("sink", pid)) and "sink")
    assert proxy is not None
    with pytest.raises(TypeError, match=r"payloads\[0\] is int"):
        a.send_many(proxy, [1])
    # The same runtime then sends normally, and nothing of the refused batches went
    # out before (one sender, one order: it would arrive first).
    assert a.send_remote_many(addr, pid, [b"after"]) == 1
    wait_until(lambda: got == [b"after"], describe=lambda: got)


def test_a_whole_frame_queued_at_once_counts_in_mailbox_size_and_keeps_order(
        pair: tuple[Runtime, Runtime, str]) -> None:
    # A frame of equal messages to one actor is queued as one item and cut into messages
    # by the actor's scheduler thread; it must look like any other queued messages.
    a, b, addr = pair
    gate = threading.Event()
    got: list[bytes] = []

    def slow(m: bytes) -> None:
        gate.wait(20)
        got.append(m)

    pid = b.spawn(slow)
    first = [i.to_bytes(4, "big") for i in range(1000)]
    try:
        assert a.send_remote_many(addr, pid, first) == 1000
        # One message is being handled (blocked on the gate), the other 999 are queued.
        wait_until(lambda: b.mailbox_size(pid) == 999,
                   describe=lambda: b.mailbox_size(pid))
        assert b.actor_info(pid)["mailbox_size"] == 999
        assert a.send_remote(addr, pid, b"tail")
        wait_until(lambda: b.mailbox_size(pid) == 1000,
                   describe=lambda: b.mailbox_size(pid))
    finally:
        gate.set()
    wait_until(lambda: len(got) == 1001, describe=lambda: len(got))
    assert got == first + [b"tail"]
    assert b.mailbox_size(pid) == 0
    # A uniform frame for a pid nobody has is dropped and counted, message by message.
    assert a.send_remote_many(addr, 999_999, [b"x"] * 200) == 200
    wait_until(lambda: b.network_statistics()["messages_dropped"] == 200,
               describe=lambda: b.network_statistics())


def test_a_uniform_frame_to_a_bounded_actor_follows_its_overflow_policy(
        pair: tuple[Runtime, Runtime, str]) -> None:
    a, b, addr = pair
    gate, started = threading.Event(), threading.Event()
    got: list[bytes] = []

    def slow(m: bytes) -> None:
        started.set()
        gate.wait(20)
        got.append(m)

    pid = b.spawn_py_handler_bounded(slow, 100, 10)   # dropnew beyond 10 queued
    try:
        assert a.send_remote(addr, pid, b"first")
        assert started.wait(20)                       # "first" is being handled
        assert a.send_remote_many(addr, pid, [bytes([i]) for i in range(200)]) == 200
        wait_until(lambda: b.network_statistics()["messages_dropped"] == 190,
                   describe=lambda: b.network_statistics())
    finally:
        gate.set()
    wait_until(lambda: len(got) == 11, describe=lambda: got)
    assert got == [b"first"] + [bytes([i]) for i in range(10)]


def test_send_remote_many_to_an_unreachable_node_returns_0() -> None:
    with Runtime() as rt:
        rt.configure_network(io_timeout_s=2.0)
        assert rt.send_remote_many(f"127.0.0.1:{free_port()}", 1, [b"x", b"y"]) == 0


def test_remote_pid_sent_from_a_handler(pair: tuple[Runtime, Runtime, str]) -> None:
    a, b, addr = pair
    got: list[bytes] = []
    b.register("sink", b.spawn(got.append))
    proxy = a.resolve_remote(addr, "sink")
    assert proxy is not None
    forwarder = a.spawn(lambda m: a.send(proxy, m + b"!"))
    a.send(forwarder, b"hop")
    wait_until(lambda: got == [b"hop!"], describe=lambda: got)


def test_messages_to_an_unknown_remote_pid_are_dropped(pair: tuple[Runtime, Runtime, str]
                                                       ) -> None:
    a, b, addr = pair
    assert a.send_remote(addr, 999_999, b"x")  # handed over; the node drops it
    wait_until(lambda: b.network_statistics()["messages_dropped"] == 1)


# -- monitors ------------------------------------------------------------------------------

def _crasher(msg: bytes) -> None:
    raise RuntimeError("boom " + msg.decode())


@pytest.mark.parametrize("reason", ["Normal", "Crash", "Killed"])
def test_monitor_remote_reports_the_remote_exit_reason(
        pair: tuple[Runtime, Runtime, str], reason: str) -> None:
    a, b, addr = pair
    if reason == "Normal":
        pid = b.spawn_with_mailbox(lambda mb: mb.recv())  # returns after one message
    elif reason == "Crash":
        pid = b.spawn(_crasher)
    else:
        pid = b.spawn(lambda m: None)
    watcher = a.spawn_observed_handler()
    proxy = a.monitor_remote(addr, pid, watcher=watcher)
    assert a.monitor_remote(addr, proxy) == proxy  # a proxy of this address is accepted
    wait_until(lambda: pid in b._net.watchers)  # type: ignore[union-attr]
    if reason == "Killed":
        b.stop(pid)
    else:
        a.send(proxy, b"go")
    msg = wait_exit(a, watcher)
    assert (msg.from_pid, msg.reason) == (proxy, reason)
    assert msg.metadata["node"] == addr and msg.metadata["remote_pid"] == pid
    if reason == "Crash":
        assert "boom go" in msg.metadata["traceback"]
    assert not a.is_alive(proxy)


def test_monitor_remote_of_a_dead_actor_reports_at_once(
        pair: tuple[Runtime, Runtime, str]) -> None:
    a, b, addr = pair
    pid = b.spawn(lambda m: None)
    b.stop(pid)
    watcher = a.spawn_observed_handler()
    a.monitor_remote(addr, pid, watcher=watcher)
    assert wait_exit(a, watcher).reason == "Killed"


def test_stopping_a_proxy_demonitors_remotely(pair: tuple[Runtime, Runtime, str]) -> None:
    a, b, addr = pair
    pid = b.spawn(lambda m: None)
    proxy = a.monitor_remote(addr, pid)
    node = b._net
    assert node is not None
    wait_until(lambda: pid in node.watchers)
    assert a.stop(proxy) and not a.is_alive(proxy)
    wait_until(lambda: pid not in node.watchers, describe=lambda: node.watchers)
    assert b.is_alive(pid)  # only the proxy went


def test_graceful_shutdown_of_the_remote_ends_its_proxies(token: str) -> None:
    with Runtime(token=token) as a:
        b = Runtime(token=token)
        try:
            addr = b.listen("127.0.0.1:0")
            b.register("w", b.spawn(lambda m: None))
            watcher = a.spawn_observed_handler()
            proxy = a.resolve_remote(addr, "w")
            assert proxy is not None
            a.monitor(watcher, proxy)
            wait_until(lambda: b._net is not None and b._net.watchers)
        finally:
            b.shutdown()
        assert wait_exit(a, watcher).reason in ("Killed", "NodeDown")
        # The EXIT notices of a graceful shutdown can arrive before the closed connection
        # is noticed: the node reads as down (the connection drop) a moment later.
        wait_until(lambda: not a.is_node_up(addr), 20.0)


# -- unreachable nodes -------------------------------------------------------------------------

def test_refused_node_fails_fast_and_clearly() -> None:
    with Runtime() as rt:
        addr = f"127.0.0.1:{free_port()}"
        assert rt.send_remote(addr, 1, b"x") is False
        assert rt.is_node_up(addr) is False
        assert rt.resolve_remote(addr, "anything") is None
        watcher = rt.spawn_observed_handler()
        proxy = rt.monitor_remote(addr, 7, watcher=watcher)
        msg = wait_exit(rt, watcher)
        assert (msg.from_pid, msg.reason) == (proxy, "NodeDown")
        assert rt.network_statistics()["nodes"][addr] == "down"


def test_silent_node_times_out_instead_of_hanging() -> None:
    # A TCP listener that accepts connections and never speaks: the CURVE handshake never
    # completes, so only io_timeout_s can end the wait.
    with socket.socket() as srv, Runtime() as rt:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        addr = f"127.0.0.1:{srv.getsockname()[1]}"
        rt.configure_network(io_timeout_s=0.3, retry_after_s=0.01)
        assert rt.send_remote(addr, 1, b"x") is False
        assert rt.is_node_up(addr) is False

        async def resolve() -> int | None:
            return await rt.resolve_remote_py(addr, "n")

        assert asyncio.run(resolve()) is None


def test_configure_network_validates() -> None:
    with Runtime() as rt:
        with pytest.raises(ValueError, match="io_timeout_s"):
            rt.configure_network(io_timeout_s=0)
        with pytest.raises(ValueError, match="must exceed"):
            rt.configure_network(heartbeat_interval_s=2.0, heartbeat_timeout_s=1.0)
        assert rt.configure_network(max_payload_bytes=10)["max_payload_bytes"] == 10
        with pytest.raises(ValueError, match="max_payload_bytes"):
            rt.send_remote("127.0.0.1:1", 1, b"x" * 11)


# -- authentication and garbage ------------------------------------------------------------------

def test_wrong_token_is_refused_and_the_listener_keeps_serving(
        pair: tuple[Runtime, Runtime, str]) -> None:
    a, b, addr = pair
    got: list[bytes] = []
    pid = b.spawn(got.append)
    b.register("w", pid)
    with Runtime(token=Credentials.generate().token) as intruder:
        assert intruder.is_node_up(addr) is False
        assert intruder.send_remote(addr, pid, b"evil") is False
        assert intruder.resolve_remote(addr, "w") is None
    assert a.send_remote(addr, pid, b"ok")
    wait_until(lambda: got == [b"ok"], describe=lambda: got)


def test_unauthenticated_and_garbage_frames_are_dropped(
        pair: tuple[Runtime, Runtime, str], token: str) -> None:
    a, b, addr = pair
    got: list[bytes] = []
    pid = b.spawn(got.append)
    endpoint = canonical_address(addr)
    ctx = zmq.Context.instance()
    plain = ctx.socket(zmq.DEALER)
    plain.linger = 0
    authed = connect_client(zmq.DEALER, Credentials.from_token(token), endpoint)
    try:
        # No CURVE at all: libzmq refuses it before a byte reaches iris.
        plain.connect(endpoint)
        plain.send_multipart(encode_mesh_send(pid, b"unauthenticated"))
        header = encode(MsgType.MESH_SEND, b"\x00" * 12)[0]
        garbage = [
            b"garbage",
            header[:10],                                        # truncated header
            b"XX" + header[2:],                                 # bad magic
            header[:2] + b"\x09" + header[3:],                  # bad version
            header[:3] + b"\x7f" + header[4:],                  # unknown type
            encode(MsgType.MESH_SEND, b"\x00" * 4)[0],          # payload too short
            encode_mesh_send(pid, b"ok")[0] + b"\x01",          # trailing byte
            encode(MsgType.REQUEST, b"{not json")[0],
            encode_control(MsgType.REQUEST, {"op": "nonsense", "pid": 1})[0],
            encode(MsgType.MESH_RESOLVE, b"\xff\xff\xff\xff")[0],
        ]
        for frame in garbage:
            authed.send(frame)
        wait_until(lambda: b.network_statistics()["frames_dropped"] >= len(garbage),
                   describe=lambda: b.network_statistics())
        # The same authenticated connection is still served: a ping gets its pong.
        authed.send(encode(MsgType.PING, request_id=42)[0])
        assert authed.poll(20_000), "no pong after the garbage"
        reply = authed.recv()
        assert reply[3] == MsgType.PONG
        assert a.send_remote(addr, pid, b"after")
        wait_until(lambda: b"after" in got, describe=lambda: got)
        assert b"unauthenticated" not in got and got == [b"after"]
    finally:
        plain.close(0)
        authed.close(0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_frame_raises_only_protocol_error(frame: bytes) -> None:
    try:
        parse_frame(frame, 1 << 20)
    except ProtocolError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=64)), max_size=20))
def test_batches_round_trip(items: list[tuple[int, bytes]]) -> None:
    parts: list[bytes] = []
    pack_batch(items, parts)
    if items:
        assert parse_frame(b"".join(parts), 1 << 20) == items


# -- a real second process ---------------------------------------------------------------------

CHILD = """
import sys, iris
rt = iris.Runtime(token=sys.argv[1])
addr = rt.listen("127.0.0.1:0")
parent = sys.argv[2]

def echo(msg):
    rt.send_remote(parent, int.from_bytes(msg[:8], "big"), b"echo:" + msg[8:])

rt.register("echo", rt.spawn(echo))
print(addr, flush=True)
sys.stdin.read()  # serve until the parent closes stdin or kills us
"""


@pytest.fixture
def node(token: str) -> Iterator[tuple[Runtime, subprocess.Popen[str], str]]:
    """This process's runtime (listening) and a child process running another node."""
    before = set(mesh_threads())
    rt = Runtime(token=token)
    proc: subprocess.Popen[str] | None = None
    try:
        me = rt.listen("127.0.0.1:0")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        proc = subprocess.Popen([sys.executable, "-c", CHILD, token, me], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the child node did not report its address"
        addr = proc.stdout.readline().strip()
        assert addr, f"the child node exited with {proc.wait()}"
        yield rt, proc, addr
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    f.close()
        rt.shutdown()
    wait_until(lambda: not (set(mesh_threads()) - before), 10.0,
               lambda: set(mesh_threads()) - before)


@pytest.mark.slow
def test_second_process_echo_then_node_down_on_kill(
        node: tuple[Runtime, subprocess.Popen[str], str]) -> None:
    rt, proc, addr = node
    got: list[bytes] = []
    done = threading.Event()
    inbox = rt.spawn(lambda m: (got.append(m), done.set()))
    echo = rt.resolve_remote(addr, "echo")
    assert echo is not None
    assert rt.send(echo, inbox.to_bytes(8, "big") + b"hello")
    assert done.wait(20), "no echo from the child process"
    assert got == [b"echo:hello"]
    watcher = rt.spawn_observed_handler()
    assert rt.monitor_remote(addr, echo, watcher=watcher) == echo
    assert rt.is_node_up(addr)
    proc.kill()
    msg = wait_exit(rt, watcher)
    assert (msg.from_pid, msg.reason) == (echo, "NodeDown")
    assert msg.metadata["node"] == addr
    assert not rt.is_alive(echo)
    assert rt.send_remote(addr, 1, b"x") is False


@pytest.mark.slow
def test_silent_second_process_is_found_down_by_heartbeats(
        node: tuple[Runtime, subprocess.Popen[str], str]) -> None:
    rt, proc, addr = node
    rt.configure_network(heartbeat_interval_s=0.1, heartbeat_timeout_s=1.0)
    watcher = rt.spawn_observed_handler()
    echo = rt.resolve_remote(addr, "echo")
    assert echo is not None
    rt.monitor_remote(addr, echo, watcher=watcher)
    # Stopped, not dead: the TCP connection stays open, only the heartbeats go silent.
    proc.send_signal(signal.SIGSTOP)
    msg = wait_exit(rt, watcher)
    assert msg.reason == "NodeDown" and "heartbeat" in msg.metadata["error"]


def test_network_calls_after_shutdown_raise(token: str) -> None:
    rt = Runtime(token=token)
    rt.listen("127.0.0.1:0")
    rt.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        rt.send_remote("127.0.0.1:1", 1, b"x")
    with pytest.raises(RuntimeError, match="shut down"):
        rt.resolve_remote("127.0.0.1:1", "n")
    assert rt.network_statistics()["listening"] is None
