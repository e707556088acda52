"""README "Virtual / Lazy Actors": a PID that activates on its first message (verbatim)."""

import iris

rt = iris.Runtime()

pid = rt.spawn_virtual(
    lambda msg: print("virtual got", bytes(msg)),
    budget=100,
    idle_timeout_ms=500,
)

# activates on first send
rt.send(pid, b"hello")
