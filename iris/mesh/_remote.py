"""Runtime methods for the cross-process mesh (listen, resolve_remote, send_remote, ...).

Not implemented yet: every method raises NotImplementedError naming what is missing, so
code written for the original runtime fails loudly instead of silently doing nothing.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["RemoteAPI"]


def _missing(what: str) -> NoReturn:
    raise NotImplementedError(
        f"Runtime.{what} belongs to the cross-process actor mesh, which iris does not "
        f"implement yet; actors of one Runtime can only be reached in-process")


class RemoteAPI:
    """Cross-process methods of ``Runtime``. Internal base class."""

    def _remote_init(self) -> None:
        pass

    def _remote_close(self) -> None:
        pass

    def listen(self, address: str) -> None:
        """Serve this runtime's actors on ``address`` (not implemented yet)."""
        _missing("listen")

    def resolve_remote(self, address: str, name: str) -> int | None:
        """Look ``name`` up on the node at ``address`` (not implemented yet)."""
        _missing("resolve_remote")

    async def resolve_remote_py(self, address: str, name: str) -> int | None:
        """Awaitable ``resolve_remote`` (not implemented yet)."""
        _missing("resolve_remote_py")

    def send_remote(self, address: str, pid: int, data: Any) -> bool:
        """Send to an actor on the node at ``address`` (not implemented yet)."""
        _missing("send_remote")

    def monitor_remote(self, address: str, pid: int) -> None:
        """Watch a remote actor through heartbeats (not implemented yet)."""
        _missing("monitor_remote")

    def is_node_up(self, address: str) -> bool:
        """Whether the node at ``address`` answers (not implemented yet)."""
        _missing("is_node_up")
