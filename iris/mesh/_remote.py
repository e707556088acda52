"""Runtime methods for the cross-process mesh (listen, resolve_remote, send_remote, ...).

Placeholder until the remote mesh lands: every method raises NotImplementedError.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RemoteAPI"]


class RemoteAPI:
    """Cross-process methods of ``Runtime``. Internal base class."""

    def _remote_init(self) -> None:
        pass

    def _remote_close(self) -> None:
        pass

    def listen(self, address: str) -> None:
        """Serve this runtime's actors on ``address`` (not available yet)."""
        raise NotImplementedError("the cross-process mesh is not implemented yet")

    def send_remote(self, address: str, pid: int, data: Any) -> bool:
        """Send to an actor of another runtime (not available yet)."""
        raise NotImplementedError("the cross-process mesh is not implemented yet")
