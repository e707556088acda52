"""ObjectRef: a handle on a value that a task will produce or ``put`` stored.

A ref names its object by ``(owner, oid)``: the address of the process that owns the value
(the one that submitted the task or called ``put``) and a number unique within that owner.
The owner counts the live refs of each object in its own process and frees the value when
the count drops to zero. A ref that travels inside another value is *borrowed*: reading it
asks the owner for the value.

This module sits below the client: the client installs itself with :func:`set_resolver`
so that ``ref.future()``, ``await ref`` and reference counting reach it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import concurrent.futures

__all__ = ["ObjectRef", "ResolvedArg", "collect_refs", "export_refs", "kept_refs",
           "note_refs", "set_resolver"]


class _Resolver(Protocol):
    def holds(self, owner: str, oid: int) -> bool: ...
    def kept_by_task(self, refs: list[tuple[str, int]]) -> None: ...
    def incref(self, ref: ObjectRef) -> None: ...
    def decref(self, owner: str, oid: int) -> None: ...
    def future(self, ref: ObjectRef) -> concurrent.futures.Future[Any]: ...
    def export_refs(self, refs: list[ObjectRef]) -> list[bool]: ...


def export_refs(refs: list[ObjectRef]) -> list[bool]:
    """Pin refs that leave this process inside a task's result until their receiver has
    registered them with their owners; one flag per ref: whether it was pinned
    (internal; see ``Client.export_refs``)."""
    r = _resolver
    if r is None:
        return [False] * len(refs)
    return r.export_refs(refs)


class _ThreadState(threading.local):
    refs: list[ObjectRef] | None = None  # collect_refs: refs pickled meanwhile
    born: list[tuple[str, int]] | None = None  # note_refs: objects borrowed meanwhile


_resolver: _Resolver | None = None
_collect = _ThreadState()


def set_resolver(resolver: _Resolver | None) -> None:
    """Install the process's client as the place refs report to (internal)."""
    global _resolver
    _resolver = resolver


class ObjectRef:
    """A reference to a value in the cluster, returned by ``f.remote()`` and ``iris.put()``.

    Pass it to ``iris.get`` (or ``await`` it, or use :meth:`future`) to obtain the value;
    pass it as an argument to another task to hand the value on without fetching it.

    Example:
        >>> ref = square.remote(4)      # doctest: +SKIP
        >>> iris.get(ref)               # doctest: +SKIP
        16
    """

    __slots__ = ("oid", "owner", "_counted", "__weakref__")

    def __init__(self, oid: int, owner: str, *, counted: bool = True) -> None:
        self.oid = oid
        self.owner = owner
        self._counted = counted and _resolver is not None
        if self._counted:
            _resolver.incref(self)  # type: ignore[union-attr]

    @classmethod
    def _owned_new(cls, oid: int, owner: str) -> ObjectRef:
        """A counted ref whose count its (owning) resolver sets itself: the first ref of a
        new object, made on the submit path without a round through ``incref``."""
        ref = cls.__new__(cls)
        ref.oid = oid
        ref.owner = owner
        ref._counted = True
        return ref

    def __del__(self) -> None:
        if self._counted:
            r = _resolver
            if r is not None:
                try:
                    r.decref(self.owner, self.oid)
                except Exception:  # interpreter shutdown: nothing left to free
                    pass

    def hex(self) -> str:
        """The object's id as hex text."""
        return f"{self.oid:016x}"

    def __repr__(self) -> str:
        return f"ObjectRef({self.oid:016x} @ {self.owner})"

    def __hash__(self) -> int:
        return hash((self.oid, self.owner))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ObjectRef) and other.oid == self.oid
                and other.owner == self.owner)

    def __reduce__(self) -> tuple[Callable[..., ObjectRef], tuple[int, str]]:
        bucket = getattr(_collect, "refs", None)
        if bucket is not None:
            bucket.append(self)
        return (ObjectRef, (self.oid, self.owner))

    def future(self) -> concurrent.futures.Future[Any]:
        """A ``concurrent.futures.Future`` that completes with the value (or its error)."""
        if _resolver is None:
            from iris.exceptions import NotInitializedError

            raise NotInitializedError("ObjectRef.future() needs a running cluster; call "
                                      "iris.init() first")
        return _resolver.future(self)

    def __await__(self) -> Generator[Any, None, Any]:
        import asyncio

        return asyncio.wrap_future(self.future()).__await__()


class ResolvedArg:
    """Placeholder for a top-level ref argument whose value travels beside the args
    (internal type, not part of the public API)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[type[ResolvedArg], tuple[int]]:
        return (ResolvedArg, (self.index,))


def note_refs(noted: list[tuple[str, int]] | None) -> None:
    """From now on, record in ``noted`` the ``(owner, oid)`` of every object this thread
    starts to borrow (its first ref here), such as refs unpickled from a task's arguments;
    None stops it (internal; two calls, not a context manager: this runs for every task).
    A ref held here already was registered before: it needs no hand-over."""
    _collect.born = noted


def noted_borrow(owner: str, oid: int) -> None:
    """Called by the resolver when this thread starts to borrow an object (internal)."""
    born = _collect.born
    if born is not None:
        born.append((owner, oid))


def kept_refs(noted: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Of refs noted while a task's arguments were read, those this process still holds
    once the task is over (borrowed ones: kept by the task, an actor's state say). The
    task's result lists them (its owner then holds them until our registration comes);
    the client follows its registrations with the matching release."""
    r = _resolver
    if r is None or not noted:
        return []
    kept = [key for key in dict.fromkeys(noted) if r.holds(*key)]
    if kept:
        r.kept_by_task(kept)
    return kept


class collect_refs:
    """Context manager: record every ObjectRef pickled in this thread meanwhile (internal).

    The owner keeps those objects alive while the value that carries them is in flight.
    """

    def __enter__(self) -> list[ObjectRef]:
        self._prev = getattr(_collect, "refs", None)
        _collect.refs = []
        return _collect.refs  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        _collect.refs = self._prev
