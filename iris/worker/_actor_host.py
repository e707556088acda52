"""Ray-style actors inside a worker process: instances, and the calls that reach them.

An actor is an instance of a user's class living in one worker process. Its creation and
its method calls travel as ordinary tasks whose "function" is one of the two callables
below (cloudpickled once per actor, or per method): the worker runs them like any task.
Calls run one at a time and in the order the worker started them, even when a method waits
in ``iris.get`` (the worker then runs other tasks, but not another call of that actor).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from iris import _context, _refs
from iris.exceptions import ActorDiedError

__all__ = ["CallActor", "CreateActor", "drop_actor", "drop_actors_of", "hosted_count",
           "owner_back"]


class _Hosted:
    __slots__ = ("instance", "cond", "next_ticket", "serving")

    def __init__(self) -> None:
        self.instance: Any = None  # set once the constructor returned
        self.cond = threading.Condition()
        # Ticket 0 is the constructor's: calls wait for it, even if it waits in get.
        self.next_ticket = 1  # given to each call as it starts
        self.serving = 0  # the ticket whose turn it is


_instances: dict[str, _Hosted] = {}
_failed: dict[str, str] = {}  # actor id -> why its constructor failed here
# The client that made each actor that is not detached: it dies with that client.
_owners: dict[str, str] = {}
_gone_owners: dict[str, None] = {}  # clients the head said are gone (the latest, in order)
_MAX_GONE = 1024

KILL = "__iris_kill__"


def hosted_count() -> int:
    """How many actors live in this process (for statistics and tests)."""
    return len(_instances)


def drop_actors_of(owner: str) -> int:
    """The client ``owner`` is gone: drop the actors it made that are not detached (their
    later calls fail as calls of a killed actor). Returns how many were dropped."""
    _gone_owners[owner] = None  # a creation of its that is still queued is refused
    while len(_gone_owners) > _MAX_GONE:
        del _gone_owners[next(iter(_gone_owners))]
    gone = [aid for aid, o in list(_owners.items()) if o == owner]
    for aid in gone:
        drop_actor(aid)
    return len(gone)


def drop_actor(actor_id: str) -> None:
    """Drop one actor living here (its later calls fail as calls of a killed actor)."""
    _owners.pop(actor_id, None)
    _instances.pop(actor_id, None)


def owner_back(owner: str) -> None:
    """The head had given the client ``owner`` up, and it is back: its new actors count."""
    _gone_owners.pop(owner, None)


class CreateActor:
    """The creation task of an actor: makes the instance and keeps it here.

    ``owner`` is the id of the client that made it (at the head); unless ``detached``, the
    actor is dropped when the head says that client is gone.
    """

    def __init__(self, actor_id: str, cls: type, owner: str = "",
                 detached: bool = False) -> None:
        self.actor_id = actor_id
        self.cls = cls
        self.owner = owner
        self.detached = detached

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        attached = bool(self.owner) and not self.detached
        if attached:
            _owners[self.actor_id] = self.owner  # first: a drop from now on finds it
        _connect_client()
        hosted = _instances[self.actor_id] = _Hosted()
        _failed.pop(self.actor_id, None)
        try:
            # Its client is gone (said before this creation ran, or while it ran so far).
            if attached and (self.owner in _gone_owners or self.actor_id not in _owners):
                raise ActorDiedError(f"actor {self.actor_id} was not created: the client "
                                     f"that made it is gone")
            hosted.instance = self.cls(*args, **kwargs)
        except BaseException as exc:
            _failed[self.actor_id] = f"{type(exc).__name__}: {exc}"
            _instances.pop(self.actor_id, None)
            _owners.pop(self.actor_id, None)
            raise
        finally:
            with hosted.cond:
                hosted.serving = 1
                hosted.cond.notify_all()


def _connect_client() -> None:
    """Give this worker a client of its own (if it has none yet), so that refs arriving in
    the actor's later calls are counted here: an actor that keeps one in its state keeps
    its object alive. (The client belongs to the API layer above this one: it is reached
    by name, at run time, the way a task's own ``iris.get`` reaches it.)"""
    if _refs._resolver is None:
        importlib.import_module("iris._api")._client_for_call("an actor")


class CallActor:
    """A method call task: runs ``method`` of the actor, after its earlier calls."""

    __slots__ = ("actor_id", "method")

    def __init__(self, actor_id: str, method: str) -> None:
        self.actor_id = actor_id
        self.method = method

    def __reduce__(self) -> tuple[type[CallActor], tuple[str, str]]:
        return (CallActor, (self.actor_id, self.method))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        hosted = _instances.get(self.actor_id)
        if hosted is None:
            why = _failed.get(self.actor_id)
            if why is not None:
                raise ActorDiedError(f"the actor could not be created: its constructor "
                                     f"raised {why}")
            raise ActorDiedError(f"actor {self.actor_id} does not live in this worker "
                                 f"(it was killed, or its creation was lost)")
        with hosted.cond:
            ticket = hosted.next_ticket
            hosted.next_ticket += 1
            if hosted.serving != ticket:
                # An earlier call waits inside the actor: let the worker run other tasks.
                block = _context.block_hook
                if block is not None:
                    block(True)
                try:
                    hosted.cond.wait_for(lambda: hosted.serving == ticket)
                finally:
                    if block is not None:
                        block(False)
        try:
            if hosted.instance is None:  # its constructor failed while we waited
                raise ActorDiedError(f"the actor could not be created: its constructor "
                                     f"raised {_failed.get(self.actor_id, 'an error')}")
            if self.method == KILL:
                drop_actor(self.actor_id)
                return None
            return getattr(hosted.instance, self.method)(*args, **kwargs)
        finally:
            with hosted.cond:
                hosted.serving += 1
                hosted.cond.notify_all()
