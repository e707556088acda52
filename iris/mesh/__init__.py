"""The actor mesh: ``Runtime`` with push and pull actors, supervision, hot swap, timers.

Modules, each one concept::

    _runtime     Runtime: spawning, sending, stop/join, shutdown, introspection (facade)
    _admin       Runtime: names/paths, supervision, links/monitors, hot swap, timers, overflow
    _remote      Runtime: the cross-process mesh (listen, resolve_remote, proxies)
    _global_names Runtime: cluster-wide names through the head (register_global, ...)
    _head_link   the connection to the cluster's head (name requests, lease renewals)
    _net         the mesh node: I/O thread, peers (connect, batches out, heartbeats)
    _net_server  the mesh node's listener: batches in, resolve, remote monitors
    _net_peer    node states, Peer, NodeUnreachable, blocking_wait
    _net_wire    batch frames of mesh messages (pure)
    _net_config  addresses, tokens, network settings
    _kernel      the actor table, spawning, delivery, scheduler hooks
    _lifecycle   death: children, links, monitors, supervisors, timers, join
    _scheduler   run queue and threads, budget (messages per turn)
    _mailbox     Mailbox: a pull actor's recv / selective_recv
    _actor       the per-actor record
    _calls       call(): request envelope and Reply
    _messages    SystemMessage and exit reasons
    _supervision supervision decisions, pure (OTP strategies, restart types, intensity)
    _supervisors the runtime's supervisors carrying out those decisions
    _registry    names and paths
    _behaviors   hot-swap version history
    _overflow    bounded-mailbox policies
    _timers      the timer thread
    _pids        PID allocation
"""

from __future__ import annotations

from iris.mesh._calls import Reply
from iris.mesh._head_link import HeadUnreachable
from iris.mesh._mailbox import Mailbox
from iris.mesh._messages import SystemMessage
from iris.mesh._runtime import Runtime, spawn_child_pool

__all__ = ["HeadUnreachable", "Mailbox", "PyMailbox", "PySystemMessage", "Reply", "Runtime",
           "SystemMessage", "spawn_child_pool"]

# The original runtime's names for the same classes (README code uses ``iris.PySystemMessage``).
PySystemMessage = SystemMessage
PyMailbox = Mailbox
