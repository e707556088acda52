"""The name and path registry of one runtime.

Two namespaces, kept apart (the original runtime stored both in one map):

* **names**: flat strings (``"auth_worker"``), one PID each, looked up by ``whereis``;
* **paths**: ``/``-separated strings starting with ``/`` (``"/svc/payment/processor"``),
  one PID each, queried by prefix with ``list_children`` and ``list_children_direct``.

A PID may hold many names and paths; ``drop_pid`` removes them all when the actor dies.
The registry has its own lock and calls nothing outside itself.
"""

from __future__ import annotations

import threading

__all__ = ["Registry", "normalize_path"]


def normalize_path(path: str) -> str:
    """Check and normalise a registry path: leading ``/``, no empty segments, no trailing ``/``.

    Raises:
        TypeError: ``path`` is not a string.
        ValueError: it does not start with ``/`` or has an empty segment.
    """
    if not isinstance(path, str):
        raise TypeError(f"a registry path must be a string, got {path!r}")
    if not path.startswith("/"):
        raise ValueError(f"a registry path must start with '/', got {path!r}")
    trimmed = path.rstrip("/")
    if trimmed and any(seg == "" for seg in trimmed[1:].split("/")):
        raise ValueError(f"registry path {path!r} has an empty segment ('//')")
    return trimmed or "/"


class Registry:
    """Names and paths to PIDs, with the reverse index used when an actor dies.

    Internal type, not part of the public API.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, int] = {}
        self._paths: dict[str, int] = {}
        self._by_pid: dict[int, set[tuple[str, str]]] = {}

    # -- names ---------------------------------------------------------------------------

    def register(self, name: str, pid: int) -> None:
        """Bind ``name`` to ``pid``.

        Raises:
            TypeError: ``name`` is not a non-empty string.
            ValueError: ``name`` is bound to another PID.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"an actor name must be a non-empty string, got {name!r}")
        self._bind(self._names, "name", name, pid)

    def unregister(self, name: str) -> int | None:
        """Remove ``name``; returns the PID it named (None if it was not registered)."""
        return self._unbind(self._names, "name", name)

    def whereis(self, name: str) -> int | None:
        """The PID registered under ``name``, or None."""
        return self._names.get(name)

    # -- paths ---------------------------------------------------------------------------

    def register_path(self, path: str, pid: int) -> None:
        """Bind ``path`` to ``pid`` (see ``normalize_path`` for the accepted form)."""
        self._bind(self._paths, "path", normalize_path(path), pid)

    def unregister_path(self, path: str) -> int | None:
        """Remove ``path``; returns the PID it named (None if it was not registered)."""
        return self._unbind(self._paths, "path", normalize_path(path))

    def whereis_path(self, path: str) -> int | None:
        """The PID registered at exactly ``path``, or None."""
        return self._paths.get(normalize_path(path))

    def list_children(self, prefix: str) -> list[tuple[str, int]]:
        """Every ``(path, pid)`` strictly below ``prefix``, sorted by path."""
        base = normalize_path(prefix)
        start = "/" if base == "/" else base + "/"
        with self._lock:
            items = [(p, pid) for p, pid in self._paths.items() if p.startswith(start)]
        return sorted(items)

    def list_children_direct(self, prefix: str) -> list[tuple[str, int]]:
        """The ``(path, pid)`` pairs exactly one segment below ``prefix``, sorted by path."""
        base = normalize_path(prefix)
        start = "/" if base == "/" else base + "/"
        return [(p, pid) for p, pid in self.list_children(base)
                if "/" not in p[len(start):]]

    # -- lifecycle -----------------------------------------------------------------------

    def drop_pid(self, pid: int) -> None:
        """Remove every name and path of ``pid`` (called when it dies)."""
        with self._lock:
            keys = self._by_pid.pop(pid, None)
            if not keys:
                return
            for kind, key in keys:
                table = self._names if kind == "name" else self._paths
                if table.get(key) == pid:
                    del table[key]

    def names_of(self, pid: int) -> tuple[list[str], list[str]]:
        """The names and the paths ``pid`` holds, each sorted."""
        keys = self._by_pid.get(pid, set())
        return (sorted(k for kind, k in keys if kind == "name"),
                sorted(k for kind, k in keys if kind == "path"))

    def clear(self) -> None:
        """Forget everything (runtime shutdown)."""
        with self._lock:
            self._names.clear()
            self._paths.clear()
            self._by_pid.clear()

    # -- helpers -------------------------------------------------------------------------

    def _bind(self, table: dict[str, int], kind: str, key: str, pid: int) -> None:
        with self._lock:
            held = table.get(key)
            if held is not None and held != pid:
                raise ValueError(f"{kind} {key!r} is already registered to pid {held}; "
                                 f"unregister it first")
            table[key] = pid
            self._by_pid.setdefault(pid, set()).add((kind, key))

    def _unbind(self, table: dict[str, int], kind: str, key: str) -> int | None:
        with self._lock:
            pid = table.pop(key, None)
            if pid is not None:
                keys = self._by_pid.get(pid)
                if keys is not None:
                    keys.discard((kind, key))
                    if not keys:
                        del self._by_pid[pid]
            return pid
