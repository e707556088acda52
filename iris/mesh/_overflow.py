"""Bounded mailboxes: overflow policies and the pure decision of what a full mailbox does.

A bounded push actor (``spawn_py_handler_bounded``) holds at most ``capacity`` queued user
messages (the one being handled does not count). When a send finds it full, its policy
decides:

=========  ==============================================================================
dropnew    reject the new message; ``send`` returns False (the default)
dropold    evict the oldest queued message (a pending ``call`` in it fails), enqueue the new
redirect   deliver the new message to the fallback actor instead; ``send`` returns that result
spill      deliver a copy to the fallback actor, then wait for room as ``block`` does
block      the sender waits until there is room (or ``timeout_s`` passes: ``send`` -> False)
=========  ==============================================================================

A waiting sender waits on a condition variable, so it holds no lock the receiver needs and
releases the GIL; a sender that is itself a push actor hands its scheduler thread's work to
a stand-in thread first (see ``_scheduler``), so no other actor stalls.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ENQUEUE",
    "EVICT_THEN_ENQUEUE",
    "POLICIES",
    "REDIRECT",
    "REJECT",
    "SPILL_THEN_WAIT",
    "WAIT",
    "Overflow",
    "decide",
    "parse_policy",
]

POLICIES = ("block", "dropnew", "dropold", "redirect", "spill")

# Decisions.
ENQUEUE = "enqueue"
REJECT = "reject"
EVICT_THEN_ENQUEUE = "evict_then_enqueue"
REDIRECT = "redirect"
SPILL_THEN_WAIT = "spill_then_wait"
WAIT = "wait"


@dataclass(slots=True)
class Overflow:
    """A bounded mailbox's policy. Internal type, not part of the public API.

    Attributes:
        policy: one of ``POLICIES``.
        target: fallback PID for ``redirect`` and ``spill``.
        timeout_s: longest a ``block``/``spill`` sender waits; None waits for ever.
        waiting: senders waiting for room now (written under the mailbox's condition).
    """

    policy: str = "dropnew"
    target: int | None = None
    timeout_s: float | None = None
    waiting: int = 0


def parse_policy(policy: str, target: int | None, timeout_s: float | None) -> Overflow:
    """Validate a policy as given to ``set_overflow_policy``.

    Accepts any case and ignores ``_`` and ``-`` (``"drop_new"`` is ``"dropnew"``).

    Raises:
        ValueError: unknown policy, a missing target for redirect/spill, or a negative
            timeout.
        TypeError: ``policy`` is not a string.
    """
    if not isinstance(policy, str):
        raise TypeError(f"overflow policy must be a string, got {policy!r}")
    name = policy.lower().replace("_", "").replace("-", "")
    if name not in POLICIES:
        raise ValueError(f"unknown overflow policy {policy!r} (valid policies: {list(POLICIES)})")
    if name in ("redirect", "spill") and target is None:
        raise ValueError(f"overflow policy {name!r} needs a target pid (got None)")
    if timeout_s is not None and timeout_s < 0:
        raise ValueError(f"timeout_s must be >= 0 or None, got {timeout_s!r}")
    return Overflow(name, target, timeout_s)


def decide(queued: int, capacity: int | None, policy: str) -> str:
    """What a send does, given the queue length, the capacity and the policy.

    Example:
        >>> decide(2, 2, "dropold")
        'evict_then_enqueue'
    """
    if capacity is None or queued < capacity:
        return ENQUEUE
    if policy == "dropnew":
        return REJECT
    if policy == "dropold":
        return EVICT_THEN_ENQUEUE if capacity > 0 else REJECT
    if policy == "redirect":
        return REDIRECT
    if policy == "spill":
        return SPILL_THEN_WAIT
    return WAIT
