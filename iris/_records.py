"""The client's records: remote functions as shipped, objects it owns, tasks it tracks,
workers it talks to (internal types, not part of the public API)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iris._protocol import Value, ValueKind
from iris._refs import ObjectRef

__all__ = ["FAILED", "PENDING", "READY", "FunctionInfo", "ObjectEntry", "TaskEntry", "WorkerLink"]

PENDING, READY, FAILED = 0, 1, 2  # ObjectEntry.state


@dataclass(slots=True)
class FunctionInfo:
    """A remote function as the client ships it: id, pickled code, name (internal)."""

    func_id: int
    blob: bytes
    name: str
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or f"task {self.name}"


class ObjectEntry:
    """One object in its owner's table: state, value or error, callbacks.

    Made for every task and put, so only what differs from the class defaults below is
    stored per instance (no ``__slots__``: an instance's few attributes live inline).
    """

    state: int = PENDING
    value: Value | None = None
    # A READY value of the commonest shape, one small pickle without buffers, is kept as
    # its bytes alone (no Value made per result): see :meth:`serialized`.
    inline: bytes | memoryview | None = None
    error: BaseException | None = None
    callbacks: list[Callable[[ObjectEntry], None]] | None = None
    where: str = ""
    owned_segment: str | None = None
    # Live refs in this process (the owner's own count), and others keeping it alive:
    # refs held by other processes (borrowers), and refs on their way to one inside a
    # task's result (transit). Freed when all three are zero.
    nrefs: int = 0
    borrowers: int = 0
    transit: int = 0
    # Refs inside this object's value, kept alive as long as the value is.
    contained: list[Any] | None = None
    # For a task's second and later results: the task (its first result's entry).
    task: Any = None

    def __init__(self, where: str = "") -> None:
        if where:
            self.where = where

    @property
    def unreferenced(self) -> bool:
        """No ref to it is left in this process."""
        return self.nrefs <= 0

    def serialized(self) -> Value | None:
        """The value as it travels (None while pending, or failed without one)."""
        if self.inline is not None:
            return Value(ValueKind.INLINE, self.inline, ())
        return self.value


class TaskEntry(ObjectEntry):
    """A submitted task until its result arrives; it is also the entry of the task's
    (first) object, so a task costs one record, not two.

    The commonest task (small inline arguments, no refs among them, not an actor's) sets
    only what its constructor takes; the rest keeps the class defaults below.
    """

    waiting: int = 0  # arguments not ready yet; -1 once the task failed
    # Nothing to release when it finishes: no refs pinned, no segment or arena slot, no
    # buffers or large bytes to drop (set at submission).
    light: bool = False
    args_kept: WorkerLink | None = None  # the worker that kept views of args_slot
    # iris.cancel'ed while in flight (1; 2 with force): its objects failed already; its
    # result, when it comes, only releases what the task holds.
    cancelled: int = 0
    buffers: list[Any] = []  # the arguments' out-of-band buffers (read-only default)
    deps: list[ObjectRef] | None = None  # top-level ref arguments, resolved before it runs
    pinned: list[ObjectRef] = []  # refs inside the arguments (read-only default)
    args_value: Value | None = None  # the arguments when not inline: arena, segment
    args_segment: str | None = None
    args_slot: Any = None  # an ArenaSlot holding the arguments, released when done
    actor: ActorRecord | None = None  # the actor this task creates or calls
    role: int = 0  # CALL, CREATE or KILL (for actor tasks)

    def __init__(self, oids: tuple[int, ...], func: FunctionInfo, header: bytes,
                 num_returns: int, retries_left: int) -> None:
        self.where = func.label
        self.nrefs = 1  # the ref submit returns
        self.oids = oids
        self.func = func
        self.header = header  # the pickled arguments (b"" when they travel otherwise)
        self.num_returns = num_returns
        self.retries_left = retries_left


CALL, CREATE, KILL = 0, 1, 2


class ActorRecord:
    """What a client knows of an actor: where it lives, its calls waiting for a place."""

    __slots__ = ("actor_id", "name", "worker_id", "restarts_left", "dead", "pending",
                 "restart", "methods", "creation", "calls", "killing", "detached",
                 "reregister")

    def __init__(self, actor_id: str, name: str, restarts: int = 0,
                 worker_id: str | None = None) -> None:
        self.actor_id = actor_id
        self.name = name
        self.worker_id = worker_id  # None until its creation task is placed
        self.restarts_left = restarts
        self.dead: BaseException | None = None
        self.pending: deque[TaskEntry] = deque()  # calls made before it had a place
        self.restart: Callable[[], Any] | None = None  # resubmits the creation task
        self.methods: dict[str, FunctionInfo] = {}
        self.creation: Any = None  # the ref of its (latest) creation task
        # Its calls in submission order, until each is ready (arguments resolved) and all
        # before it have gone on: a call waiting for an argument holds the later ones back.
        self.calls: deque[TaskEntry] = deque()
        self.killing = False  # iris.kill was called: later calls fail
        self.detached = False  # it outlives the client that made it
        # For an actor with a cluster-wide name: tells the head where it now lives (after a
        # restart placed it); None once it is dead (its name is unregistered then).
        self.reregister: Callable[[], None] | None = None


@dataclass(slots=True, eq=False)
class WorkerLink:
    """A worker the client sends tasks to, and what is in flight there."""

    worker_id: str
    address: str
    host: str
    sock: Any  # a ZeroMQ DEALER, or a StreamLink to a worker on this machine
    local: str = ""  # the unix:// address of that link, if it is one
    inflight: dict[int, TaskEntry] = field(default_factory=dict)
    defined: set[int] = field(default_factory=set)
    # In-flight tasks that told us they are blocked in get: they do not count as load.
    blocked: set[int] = field(default_factory=set)
    # Arena slots of finished tasks whose arguments it still views, by task id.
    kept: dict[int, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # as the head announced it
    gone: bool = False  # removed for good (it died): nothing of ours lives there

    def load(self) -> int:
        return len(self.inflight) - len(self.blocked)
