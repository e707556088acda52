"""The cluster daemon process: a head, a node manager, or both on one loop (internal).

``iris.init()`` starts one of these as the embedded cluster (head and node together, so the
cluster costs one control process); ``iris start --head`` and ``iris start --worker`` run
the same code in the foreground. Configuration arrives as one JSON line on stdin.

Lifetime: with ``watch_stdin`` the daemon exits when its stdin reaches EOF, which happens
when the driver that started it exits or crashes; SIGTERM and SIGINT also stop it. On its
way out it stops its workers, removes its shared-memory segments and its state file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from typing import Any

from iris._transport import Credentials, Loop

__all__ = ["run", "state_dir", "write_state", "find_state"]

log = logging.getLogger("iris.daemon")


def state_dir() -> str:
    """Where clusters leave their address and token for local joiners (mode 0700)."""
    path = os.environ.get("IRIS_STATE_DIR") or f"/tmp/iris-{os.getuid()}"
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _state_path(cluster_id: str) -> str:
    return os.path.join(state_dir(), f"cluster-{cluster_id}.json")


def write_state(cluster_id: str, body: dict[str, Any]) -> str:
    """Write a cluster's state file (mode 0600); returns its path."""
    path = _state_path(cluster_id)
    fd = os.open(path + ".tmp", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(body, f)
    os.replace(path + ".tmp", path)
    return path


def find_state(address: str | None) -> dict[str, Any] | None:
    """The state of a live local cluster at ``address`` (or the newest one, for "auto")."""
    best: tuple[float, dict[str, Any]] | None = None
    try:
        names = os.listdir(state_dir())
    except OSError:
        return None
    for name in names:
        if not (name.startswith("cluster-") and name.endswith(".json")):
            continue
        path = os.path.join(state_dir(), name)
        try:
            with open(path) as f:
                body = json.load(f)
            mtime = os.path.getmtime(path)
        except (OSError, ValueError):
            continue
        if not _alive(int(body.get("pid", 0))):
            continue
        if address in (None, "auto") or _same_address(address, str(body.get("address"))):
            if best is None or mtime > best[0]:
                best = (mtime, body)
    return best[1] if best else None


def _same_address(a: str, b: str) -> bool:
    strip = (lambda s: s[len("tcp://"):] if s.startswith("tcp://") else s)
    return strip(a) == strip(b)


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


def run(cfg: dict[str, Any]) -> None:
    """Run head and/or node manager until told to stop. Blocks."""
    from iris.head._service import HeadService
    from iris.worker._node import NodeManager

    creds = Credentials.from_token(cfg["token"])
    cluster_id: str = cfg["cluster_id"]
    loop = Loop()
    head = node = None
    state_file = None
    head_endpoint = cfg.get("head_endpoint")
    try:
        if cfg.get("head", True):
            head = HeadService(loop, creds, cfg.get("head_bind", "tcp://127.0.0.1:0"),
                               cluster_id, node_ttl_s=cfg.get("node_ttl_s", 5.0),
                               max_frame_bytes=cfg.get("max_frame_bytes", 256 << 20))
            head.start()
            head_endpoint = head.endpoint
            advertised = cfg.get("advertise") or head_endpoint
            if cfg.get("write_state", True):
                state_file = write_state(cluster_id, {
                    "address": advertised, "token": creds.token, "pid": os.getpid(),
                    "cluster_id": cluster_id})
        if cfg.get("num_workers", 0) > 0 or not cfg.get("head", True):
            node_cfg = dict(cfg, head_endpoint=head_endpoint,
                            node_id=cfg.get("node_id") or f"n{cluster_id}{os.getpid()}")
            node = NodeManager(loop, creds, node_cfg)
            node.start()
        if cfg.get("watch_stdin"):
            loop.add_reader(sys.stdin.fileno(), lambda: _on_stdin(loop))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: loop.stop())
        ready = {"address": head_endpoint, "cluster_id": cluster_id, "pid": os.getpid()}
        ready_fd = cfg.get("ready_fd")
        if ready_fd is not None:
            os.write(ready_fd, json.dumps(ready).encode() + b"\n")
            os.close(ready_fd)
        if cfg.get("print_ready"):
            print(json.dumps(ready), flush=True)
        loop.run()
    finally:
        if node is not None:
            node.close()
        if head is not None:
            head.close()
        if state_file is not None:
            try:
                os.unlink(state_file)
            except FileNotFoundError:
                pass
        loop.close()


def _on_stdin(loop: Loop) -> None:
    if not os.read(sys.stdin.fileno(), 4096):
        loop.stop()


def main() -> None:
    """``python -m iris._daemon``: read the config line from stdin and run."""
    line = sys.stdin.readline()
    if not line:
        return
    cfg = json.loads(line)
    logging.basicConfig(level=os.environ.get("IRIS_LOG_LEVEL", "WARNING"),
                        format="[iris daemon] %(levelname)s %(name)s: %(message)s")
    run(cfg)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
