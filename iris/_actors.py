"""Ray-style actors: ``@iris.remote`` on a class, handles, method calls, names, ``kill``.

::

    Counter = iris.remote(Counter)        # an ActorClass
    c = Counter.remote(10)                # the instance is made in a worker process
    ref = c.incr.remote(5)                # method calls run there, one at a time, in order
    iris.get(ref)

An actor lives in one worker process of the cluster (beside that worker's tasks). Its
creation and its calls are tasks routed to that worker (see ``iris/worker/_actor_host.py``);
the client that created it places it on the least-loaded worker, keeps its calls in order,
and restarts it on another worker (``max_restarts``) if its worker dies. Calls that were
running when it died fail with :class:`~iris.exceptions.ActorDiedError`; later ones run on
the new instance (which starts from its constructor again: state is not carried over).
"""

from __future__ import annotations

import hashlib
import pickle
import secrets
import threading
from typing import Any

from iris._api import _client_for_call
from iris._records import CALL, CREATE, KILL, ActorRecord, FunctionInfo
from iris._refs import ObjectRef
from iris._remote import check_int, check_known, check_num_cpus
from iris.exceptions import ActorDiedError, IrisError

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "get_actor", "kill"]

_OPTIONS = ("max_restarts", "name", "lifetime", "num_cpus")
_PLACEMENT_WAIT_S = 30.0
_KILL_WAIT_S = 5.0  # how long shutdown waits for the kills of the actors a client made

# Named actors made by this process: name -> handle (cleared when iris shuts down).
_named: dict[str, ActorHandle] = {}
_named_lock = threading.Lock()


def _check_options(opts: dict[str, Any]) -> dict[str, Any]:
    check_known(opts, _OPTIONS, "actor option")
    check_int(opts, "max_restarts", 0, 0)
    name = opts.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"an actor's name must be a non-empty str, got {name!r}")
    if opts.get("lifetime") not in (None, "non_detached", "detached"):
        raise ValueError(f"lifetime must be 'detached' or 'non_detached', got "
                         f"{opts['lifetime']!r}")
    check_num_cpus(opts.get("num_cpus", 1))
    return opts


def _function_id(blob: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "big")


# The most a detached actor's creation (code and constructor arguments) may take at the
# head, which keeps it to restart the actor after its creator is gone.
_MAX_RESTART_SPEC = 1 << 20


def _restart_spec(blob: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]
                  ) -> dict[str, str] | None:
    """The creation task of an actor as the head keeps it (base64 text in JSON), or None
    when its arguments hold refs or buffers, or the whole is too large."""
    import base64

    from iris._refs import collect_refs
    from iris._serialization import dumps

    with collect_refs() as refs:
        try:
            header, buffers = dumps((args, kwargs))
        except TypeError:
            return None  # (the creation itself reports it)
    if refs or buffers or len(blob) + len(header) > _MAX_RESTART_SPEC:
        return None
    return {"blob": base64.b64encode(blob).decode(), "args": base64.b64encode(header).decode()}


class ActorClass:
    """A class whose instances live in the cluster. Made by ``@iris.remote`` on a class.

    ``Cls.remote(*args, **kwargs)`` creates an actor and returns its :class:`ActorHandle`
    at once; ``Cls.options(name=..., max_restarts=...)`` returns a copy with other options.
    """

    def __init__(self, cls: type, **options: Any) -> None:
        self._cls = cls
        self._options = _check_options(dict(options))
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__doc__ = cls.__doc__
        self._methods = {name for name in dir(cls)
                         if callable(getattr(cls, name, None)) and not name.startswith("__")}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"actor class {self.__name__} cannot be instantiated directly; use "
                        f"{self.__name__}.remote(...) to create an actor")

    def __repr__(self) -> str:
        return f"<iris.ActorClass {self.__qualname__}>"

    def options(self, **options: Any) -> ActorClass:
        """A copy of this actor class with some options changed.

        Example:
            >>> c = Counter.options(name="counter", max_restarts=2).remote()  # doctest: +SKIP
        """
        clone = ActorClass.__new__(ActorClass)
        clone.__dict__.update(self.__dict__)
        clone._options = _check_options({**self._options, **options})
        return clone

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        """Create the actor (its constructor runs in a worker); returns its handle."""
        from iris._serialization import dumps_function
        from iris.worker._actor_host import CreateActor

        client = _client_for_call(self.__name__)
        name = self._options.get("name")
        detached = self._options.get("lifetime") == "detached"
        actor_id = secrets.token_hex(8)
        label = name or f"{self.__name__}#{actor_id[:6]}"
        blob = dumps_function(CreateActor(actor_id, self._cls, client.client_id, detached))
        create = FunctionInfo(_function_id(blob), blob, f"{self.__name__}.__init__")
        record = ActorRecord(actor_id, label, self._options.get("max_restarts", 0))
        record.detached = detached
        handle = ActorHandle(actor_id, client.address, None, label, self._methods)
        handle._record = record
        methods = sorted(self._methods)

        # A detached named actor outlives its creator: the head restarts it (when its
        # worker dies after the creator is gone) if its constructor's arguments are plain
        # enough to be kept there (no refs, no out-of-band buffers, small).
        spec = _restart_spec(blob, args, kwargs) if detached and name is not None and \
            record.restarts_left > 0 else None

        def registration() -> dict[str, Any]:
            body = {"op": "actor.register", "name": name, "actor_id": actor_id,
                    "worker_id": record.worker_id, "detached": detached,
                    "methods": methods, "cls": self.__qualname__}
            if spec is not None:
                body["restart"] = {**spec, "restarts": record.restarts_left}
            return body

        def submit_creation(worker_id: str | None = None) -> None:
            # Placed now, on the least-loaded worker known (if any; or the one its name was
            # claimed for): handles sent to tasks at once can then reach it. Without
            # workers yet, the scheduler places it.
            record.worker_id = worker_id or client.pick_worker()
            record.creation = client.submit(create, args, kwargs, 1, 0, actor=record,
                                            role=CREATE)[0]

        def restart() -> None:  # on the reactor's thread: the head is told, not asked
            submit_creation()
            if record.reregister is not None and record.worker_id is not None:
                record.reregister()  # (placed later by the scheduler: Client._placed does)

        # Right after iris.init() the workers are still starting: wait for one, so that the
        # actor is placed now and its handle, sent to tasks at once, names its worker.
        client.wait_for_workers(_PLACEMENT_WAIT_S)
        with _named_lock:
            if name is not None:
                old = _named[name]._record if name in _named else None
                if old is not None and old.dead is None and not old.killing:
                    raise ValueError(f"an actor named {name!r} exists already; "
                                     f"iris.get_actor({name!r}) returns it")
                # The name is the cluster's: claim it at the head before making the actor.
                record.worker_id = client.pick_worker()
                if record.worker_id is None:
                    raise IrisError(f"no worker to place the actor {name!r} on (the cluster "
                                    f"has none after {_PLACEMENT_WAIT_S:.0f} s)")
                reply = client.head_request(registration())
                if reply.get("conflict"):
                    raise ValueError(f"an actor named {name!r} exists already in the "
                                     f"cluster; iris.get_actor({name!r}) returns it")
                if "error" in reply:
                    raise IrisError(f"the head refused the actor name {name!r}: "
                                    f"{reply['error']}")
            with client.lock:
                worker_id = record.worker_id
                try:
                    # Raises (e.g. unpicklable arguments): nothing is kept.
                    submit_creation(worker_id if worker_id in client.workers else None)
                except BaseException:
                    if name is not None:
                        client.tell_head({"op": "actor.unregister", "name": name,
                                          "actor_id": actor_id})
                    raise
                if name is not None and record.worker_id != worker_id:
                    client.tell_head(registration())  # placed elsewhere than claimed
                client.actors[actor_id] = record
                record.restart = restart
                if name is not None:
                    record.reregister = lambda: client.tell_head(registration())
            if name is not None:
                _named[name] = handle
        return handle


class ActorHandle:
    """A reference to an actor: call its methods with ``handle.method.remote(...)``.

    Handles can be passed to tasks (and other actors), which then call the same actor.
    """

    def __init__(self, actor_id: str, owner: str, worker_id: str | None, name: str,
                 methods: set[str] | None = None) -> None:
        self._actor_id = actor_id
        self._owner = owner
        self._worker_id = worker_id
        self._name = name
        self._methods = methods
        self._record: ActorRecord | None = None

    def __repr__(self) -> str:
        return f"ActorHandle({self._name})"

    def __getattr__(self, method: str) -> ActorMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        if self._methods is not None and method not in self._methods:
            raise AttributeError(f"actor {self._name} has no method {method!r}")
        return ActorMethod(self, method)

    def __reduce__(self) -> tuple[Any, ...]:
        record = self._record
        worker_id = record.worker_id if record is not None else self._worker_id
        return (_rebuild_handle, (self._actor_id, self._owner, worker_id, self._name,
                                  self._methods))

    def _resolve(self, client: Any) -> ActorRecord:
        """This process's record of the actor (handles from elsewhere make one)."""
        record = self._record
        if record is not None and record.dead is not None:
            return record  # its calls fail with the reason it died
        if record is None or client.actors.get(self._actor_id) is not record:
            with client.lock:
                record = client.actors.get(self._actor_id)
                dead = client.dead_actors.get(self._actor_id)
                if record is None and dead is not None:  # a copy of a dead actor's handle
                    record = ActorRecord(self._actor_id, self._name)
                    record.dead = dead
                elif record is None:
                    if self._worker_id is None:
                        raise ActorDiedError(f"actor {self._name} was never placed on a "
                                             f"worker: it cannot be reached from here")
                    record = ActorRecord(self._actor_id, self._name, 0, self._worker_id)
                    client.actors[self._actor_id] = record
            self._record = record
        return record

    def _call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
              num_returns: int, role: int = CALL, client: Any = None) -> list[ObjectRef]:
        from iris.worker._actor_host import CallActor

        if client is None:
            client = _client_for_call(f"{self._name}.{method}")
        record = self._resolve(client)
        info = record.methods.get(method)
        if info is None:
            blob = pickle.dumps(CallActor(self._actor_id, method), protocol=5)
            info = FunctionInfo(_function_id(blob), blob, f"{self._name}.{method}")
            record.methods[method] = info
        return client.submit(info, args, kwargs, num_returns, 0, actor=record, role=role)


def _rebuild_handle(actor_id: str, owner: str, worker_id: str | None, name: str,
                    methods: set[str] | None) -> ActorHandle:
    return ActorHandle(actor_id, owner, worker_id, name, methods)


class ActorMethod:
    """One method of an actor: ``.remote(*args)`` calls it and returns an ObjectRef."""

    def __init__(self, handle: ActorHandle, method: str, num_returns: int = 1) -> None:
        self._handle = handle
        self._method = method
        self._num_returns = num_returns

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"actor method {self._method}() cannot be called directly; use "
                        f".{self._method}.remote(...)")

    def options(self, *, num_returns: int = 1) -> ActorMethod:
        """The same method with ``num_returns`` refs per call."""
        if type(num_returns) is not int or num_returns < 1:
            raise ValueError(f"num_returns must be an int >= 1, got {num_returns!r}")
        return ActorMethod(self._handle, self._method, num_returns)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method in the actor (after its earlier calls); returns its ObjectRef."""
        refs = self._handle._call(self._method, args, kwargs, self._num_returns)
        return refs[0] if self._num_returns == 1 else refs


def get_actor(name: str) -> ActorHandle:
    """The handle of the live actor created with ``options(name=name)``, by this process or
    any other client of the cluster.

    Raises:
        ValueError: no live actor has that name.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"an actor's name is a non-empty str, got {name!r}")
    with _named_lock:
        handle = _named.get(name)
    if handle is not None and (handle._record is None or handle._record.dead is None):
        return handle
    client = _client_for_call("iris.get_actor()")
    reply = client.head_request({"op": "actor.lookup", "name": name})
    if not reply.get("found") and reply.get("restarting"):
        raise ValueError(f"the actor named {name!r} is being restarted (its worker died): "
                         f"ask again in a moment")
    if not reply.get("found"):
        raise ValueError(f"no actor named {name!r} in the cluster (names are given with "
                         f"Cls.options(name=...).remote())")
    found = ActorHandle(str(reply["actor_id"]), "", str(reply["worker_id"]), name,
                        set(reply.get("methods") or []) or None)
    return found


def kill(actor: ActorHandle) -> None:
    """Stop an actor: the calls made before run, then its worker drops the instance;
    later calls raise :class:`~iris.exceptions.ActorDiedError`.

    Raises:
        TypeError: ``actor`` is not an ActorHandle.
    """
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"iris.kill() takes an ActorHandle, got {type(actor).__name__}")
    from iris.worker._actor_host import KILL as KILL_METHOD

    client = _client_for_call("iris.kill()")
    record = actor._resolve(client)
    if record.dead is not None or record.killing:
        return
    record.killing = True
    # In line after the calls already made: they run, then the worker drops the instance,
    # and every later call fails with ActorDiedError (see Client._release_calls).
    actor._call(KILL_METHOD, (), {}, 1, role=KILL)
    client.tell_head({"op": "actor.unregister", "name": actor._name,
                      "actor_id": actor._actor_id})  # if it has a cluster-wide name
    with _named_lock:
        for name, handle in list(_named.items()):
            if handle._actor_id == actor._actor_id:
                del _named[name]


def _forget_names() -> None:
    """Called by ``iris.shutdown()``: names die with the cluster connection."""
    with _named_lock:
        _named.clear()


def _kill_owned(client: Any) -> None:
    """Called by ``iris.shutdown()`` of a client that joined a cluster: the actors it made
    die with it, unless they are detached (those live on in their workers, reachable by
    name). Their calls already made run first."""
    from iris.worker._actor_host import KILL as KILL_METHOD

    with client.lock:
        owned = [r for r in client.actors.values()
                 if r.restart is not None and not r.detached and r.dead is None
                 and not r.killing]
    refs = []
    for record in owned:
        record.killing = True
        handle = ActorHandle(record.actor_id, client.address, record.worker_id, record.name)
        handle._record = record
        try:
            refs += handle._call(KILL_METHOD, (), {}, 1, role=KILL, client=client)
        except IrisError:
            pass  # gone already
    if refs:
        try:  # sent, and done, before the client's sockets close
            client.wait(refs, len(refs), _KILL_WAIT_S)
        except IrisError:
            pass
