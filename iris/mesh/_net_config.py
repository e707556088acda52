"""Mesh addresses, credentials and network settings. Internal module.

Addresses: ``"host:port"`` or ``"tcp://host:port"`` (IPv6 as ``"[::1]:9000"``); the
canonical form, used as the key of a node everywhere, is ``"tcp://host:port"``.

Credentials: every mesh socket is CURVE-authenticated with one key pair, whose secret key
is the *token*. A runtime takes, in this order: ``Runtime(token=...)`` or
``listen(..., token=...)``; ``$IRIS_TOKEN``; the per-user file ``mesh-token`` in the iris
state directory (``$IRIS_STATE_DIR`` or ``/tmp/iris-<uid>``, mode 0700), created mode 0600
on first use, so processes of one user on one machine find each other with no set-up.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from iris._transport import Credentials

__all__ = ["NetSettings", "TOKEN_ENV", "canonical_address", "load_credentials",
           "token_file_path"]

TOKEN_ENV = "IRIS_TOKEN"
_TOKEN_FILE = "mesh-token"
_ADDRESS = re.compile(r"^(?:tcp://)?(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(\d{1,5})$")


@dataclass(frozen=True, slots=True)
class NetSettings:
    """Timeouts and limits of the mesh network (``Runtime.configure_network``).

    Attributes:
        io_timeout_s: bound on one network operation: first contact with a node, a remote
            resolve, ``is_node_up``.
        heartbeat_interval_s: how often a connected node is pinged (0x02).
        heartbeat_timeout_s: silence after which a connected node is declared down, and its
            proxies exit with reason NodeDown.
        max_payload_bytes: the largest user message (bytes) sent or accepted.
        retry_after_s: after a node was found down, sends to it fail at once for this long
            before the next one tries to connect again.
    """

    io_timeout_s: float = 5.0
    heartbeat_interval_s: float = 1.0
    heartbeat_timeout_s: float = 5.0
    max_payload_bytes: int = 16 * 1024 * 1024
    retry_after_s: float = 1.0

    def updated(self, **changes: float | int | None) -> NetSettings:
        """A copy with the given (non-None) fields changed, validated."""
        given = {k: v for k, v in changes.items() if v is not None}
        for key, value in given.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{key} must be a number > 0, got {value!r}")
        if "max_payload_bytes" in given:
            given["max_payload_bytes"] = int(given["max_payload_bytes"])
        new = replace(self, **given)  # type: ignore[arg-type]
        if new.heartbeat_timeout_s <= new.heartbeat_interval_s:
            raise ValueError(f"heartbeat_timeout_s ({new.heartbeat_timeout_s}) must exceed "
                             f"heartbeat_interval_s ({new.heartbeat_interval_s})")
        return new


def canonical_address(address: object) -> str:
    """``"tcp://host:port"`` for a mesh address.

    Raises:
        ValueError: ``address`` is not ``"host:port"`` or ``"tcp://host:port"``.
    """
    if not isinstance(address, str):
        raise ValueError(f"a mesh address is a str 'host:port' or 'tcp://host:port', "
                         f"e.g. '127.0.0.1:9000'; got {address!r}")
    m = _ADDRESS.match(address.strip())
    if m is None or int(m.group(2)) > 65535:
        raise ValueError(f"invalid mesh address {address!r}: expected 'host:port' or "
                         f"'tcp://host:port' with a port 0-65535, e.g. '127.0.0.1:9000'")
    return f"tcp://{m.group(1)}:{int(m.group(2))}"


def display_address(canonical: str) -> str:
    """``"host:port"`` (the README's form) of a canonical address."""
    return canonical[len("tcp://"):] if canonical.startswith("tcp://") else canonical


def token_file_path() -> str:
    """The per-user mesh token file (it may not exist yet)."""
    from iris._daemon import state_dir

    return os.path.join(state_dir(), _TOKEN_FILE)


def load_credentials(token: str | None) -> Credentials:
    """The mesh credentials: ``token``, else ``$IRIS_TOKEN``, else the per-user token file.

    Raises:
        AuthenticationError: a token was given (or found) but is malformed.
    """
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if token is None:
        token = _file_token()
    return Credentials.from_token(token)


def _file_token() -> str:
    """Read the per-user token file, creating it (mode 0600, atomically) if missing."""
    path = token_file_path()
    for _ in range(50):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return text
        except FileNotFoundError:
            pass
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(Credentials.generate().token + "\n")
            try:
                os.link(tmp, path)  # atomic, and fails if another process won the race
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    raise RuntimeError(f"could not read or create the mesh token file {path}; set "
                       f"${TOKEN_ENV} or pass Runtime(token=...)")
