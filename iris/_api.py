"""The public cluster API: ``init``, ``shutdown``, ``get``, ``put``, ``wait``.

One process has at most one connection to a cluster at a time. ``init()`` without an
address starts an embedded local cluster that lives as long as the driver; with an address
it joins a running cluster. Inside a worker process, the first ``.remote()`` or ``get``
connects to the worker's own cluster by itself.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from iris import _context
from iris._refs import ObjectRef
from iris.exceptions import AuthenticationError, NotInitializedError

__all__ = ["ClusterContext", "cancel", "get", "init", "is_initialized", "put", "shutdown",
           "wait"]

_lock = threading.RLock()
_client: Any = None
_cluster: Any = None
_ctx: ClusterContext | None = None
_atexit_registered = False


@dataclass(frozen=True)
class ClusterContext:
    """What ``iris.init()`` returns: where the cluster is.

    Another driver joins the same cluster with ``iris.init(address=ctx.address)`` (on this
    machine the token is found by itself; elsewhere pass ``token=`` or set ``IRIS_TOKEN``).
    Usable as a context manager that shuts iris down on exit.
    """

    address: str
    cluster_id: str
    embedded: bool
    num_workers: int | None = None
    token: str = field(default="", repr=False)

    def __enter__(self) -> ClusterContext:
        return self

    def __exit__(self, *exc: object) -> None:
        shutdown()


def _endpoint(address: str) -> str:
    return address if "://" in address else f"tcp://{address}"


def _credentials(address: str, token: str | None) -> tuple[Any, str]:
    from iris._daemon import find_state
    from iris._transport import Credentials

    token = token or os.environ.get("IRIS_TOKEN")
    if address == "auto" or not token:
        state = find_state(address)
        if state is not None:
            return Credentials.from_token(token or state["token"]), str(state["address"])
        if address == "auto":
            raise NotInitializedError("iris.init(address='auto') found no running cluster "
                                      "on this machine; start one with `iris start --head`")
    if not token:
        raise AuthenticationError(
            f"no credentials for the cluster at {address}: pass iris.init(address=..., "
            f"token=...), set IRIS_TOKEN, or use the token `iris start --head` printed")
    return Credentials.from_token(token), _endpoint(address)


def _owner_host(endpoint: str) -> str:
    """The address this driver's owner socket listens on: one the head's side can reach."""
    from iris._daemon import default_ip

    host = endpoint.split("://", 1)[-1].rsplit(":", 1)[0]
    if host.startswith("127.") or host in ("localhost", "::1"):
        return "127.0.0.1"
    return default_ip(toward=host)


def init(address: str | None = None, *, num_workers: int | None = None,
         token: str | None = None, ignore_reinit_error: bool = False,
         inline_threshold: int | None = None, max_frame_bytes: int | None = None,
         connect_timeout_s: float = 30.0) -> ClusterContext:
    """Start an embedded local cluster, or join a running one.

    Args:
        address: ``None`` starts a local cluster (head and workers as child processes that
            exit with this process); ``"host:port"`` or ``"tcp://host:port"`` joins a
            running cluster; ``"auto"`` joins the newest cluster started on this machine.
            ``IRIS_ADDRESS`` is used when no address is given and it is set.
        num_workers: worker processes of a local cluster (default: one per CPU core).
        token: the cluster token, for joining a cluster started elsewhere.
        ignore_reinit_error: return the current context instead of raising when iris is
            already initialized.
        inline_threshold: values at least this many bytes go through shared memory
            (default 100 KiB).
        max_frame_bytes: the largest frame any socket accepts (default 256 MiB).
        connect_timeout_s: how long to wait for the head to answer.

    Returns:
        The :class:`ClusterContext`, whose ``.address`` other drivers can join.

    Raises:
        RuntimeError: iris is already initialized (without ``ignore_reinit_error``).
        AuthenticationError: joining a cluster without (or with a malformed) token.
    """
    global _client, _cluster, _ctx, _atexit_registered
    from iris._launch import begin_embedded

    with _lock:
        if _client is not None:
            if ignore_reinit_error and _ctx is not None:
                return _ctx
            raise RuntimeError("iris.init() was already called in this process; call "
                               "iris.shutdown() first, or pass ignore_reinit_error=True")
        if num_workers is not None and (type(num_workers) is not int or num_workers < 1):
            raise ValueError(f"num_workers must be an int >= 1, got {num_workers!r}")
        address = address or os.environ.get("IRIS_ADDRESS") or None
        pending = None
        if address is None:  # start the daemon first: our own imports overlap its start
            n = num_workers or os.cpu_count() or 1
            pending = begin_embedded(n, inline_threshold=inline_threshold,
                                     max_frame_bytes=max_frame_bytes)
        try:
            from iris._client import Client
            from iris._protocol import DEFAULT_MAX_FRAME_BYTES
            from iris._values import DEFAULT_INLINE_THRESHOLD
        except BaseException:
            if pending is not None:
                pending.abandon()
            raise
        threshold = inline_threshold or DEFAULT_INLINE_THRESHOLD
        max_frame = max_frame_bytes or DEFAULT_MAX_FRAME_BYTES
        if pending is not None:
            cluster = pending.ready()
            try:
                client = Client(cluster.address, cluster.creds, inline_threshold=threshold,
                                max_frame_bytes=max_frame, connect_timeout_s=connect_timeout_s,
                                lease=False)  # the cluster ends with this process
            except BaseException:
                cluster.stop()
                raise
            ctx = ClusterContext(cluster.address, cluster.cluster_id, True, n,
                                 cluster.creds.token)
            _cluster = cluster
        else:
            if num_workers is not None:
                raise ValueError("num_workers applies to a local cluster only; a running "
                                 "cluster's size is set by `iris start`")
            assert address is not None
            creds, endpoint = _credentials(address, token)
            client = Client(endpoint, creds, inline_threshold=threshold,
                            max_frame_bytes=max_frame, connect_timeout_s=connect_timeout_s,
                            bind_host=_owner_host(endpoint))
            ctx = ClusterContext(endpoint, client.cluster_id, False, None, creds.token)
        _client, _ctx = client, ctx
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        return ctx


def shutdown() -> None:
    """Disconnect from the cluster; a local cluster and all its processes are stopped.

    Safe to call twice, or without ``init``.
    """
    global _client, _cluster, _ctx
    with _lock:
        client, cluster = _client, _cluster
        _client = _cluster = _ctx = None
    actors = sys.modules.get("iris._actors")
    if client is not None and cluster is None and actors is not None:
        actors._kill_owned(client)  # a joined cluster goes on: our actors end with us
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.stop()
    if actors is not None:
        actors._forget_names()


def is_initialized() -> bool:
    """Whether this process is connected to a cluster."""
    return _client is not None


def _client_for_call(what: str) -> Any:
    client = _client
    if client is not None:
        return client
    cfg = _context.worker_config
    if cfg is not None:  # inside a worker: join its own cluster on first use
        return _connect_from_worker(cfg)
    if not what.endswith(")"):
        what = f"{what}.remote()"
    raise NotInitializedError(f"Attempted to call {what} before iris.init(); call "
                              f"iris.init() or iris.init(address=...) first")


def _connect_from_worker(cfg: dict[str, Any]) -> Any:
    global _client, _ctx
    from iris._client import Client
    from iris._transport import Credentials

    with _lock:
        if _client is None:
            kwargs = {}
            if cfg.get("inline_threshold"):
                kwargs["inline_threshold"] = cfg["inline_threshold"]
            _client = Client(cfg["head"], Credentials.from_token(cfg["token"]),
                             bind_host=cfg.get("bind_host", "127.0.0.1"), **kwargs)
            _ctx = ClusterContext(cfg["head"], _client.cluster_id, False, None, "")
        return _client


def _check_refs(refs: Sequence[Any], what: str) -> None:
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"{what} takes ObjectRefs, got {type(r).__name__} {r!r:.60}")


def get(refs: ObjectRef | Sequence[ObjectRef], *, timeout: float | None = None) -> Any:
    """The value of a ref, or the values of a list of refs (same order). Blocks.

    Args:
        refs: one ObjectRef, or a list/tuple of them.
        timeout: seconds to wait at most; ``None`` waits for ever.

    Raises:
        TaskError: the task raised (also an instance of the original exception's class).
        GetTimeoutError: not ready within ``timeout``.
        WorkerCrashedError: the worker died and the task's retries are used up.
        TypeError: ``refs`` is not an ObjectRef or a list of them.
    """
    client = _client_for_call("iris.get()")
    if isinstance(refs, ObjectRef):
        return client.get([refs], timeout)[0]
    if not isinstance(refs, (list, tuple)):
        raise TypeError(f"iris.get() takes an ObjectRef or a list of ObjectRefs, got "
                        f"{type(refs).__name__}")
    _check_refs(refs, "iris.get()")
    return client.get(list(refs), timeout)


def cancel(ref: ObjectRef, *, force: bool = False) -> None:
    """Cancel the task whose result ``ref`` is: ``get`` of it then raises
    :class:`~iris.TaskCancelledError`.

    A task not started yet is dropped. A running task gets a ``TaskCancelledError`` raised
    in it, which takes effect the next time it runs Python code (a long call into C, such
    as ``time.sleep`` or a numpy routine, finishes first); with ``force=True`` its worker
    process is killed at once instead (and replaced; other tasks running there are retried).
    A finished task is left as it is. Tasks the cancelled task submitted are not cancelled.

    Raises:
        TypeError: ``ref`` is not an ObjectRef, or it is the result of an actor method
            call (cancel the actor with :func:`iris.kill`) or of ``iris.put``.
        ValueError: ``ref`` was made by another process: only the submitter may cancel.
    """
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"iris.cancel() takes an ObjectRef, got {type(ref).__name__}")
    if type(force) is not bool:
        raise TypeError(f"force must be a bool, got {force!r}")
    _client_for_call("iris.cancel()").cancel(ref, force)


def put(value: Any) -> ObjectRef:
    """Store a value in the cluster and return its ref (large arrays go to shared memory)."""
    return _client_for_call("iris.put()").put(value)


def wait(refs: Sequence[ObjectRef], *, num_returns: int = 1, timeout: float | None = None
         ) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Wait until ``num_returns`` of ``refs`` are ready, or ``timeout`` passes.

    Returns:
        ``(ready, not_ready)``, each in the order of ``refs``.
    """
    client = _client_for_call("iris.wait()")
    if isinstance(refs, ObjectRef) or not isinstance(refs, (list, tuple)):
        raise TypeError(f"iris.wait() takes a list of ObjectRefs, got {type(refs).__name__}")
    _check_refs(refs, "iris.wait()")
    if len(set(refs)) != len(refs):
        raise ValueError("iris.wait() got the same ObjectRef more than once")
    if type(num_returns) is not int or not 0 <= num_returns <= len(refs):
        raise ValueError(f"num_returns must be an int between 0 and len(refs)={len(refs)}, "
                         f"got {num_returns!r}")
    return client.wait(list(refs), num_returns, timeout)  # type: ignore[no-any-return]
