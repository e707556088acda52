"""The cluster daemon process: a head, a node manager, or both on one loop (internal).

``iris.init()`` starts one of these as the embedded cluster (head and node together, so the
cluster costs one control process); ``iris start --head`` and ``iris start --worker`` run
the same code in the foreground, in the ``iris`` process itself. Configuration arrives as
one JSON line on stdin (``python -m iris._daemon``) or as a dict (:func:`run`).

Lifetime: with ``watch_stdin`` the daemon exits when its stdin reaches EOF, which happens
when the driver that started it exits or crashes; SIGTERM, SIGINT and SIGHUP also stop it,
and so does a SHUTDOWN from the head (a node) or a ``shutdown`` request (a head). On its way
out it stops its workers, removes its shared-memory segments and its state file.

State files, under :func:`state_dir` (mode 0700, each file 0600)::

    cluster-<cluster id>.json   a head on this machine: address, token, pid, kind, ...
    node-<node id>.json         a worker node on this machine: the head it joined, pid

Addresses: a head may bind every interface (``0.0.0.0``) but *advertises* one concrete IP,
the one other machines reach it at; a node's workers bind a concrete IP and register that
address, since drivers on other machines connect to them directly.

This module also holds the small client side of the daemon's admin requests
(:func:`ask_head`), used by ``iris status``/``stop``/``submit`` and ``iris start --worker``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable
from typing import Any

from iris._transport import Credentials, Loop
from iris.exceptions import AuthenticationError, IrisError

__all__ = [
    "ask_head",
    "default_ip",
    "find_state",
    "list_states",
    "parse_address",
    "run",
    "state_dir",
    "write_state",
]

log = logging.getLogger("iris.daemon")


# ---------------------------------------------------------------------- state files
def state_dir() -> str:
    """Where clusters leave their address and token for local joiners (mode 0700).

    Its files are mode 0600 themselves; what matters about the directory is its owner.

    Raises:
        IrisError: the path exists but is not a directory of this user's (someone else
            could have made ``/tmp/iris-<uid>`` first, to swap the state files in it).
    """
    path = os.environ.get("IRIS_STATE_DIR") or f"/tmp/iris-{os.getuid()}"
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise IrisError(f"the iris state directory {path} is not a directory owned by this "
                        f"user: remove it, or set IRIS_STATE_DIR to a private directory")
    return path


def _state_path(cluster_id: str) -> str:
    return os.path.join(state_dir(), f"cluster-{cluster_id}.json")


def write_private_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (mode 0600)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_state(cluster_id: str, body: dict[str, Any], prefix: str = "cluster") -> str:
    """Write a state file (mode 0600) named ``<prefix>-<cluster_id>.json``; returns its path."""
    path = os.path.join(state_dir(), f"{prefix}-{cluster_id}.json")
    write_private_file(path, json.dumps(body))
    return path


def list_states(prefix: str = "cluster") -> list[dict[str, Any]]:
    """Bodies of the live state files with ``prefix``, newest first (each with ``mtime``).

    A file whose process is gone (its daemon was killed) is stale: it is removed.
    """
    out: list[dict[str, Any]] = []
    try:
        names = os.listdir(state_dir())
    except OSError:
        return out
    for name in names:
        if not (name.startswith(prefix + "-") and name.endswith(".json")):
            continue
        path = os.path.join(state_dir(), name)
        try:
            with open(path) as f:
                body = json.load(f)
            body["mtime"] = os.path.getmtime(path)
        except (OSError, ValueError):
            continue
        if not isinstance(body, dict):
            continue
        if not _alive(int(body.get("pid", 0))):
            try:
                os.unlink(path)
            except OSError:
                pass
            continue
        out.append(body)
    out.sort(key=lambda b: -b["mtime"])
    return out


def find_state(address: str | None) -> dict[str, Any] | None:
    """The state of a live local cluster at ``address`` (or the newest one, for "auto")."""
    for body in list_states("cluster"):
        if address in (None, "auto") or _same_address(address, str(body.get("address"))):
            return body
    return None


def _same_address(a: str, b: str) -> bool:
    return a.removeprefix("tcp://") == b.removeprefix("tcp://")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------- addresses
def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` or ``"tcp://host:port"`` (IPv6 as ``[addr]:port``) -> (host, port).

    Raises:
        ValueError: the text is not an address of that form; the message says why.
    """
    raw = text.strip()
    body = raw[len("tcp://"):] if raw.startswith("tcp://") else raw
    if "://" in body:
        raise ValueError(f"bad address {text!r}: only tcp:// addresses are supported")
    host, sep, port_text = body.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"bad address {text!r}: expected HOST:PORT, such as 10.0.0.5:6380")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"bad address {text!r}: port {port} is outside 1-65535")
    return host, port


def endpoint(host: str, port: int) -> str:
    """The ZeroMQ endpoint of ``host:port``."""
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def is_wildcard(host: str) -> bool:
    """Whether ``host`` means "every interface" rather than one address."""
    return host in ("0.0.0.0", "::", "*", "")


def default_ip(toward: str | None = None) -> str:
    """The IPv4 address of this machine that other machines most likely reach.

    With ``toward`` (a host we will talk to), the address of the interface the routing
    table picks for it; otherwise the default route's interface; failing that, the first
    non-loopback address (of an interface that is up, if any); failing all, ``127.0.0.1``.
    Connecting a UDP socket sends no packet: it only asks the routing table.
    """
    for target in ([toward] if toward else []) + ["192.0.2.1"]:  # TEST-NET-1: never routed
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((target, 9))
                ip = str(s.getsockname()[0])
            if ip and ip != "0.0.0.0":
                return ip
        except OSError:
            continue
    try:
        import psutil

        stats = psutil.net_if_stats()
        found = [(not (name in stats and stats[name].isup), str(a.address))
                 for name, addrs in psutil.net_if_addrs().items() for a in addrs
                 if a.family == socket.AF_INET and not a.address.startswith(("127.", "169.254."))]
        if found:
            return sorted(found, key=lambda f: f[0])[0][1]  # up and running first
    except Exception:  # noqa: BLE001  psutil missing or /proc unreadable: fall through
        pass
    return "127.0.0.1"


# ---------------------------------------------------------------------- admin requests
_HANDSHAKE_FAILED = 0x0800 | 0x2000 | 0x4000  # ZMQ_EVENT_HANDSHAKE_FAILED_{NO_DETAIL,PROTOCOL,AUTH}


def ask_head(address: str, token: str, op: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """Send the head at ``address`` the control request ``op``; return its reply.

    Raises:
        ValueError: ``address`` is malformed.
        AuthenticationError: the token is malformed, or the head refused it.
        IrisError: nothing answered within ``timeout_s`` (the message says whether the
            machine was reached at all), or the head answered with an error.
    """
    import zmq
    from zmq.utils.monitor import recv_monitor_message

    from iris._protocol import MsgType, decode_control, decode_frames, encode_control
    from iris._transport import connect_client

    host, port = parse_address(address)
    creds = Credentials.from_token(token)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise IrisError(f"cannot resolve the host {host!r} of {address}: "
                        f"{exc.strerror or exc}") from None
    sock = connect_client(zmq.DEALER, creds, endpoint(host, port))
    monitor = sock.get_monitor_socket()
    connected = False
    refused = False
    try:
        sock.send_multipart(encode_control(MsgType.REQUEST, {"op": op}, request_id=1))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            events = dict(poller.poll(int(left * 1000) + 1))
            if monitor in events:
                ev = recv_monitor_message(monitor)
                kind = int(ev["event"])
                if kind == zmq.EVENT_CONNECTED:
                    connected = True
                elif kind & _HANDSHAKE_FAILED:
                    refused = True
                    break
            if sock in events:
                for msg in decode_frames(sock.recv_multipart()):
                    if msg.type == MsgType.REPLY and msg.request_id == 1:
                        body = decode_control(msg)
                        if "error" in body:
                            raise IrisError(f"the head at {address} answered: {body['error']}")
                        return body
    finally:
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)
    if refused:
        raise AuthenticationError(f"the head at {address} refused the connection: the token "
                                  f"does not match the cluster's")
    if connected:
        raise IrisError(f"something listens at {address} but no iris head answered within "
                        f"{timeout_s:g} s (wrong port, or a head too busy to answer)")
    raise IrisError(f"no iris head at {address}: nothing accepted a connection within "
                    f"{timeout_s:g} s (is the head running, the address right, and the port "
                    f"open in the firewall?)")


# ---------------------------------------------------------------------- the daemon
def run(cfg: dict[str, Any], on_ready: Callable[[dict[str, Any]], None] | None = None,
        prespawned: list[Any] | None = None) -> None:
    """Run head and/or node manager until told to stop. Blocks.

    Args:
        cfg: the configuration (see the module docstring of ``iris._launch`` and
            ``iris.cli`` for the keys their callers set).
        on_ready: called once the head listens and the node manager started, with
            ``{"address", "cluster_id", "pid", ...}``.
        prespawned: worker processes already started (see ``iris._boot``), waiting for
            their configuration line on stdin.
    """
    from iris.head._service import DEFAULT_CLIENT_TTL_S, HeadService
    from iris.worker._node import NodeManager

    creds = Credentials.from_token(cfg["token"])
    cluster_id: str = cfg["cluster_id"]
    loop = Loop()
    head = node = None
    state_files: list[str] = []
    head_endpoint = cfg.get("head_endpoint")
    advertised = head_endpoint
    try:
        if cfg.get("head", True):
            head = HeadService(loop, creds, cfg.get("head_bind", "tcp://127.0.0.1:0"),
                               cluster_id, node_ttl_s=cfg.get("node_ttl_s", 5.0),
                               max_frame_bytes=cfg.get("max_frame_bytes", 256 << 20),
                               client_ttl_s=cfg.get("client_ttl_s", DEFAULT_CLIENT_TTL_S))
            head.start()
            advertised = _advertised(head.endpoint, cfg.get("advertise"))
            # The node on this machine reaches the head through loopback when the head
            # listens on every interface: that works whatever the advertised IP is.
            head_endpoint = head.endpoint.replace("tcp://0.0.0.0:", "tcp://127.0.0.1:")
            if cfg.get("write_state", True):
                state_files.append(write_state(cluster_id, {
                    "address": advertised, "token": creds.token, "pid": os.getpid(),
                    "cluster_id": cluster_id, "kind": cfg.get("kind", "embedded"),
                    "bind": head.endpoint, "num_workers": cfg.get("num_workers", 0),
                    "started": time.time()}))
        node_id = None
        if cfg.get("num_workers", 0) > 0 or not cfg.get("head", True):
            node_id = cfg.get("node_id") or f"n{cluster_id}{os.getpid()}"
            node_cfg = dict(cfg, head_endpoint=head_endpoint, node_id=node_id)
            node = NodeManager(loop, creds, node_cfg, prespawned=prespawned)
            node.start()
            if not cfg.get("head", True) and cfg.get("write_state", True):
                state_files.append(write_state(node_id, {
                    "address": advertised, "pid": os.getpid(), "cluster_id": cluster_id,
                    "kind": "node", "node_id": node_id, "num_workers": cfg["num_workers"],
                    "bind_host": cfg.get("bind_host", "127.0.0.1"), "started": time.time()},
                    prefix="node"))
        if cfg.get("watch_stdin"):
            loop.add_reader(sys.stdin.fileno(), lambda: _on_stdin(loop))
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if signal.getsignal(sig) != signal.SIG_IGN:  # e.g. SIGHUP under nohup stays so
                signal.signal(sig, lambda *_: loop.stop())
        ready = {"address": advertised, "cluster_id": cluster_id, "pid": os.getpid()}
        ready_fd = cfg.get("ready_fd")
        if ready_fd is not None:
            os.write(ready_fd, json.dumps(ready).encode() + b"\n")
            os.close(ready_fd)
        if cfg.get("print_ready"):
            print(json.dumps(ready), flush=True)
        if on_ready is not None:
            on_ready(dict(ready, bind=head.endpoint if head else None, node_id=node_id,
                          state_files=list(state_files)))
        loop.run()
    finally:
        if node is not None:
            node.close()
        if head is not None:
            head.close()
        for path in state_files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        loop.close()


def _advertised(bound: str, advertise: str | None) -> str:
    """The head's address for others: ``advertise`` (an IP or host), else the bound one
    with a wildcard host replaced by this machine's default IP."""
    host, port = parse_address(bound)
    if advertise:
        return endpoint(advertise, port)
    if is_wildcard(host):
        return endpoint(default_ip(), port)
    return bound


def _on_stdin(loop: Loop) -> None:
    if not os.read(sys.stdin.fileno(), 4096):
        loop.stop()


def main() -> None:
    """``python -m iris._daemon``: read the config line from stdin and run."""
    line = sys.stdin.readline()
    if not line:
        return
    serve(json.loads(line))


def serve(cfg: dict[str, Any], prespawned: list[Any] | None = None) -> None:
    """Run the daemon process until it is told to stop, then leave at once."""
    logging.basicConfig(level=os.environ.get("IRIS_LOG_LEVEL", "WARNING").upper(),
                        format="[iris daemon] %(levelname)s %(name)s: %(message)s")
    run(cfg, prespawned=prespawned)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
