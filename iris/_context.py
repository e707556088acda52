"""Process-wide facts a lower layer sets and the API reads (internal).

A worker process records its configuration here at start, so that a task calling
``f.remote()`` or ``iris.get()`` inside the worker connects to the cluster on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["block_hook", "cancel_pending", "worker_config"]

#: Set by the worker process main loop: its config dict (head address, token, worker id).
worker_config: dict[str, Any] | None = None

#: Set by the worker process: ``block_hook(True)`` when the running task starts waiting in
#: ``iris.get``, ``block_hook(False)`` when it resumes. The worker tells the task's owner,
#: which then stops counting the task against the worker's in-flight limit.
#: ``block_hook(False)`` returns True if the task was cancelled while it waited (the caller
#: then raises ``TaskCancelledError``).
block_hook: Callable[[bool], bool] | None = None

#: Set by the worker process: whether the task of the calling thread, waiting in
#: ``iris.get``, was cancelled (looked at now and then while it waits).
cancel_pending: Callable[[], bool] | None = None
