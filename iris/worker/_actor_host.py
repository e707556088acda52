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

__all__ = ["CallActor", "CreateActor", "hosted_count"]


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

KILL = "__iris_kill__"


def hosted_count() -> int:
    """How many actors live in this process (for statistics and tests)."""
    return len(_instances)


class CreateActor:
    """The creation task of an actor: makes the instance and keeps it here."""

    def __init__(self, actor_id: str, cls: type) -> None:
        self.actor_id = actor_id
        self.cls = cls

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        _connect_client()
        hosted = _instances[self.actor_id] = _Hosted()
        _failed.pop(self.actor_id, None)
        try:
            hosted.instance = self.cls(*args, **kwargs)
        except BaseException as exc:
            _failed[self.actor_id] = f"{type(exc).__name__}: {exc}"
            _instances.pop(self.actor_id, None)
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
                _instances.pop(self.actor_id, None)
                return None
            return getattr(hosted.instance, self.method)(*args, **kwargs)
        finally:
            with hosted.cond:
                hosted.serving += 1
                hosted.cond.notify_all()
