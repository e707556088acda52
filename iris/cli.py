"""The ``iris`` command line: start, join, inspect, stop a cluster and submit batch jobs.

::

    iris start --head   [--host 0.0.0.0] [--port 6380] [--num-workers N] [--token-file PATH]
    iris start --worker --address HOST:PORT [--token-file PATH | --token T] [--host IP]
    iris status [--address HOST:PORT]          iris stop [--address HOST:PORT]
    iris submit [--address HOST:PORT] script.py [args...]
    iris list

``iris start`` runs in the foreground: the ``iris`` process *is* the head (or the node
manager) and its worker processes are its children; Ctrl-C, SIGTERM or ``iris stop`` stop
it and all of them. Every other command asks a head over the network and gives up after
``--timeout`` seconds with a message saying what went wrong.

Where a command needs the address and the token it takes, in this order: the options, the
environment (``IRIS_ADDRESS``, ``IRIS_TOKEN``), then the state files of the clusters started
on this machine (so on the head's own machine ``iris status`` needs nothing).

Exit codes: 0 success; 1 an error explained on stderr (unreachable head, refused token, ...);
2 bad command-line arguments; ``iris submit`` returns the script's own exit code.

Only argparse and the standard library are imported up front, so ``iris --help`` is quick;
ZeroMQ and the daemon load when a command needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["main"]

DEFAULT_PORT = 6380
_TOKEN_CHARS = 40  # a z85-encoded CURVE secret key
_EXAMPLES = """\
examples:
  iris start --head --token-file ~/.iris-token      # on the head machine
  iris start --worker --address 10.0.0.5:6380 --token-file ~/.iris-token   # on each other machine
  iris submit --address 10.0.0.5:6380 job.py --size 100
  iris status --address 10.0.0.5:6380
  iris stop --address 10.0.0.5:6380
"""


class CliError(Exception):
    """A user-facing error: printed as ``iris: error: <message>``, exit code 1."""


# ---------------------------------------------------------------------- parser
def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0-65535")
    return value


def _add_connection_options(p: argparse.ArgumentParser, timeout: float = 5.0) -> None:
    p.add_argument("--address", metavar="HOST:PORT",
                   help="the head's address (default: $IRIS_ADDRESS, else the newest cluster "
                        "started on this machine)")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token-file", metavar="PATH",
                     help="file holding the cluster token (as written by `iris start --head "
                          "--token-file`)")
    tok.add_argument("--token", help="the cluster token (visible to other users in `ps`: "
                                     "prefer --token-file or $IRIS_TOKEN)")
    p.add_argument("--timeout", type=_positive_float, default=timeout, metavar="SECONDS",
                   help=f"how long to wait for the head to answer (default {timeout:g})")


def build_parser() -> argparse.ArgumentParser:
    """The ``iris`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="iris", description="Run and use an iris cluster.", epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from iris import __version__

    parser.add_argument("--version", action="version", version=f"iris {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("start", help="run a head or a worker node in the foreground",
                       description="Run a head (--head) or a worker node that joins one "
                                   "(--worker) in the foreground; Ctrl-C or SIGTERM stops it "
                                   "and all its worker processes.")
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start a cluster's head")
    role.add_argument("--worker", action="store_true",
                      help="start a node whose workers join the head at --address")
    p.add_argument("--address", metavar="HOST:PORT", help="(--worker) the head's address")
    p.add_argument("--host", metavar="IP",
                   help="--head: the address to listen on (default 0.0.0.0, every interface; "
                        "others are told this machine's main IP). --worker: the IP the workers "
                        "listen on, which drivers on other machines must reach (default: this "
                        "machine's IP on the route to the head)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"(--head) the port to listen on (default {DEFAULT_PORT}; 0 = any free)")
    p.add_argument("--num-workers", type=_workers, metavar="N",
                   help="worker processes on this machine (default: one per core; with "
                        "--head, 0 = a head that runs no tasks)")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token-file", metavar="PATH",
                     help="--head: where to keep the cluster token (reused if the file "
                          "holds one, else a new token is written there, mode 0600). "
                          "--worker: the file to read the token from")
    tok.add_argument("--token", help="(--worker) the cluster token (visible in `ps`: prefer "
                                     "--token-file or $IRIS_TOKEN)")
    p.add_argument("--node-timeout", type=_positive_float, default=5.0, metavar="SECONDS",
                   help="(--head) a node silent this long is declared dead and its tasks "
                        "are retried elsewhere (default 5)")
    p.add_argument("--client-timeout", type=_positive_float, default=30.0,
                   metavar="SECONDS",
                   help="(--head) a driver silent this long is declared gone, and the "
                        "actors it made that are not detached are killed (default 30)")
    p.add_argument("--timeout", type=_positive_float, default=10.0, metavar="SECONDS",
                   help="(--worker) how long to wait for the head to answer (default 10)")
    p.set_defaults(func=_cmd_start)

    p = sub.add_parser("status", help="show a cluster's nodes and workers")
    _add_connection_options(p)
    p.add_argument("--json", action="store_true", help="print the head's answer as JSON")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("stop", help="stop a cluster: its head and every node")
    _add_connection_options(p)
    p.set_defaults(func=_cmd_stop)

    p = sub.add_parser("submit", help="run a Python script as a batch job on a cluster",
                       description="Run SCRIPT with IRIS_ADDRESS and IRIS_TOKEN set, so that "
                                   "iris.init() in it joins the cluster; exits with the "
                                   "script's exit code.")
    _add_connection_options(p)
    p.add_argument("script", help="the Python script to run")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("list", help="list the clusters and nodes started on this machine")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_list)
    return parser


def _glue_tokens(argv: Sequence[str]) -> list[str]:
    """``--token -abc...`` as ``--token=-abc...``: a token may start with ``-`` (it is z85
    text), which argparse would otherwise take for an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--token" and i + 1 < len(argv) and len(argv[i + 1]) == _TOKEN_CHARS:
            out.append(f"--token={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iris`` console script; returns the exit code."""
    args = build_parser().parse_args(_glue_tokens(sys.argv[1:] if argv is None else argv))
    from iris.exceptions import IrisError

    try:
        return int(args.func(args) or 0)
    except (CliError, IrisError, ValueError, OSError) as exc:
        print(f"iris: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# ---------------------------------------------------------------------- helpers
def _fail(message: str) -> NoReturn:
    raise CliError(message)


def _normalize(address: str) -> str:
    from iris._daemon import parse_address

    host, port = parse_address(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _resolve_address(args: argparse.Namespace) -> str:
    """--address, else $IRIS_ADDRESS, else the newest cluster started on this machine."""
    address = args.address or os.environ.get("IRIS_ADDRESS")
    if not address:
        from iris._daemon import find_state

        state = find_state("auto")
        if state is None:
            _fail("no cluster address: pass --address HOST:PORT or set IRIS_ADDRESS (no "
                  "cluster was started on this machine)")
        address = str(state["address"])
    return _normalize(address)


def _read_token_file(path: str) -> str:
    path = os.path.expanduser(path)
    try:
        with open(path) as f:
            token = f.read().strip()
        mode = os.stat(path).st_mode
    except OSError as exc:
        _fail(f"cannot read the token file {path}: {exc.strerror or exc}")
    if not token:
        _fail(f"the token file {path} is empty")
    if mode & 0o077:
        print(f"iris: warning: the token file {path} is readable by other users "
              f"(mode {mode & 0o777:o}); run `chmod 600 {path}`", file=sys.stderr)
    return token


def _resolve_token(args: argparse.Namespace, address: str) -> str:
    """--token, else --token-file, else $IRIS_TOKEN, else this machine's state file."""
    if args.token:
        return str(args.token)
    if args.token_file:
        return _read_token_file(args.token_file)
    if os.environ.get("IRIS_TOKEN"):
        return os.environ["IRIS_TOKEN"]
    from iris._daemon import find_state

    state = find_state(address)
    if state is not None and state.get("token"):
        return str(state["token"])
    _fail(f"no token for the cluster at {address}: pass --token-file PATH (the file "
          f"`iris start --head --token-file PATH` wrote, copied to this machine), set "
          f"IRIS_TOKEN, or pass --token")


def _check_token(token: str) -> str:
    from iris._transport import Credentials

    return Credentials.from_token(token).token  # AuthenticationError if malformed


def _setup_logging(role: str) -> None:
    import logging

    logging.basicConfig(level=os.environ.get("IRIS_LOG_LEVEL", "WARNING").upper(),
                        format=f"[iris {role}] %(levelname)s %(name)s: %(message)s")


def _unique_node_id(kind: str) -> str:
    """A node id no other machine will pick: host name, pid and random bits."""
    import secrets
    import socket

    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}-{kind}{os.getpid()}-{secrets.token_hex(2)}"


def _check_bindable(ip: str) -> None:
    import socket

    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
    except OSError as exc:
        _fail(f"cannot listen on {ip}: {exc.strerror or exc} (is it an address of this "
              f"machine? see `ip addr`)")


def _default_workers(n: int | None) -> int:
    return (os.cpu_count() or 1) if n is None else n


# ---------------------------------------------------------------------- start
def _cmd_start(args: argparse.Namespace) -> int:
    if args.head:
        if args.address:
            _fail("--address is for --worker; a head listens on --host and --port")
        if args.token:
            _fail("a head does not take --token: it makes one (or reads --token-file, or "
                  "$IRIS_TOKEN)")
        return _start_head(args)
    if not args.address:
        _fail("iris start --worker needs --address HOST:PORT, the address "
              "`iris start --head` printed")
    return _start_worker(args)


def _head_token(args: argparse.Namespace) -> tuple[str, str]:
    """The head's token and a description of where it lives."""
    from iris._daemon import write_private_file

    if args.token_file:
        path = os.path.abspath(os.path.expanduser(args.token_file))
        if os.path.exists(path):
            token = _check_token(_read_token_file(path))
            return token, f"read from {path}"
        token = _new_token()
        try:
            write_private_file(path, token + "\n")
        except OSError as exc:
            _fail(f"cannot write the token file {path}: {exc.strerror or exc}")
        return token, f"written to {path} (mode 0600)"
    if os.environ.get("IRIS_TOKEN"):
        return _check_token(os.environ["IRIS_TOKEN"]), "from $IRIS_TOKEN"
    return _new_token(), ""


def _new_token() -> str:
    """A fresh cluster token that does not start with ``-`` (easier on command lines)."""
    from iris._transport import Credentials

    while True:
        token = Credentials.generate().token
        if not token.startswith("-"):
            return token


def _start_head(args: argparse.Namespace) -> int:
    import secrets

    from iris._daemon import default_ip, endpoint, is_wildcard, run

    host = args.host or "0.0.0.0"
    if not is_wildcard(host):
        _check_bindable(host)
    num_workers = _default_workers(args.num_workers)
    token, token_where = _head_token(args)
    advertise_ip = default_ip() if is_wildcard(host) else host
    ttl = float(args.node_timeout)
    cfg: dict[str, Any] = {
        "token": token, "cluster_id": secrets.token_hex(4), "head": True, "kind": "head",
        "head_bind": endpoint(host if not is_wildcard(host) else "0.0.0.0", args.port),
        "advertise": advertise_ip, "num_workers": num_workers, "node_ttl_s": ttl,
        "bind_host": advertise_ip, "heartbeat_s": min(1.0, ttl / 5),
        "node_id": _unique_node_id("head"), "client_ttl_s": float(args.client_timeout),
    }
    _setup_logging("head")

    def ready(info: dict[str, Any]) -> None:
        _print_head_banner(info, args, num_workers, token, token_where)

    _run_daemon(run, cfg, ready, f"cannot start a head on {host}:{args.port}")
    print("iris head stopped.", flush=True)
    return 0


def _run_daemon(run: Any, cfg: dict[str, Any], ready: Any, what: str) -> None:
    import zmq

    try:
        run(cfg, on_ready=ready)
    except zmq.ZMQError as exc:
        hint = " (another head on that port? choose one with --port)" \
            if exc.errno == zmq.EADDRINUSE else ""
        _fail(f"{what}: {exc}{hint}")
    finally:
        _flush_sockets()


def _flush_sockets(timeout_s: float = 2.0) -> None:
    """Terminate ZeroMQ so that lingering messages (the head's SHUTDOWN to its nodes) are
    sent before the process exits; give up after ``timeout_s``."""
    import threading

    from iris._transport import get_context

    t = threading.Thread(target=get_context().term, name="iris-flush", daemon=True)
    t.start()
    t.join(timeout_s)


def _print_head_banner(info: dict[str, Any], args: argparse.Namespace, num_workers: int,
                       token: str, token_where: str) -> None:
    """Tell the user where the head is, how to join it, and that the token is a secret."""
    address = _normalize(str(info["address"]))
    bind = _normalize(str(info["bind"]))
    if args.token_file:
        token_line = f"token     {token_where}"
        auth = " --token-file " + shlex.quote(os.path.abspath(os.path.expanduser(
            args.token_file)))
        env = ""
        copy = "Copy the token file to the other machines over a secure channel (scp), mode 0600."
    else:
        where = token_where or "also kept, mode 0600, in this machine's state directory"
        token_line = f"token     {token}\n            ({where})"
        auth = ""
        env = f"IRIS_TOKEN={shlex.quote(token)} "
        copy = ("Pass it to other machines over a secure channel, never in a public place "
                "(`--token-file PATH` keeps it in a file instead).")
    workers = f"{num_workers} on this machine" if num_workers else \
        "none on this machine (head only)"
    lines = [
        f"iris head running: cluster {info['cluster_id']}, pid {info['pid']}",
        f"  address   {address}" + (f"   (listening on {bind})" if bind != address else ""),
        f"  workers   {workers}",
        f"  {token_line}",
        "",
        "The token is a secret: whoever has it can run any code on this cluster's machines.",
        copy,
        "",
        "Add a machine (run there):",
        f"  {env}iris start --worker --address {address}{auth}",
        "Run a batch job (or call iris.init(address=..., token=...) in a driver):",
        f"  {env}iris submit --address {address}{auth} script.py",
        "Status and stop (on this machine `iris status` and `iris stop` alone will do):",
        f"  iris status --address {address}{auth}",
        f"  iris stop --address {address}{auth}      (or Ctrl-C here)",
    ]
    print("\n".join(lines), flush=True)


def _start_worker(args: argparse.Namespace) -> int:
    from iris._daemon import ask_head, default_ip, endpoint, is_wildcard, parse_address, run

    address = _normalize(args.address)
    head_host, head_port = parse_address(address)
    token = _check_token(_resolve_token(args, address))
    host = args.host or default_ip(toward=head_host)
    if is_wildcard(host):
        _fail(f"--host {host} is not an address others can reach: a worker node needs this "
              f"machine's IP (see `ip addr`)")
    _check_bindable(host)
    num_workers = _default_workers(args.num_workers)
    if num_workers < 1:
        _fail("a worker node needs --num-workers 1 or more")
    status = ask_head(address, token, "status", timeout_s=args.timeout)
    ttl = float(status.get("node_ttl_s") or 5.0)
    node_id = _unique_node_id("node")
    cfg: dict[str, Any] = {
        "token": token, "cluster_id": str(status["cluster_id"]), "head": False,
        "head_endpoint": endpoint(head_host, head_port), "num_workers": num_workers,
        "bind_host": host, "node_id": node_id, "heartbeat_s": min(1.0, ttl / 5),
        "head_timeout_s": 3 * ttl, "kind": "node",
    }
    _setup_logging("node")

    def ready(info: dict[str, Any]) -> None:
        print(f"iris worker node {node_id} joined cluster {status['cluster_id']} at {address}\n"
              f"  workers   {num_workers}, listening on {host}\n"
              f"Stop it with Ctrl-C (or stop the whole cluster: iris stop --address {address})",
              flush=True)

    _run_daemon(run, cfg, ready, f"cannot start a worker node on {host}")
    print("iris worker node stopped.", flush=True)
    return 0


# ---------------------------------------------------------------------- status / stop
def _ask(args: argparse.Namespace, op: str) -> tuple[str, str, dict[str, Any]]:
    from iris._daemon import ask_head

    address = _resolve_address(args)
    token = _resolve_token(args, address)
    return address, token, ask_head(address, token, op, timeout_s=args.timeout)


def _cmd_status(args: argparse.Namespace) -> int:
    address, _token, st = _ask(args, "status")
    if args.json:
        print(json.dumps(dict(st, address=address), indent=2, sort_keys=True))
        return 0
    workers: list[dict[str, Any]] = list(st.get("workers") or [])
    nodes: list[str] = list(st.get("nodes") or [])
    print(f"cluster {st.get('cluster_id')} at {address}")
    print(f"  nodes {len(nodes)}, workers {len(workers)}, drivers connected "
          f"{st.get('clients', 0)}")
    if nodes:
        rows = [("NODE", "WORKERS", "WORKER ADDRESS", "HOST")]
        for n in nodes:
            mine = [w for w in workers if w.get("node_id") == n]
            addr = str(mine[0].get("address", "")) if mine else "-"
            ip = addr[len("tcp://"):].rsplit(":", 1)[0] if addr.startswith("tcp://") else addr
            rows.append((n, str(len(mine)), ip, str(mine[0].get("host", "")) if mine else "-"))
        _print_table(rows)
    return 0


def _print_table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _cmd_stop(args: argparse.Namespace) -> int:
    from iris._daemon import find_state

    address, _token, _reply = _ask(args, "shutdown")
    state = find_state(address)
    if state is not None:  # a head on this machine: wait until it has stopped its workers
        import time

        deadline = time.monotonic() + args.timeout
        while find_state(address) is not None:  # its state file goes last
            if time.monotonic() > deadline:
                _fail(f"the head at {address} (pid {state['pid']}) accepted the request but "
                      f"was still running after {args.timeout:g} s")
            time.sleep(0.05)
    print(f"stopped the cluster at {address}")
    return 0


# ---------------------------------------------------------------------- submit
def _cmd_submit(args: argparse.Namespace) -> int:
    import subprocess

    script = args.script
    if not os.path.isfile(script):
        _fail(f"no such script: {script}")
    address, token, st = _ask(args, "status")
    env = dict(os.environ, IRIS_ADDRESS=address, IRIS_TOKEN=token)
    print(f"iris: running {script} on cluster {st.get('cluster_id')} at {address}",
          file=sys.stderr, flush=True)
    proc = subprocess.Popen([sys.executable, script, *args.args], env=env)
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:  # the script got the same Ctrl-C: let it finish
            continue
    return 128 - code if code < 0 else code


# ---------------------------------------------------------------------- list
def _cmd_list(args: argparse.Namespace) -> int:
    import time

    from iris._daemon import list_states

    clusters = [{k: v for k, v in s.items() if k != "token"} for s in list_states("cluster")]
    nodes = list_states("node")
    if args.json:
        print(json.dumps({"clusters": clusters, "nodes": nodes}, indent=2, sort_keys=True))
        return 0
    if not clusters and not nodes:
        print("no iris cluster or node is running on this machine")
        return 0

    def when(s: dict[str, Any]) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(s.get("started")
                                                                       or s["mtime"])))

    if clusters:
        rows = [("CLUSTER", "ADDRESS", "KIND", "PID", "WORKERS", "STARTED")]
        rows += [(str(s.get("cluster_id")), _normalize(str(s.get("address"))),
                  str(s.get("kind", "embedded")), str(s.get("pid")),
                  str(s.get("num_workers", "?")), when(s)) for s in clusters]
        _print_table(rows)
    if nodes:
        if clusters:
            print()
        rows = [("NODE", "JOINED", "CLUSTER", "PID", "WORKERS", "STARTED")]
        rows += [(str(s.get("node_id")), _normalize(str(s.get("address"))),
                  str(s.get("cluster_id")), str(s.get("pid")), str(s.get("num_workers")),
                  when(s)) for s in nodes]
        _print_table(rows)
    return 0


def _entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
