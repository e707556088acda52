"""README "Python policy examples" (verbatim)."""

from iris import Runtime
rt = Runtime()

primary = rt.spawn_py_handler_bounded(lambda m: print("primary", bytes(m)), budget=100, capacity=1)
fallback = rt.spawn(lambda m: print("fallback", bytes(m)), budget=100)

# Redirect overflow to fallback actor
rt.set_overflow_policy(primary, "redirect", fallback)

# Spill copies overflow to fallback and still enqueues on primary
rt.set_overflow_policy(primary, "spill", fallback)

# Block sender until room is available
rt.set_overflow_policy(primary, "block", None)
