"""Process-wide facts a lower layer sets and the API reads (internal).

A worker process records its configuration here at start, so that a task calling
``f.remote()`` or ``iris.get()`` inside the worker connects to the cluster on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["worker_config"]

#: Set by the worker process main loop: its config dict (head address, token, worker id).
worker_config: dict[str, Any] | None = None
