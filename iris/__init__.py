"""iris: tasks, actors, an actor mesh and compiled offload kernels on a small, fast cluster.

Layers, each importing only those below it::

    cli            iris start/stop/status (iris/cli.py)
    api            init/shutdown, remote, ObjectRef, get/put/wait (iris/_api.py and friends),
                   offload (iris/jit/), Runtime (iris/mesh/)
    head/ worker/  the head service; node manager and worker process loops
    runtime        the in-process actor core (iris/mesh/_core...)
    transport      ZeroMQ sockets, CURVE authentication, the I/O loop (iris/_transport.py)
    protocol       message types and the binary layout, pure (iris/_protocol.py)
    serialization  cloudpickle for code, pickle 5 with out-of-band buffers (iris/_serialization.py)

Public names are loaded lazily, so ``import iris`` stays cheap: numba is imported only when
an offload kernel runs, the mesh only when a Runtime is made.
"""

from __future__ import annotations

import importlib
from typing import Any

from iris.exceptions import (
    ActorDiedError,
    AuthenticationError,
    GetTimeoutError,
    IrisError,
    NotInitializedError,
    ObjectLostError,
    ProtocolError,
    TaskCancelledError,
    TaskError,
    WorkerCrashedError,
)

__version__ = "0.1.0"

# public name -> module that defines it; imported on first use.
_LAZY: dict[str, str] = {
    "ObjectRef": "iris._refs",
    "ActorClass": "iris._actors",
    "ActorHandle": "iris._actors",
    "get_actor": "iris._actors",
    "kill": "iris._actors",
    "cancel": "iris._api",
    "get": "iris._api",
    "init": "iris._api",
    "is_initialized": "iris._api",
    "put": "iris._api",
    "remote": "iris._remote",
    "shutdown": "iris._api",
    "wait": "iris._api",
    "ClusterContext": "iris._api",
    "offload": "iris.jit",
    "Runtime": "iris.mesh",
    "SystemMessage": "iris.mesh",
    "Mailbox": "iris.mesh",
    "PyMailbox": "iris.mesh",
    "PySystemMessage": "iris.mesh",
    "Reply": "iris.mesh",
    "spawn_child_pool": "iris.mesh",
}

__all__ = sorted([
    "ActorDiedError",
    "AuthenticationError",
    "GetTimeoutError",
    "IrisError",
    "NotInitializedError",
    "ObjectLostError",
    "ProtocolError",
    "TaskCancelledError",
    "TaskError",
    "WorkerCrashedError",
    "__version__",
    *_LAZY,
])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'iris' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
