"""README "5. Hot-Swapping Logic".

The README uses an ``rt`` made earlier. Note: the first message may still be queued when
the swap happens; queued messages run the new code, so this can print "Logic B" twice.
The last lines (not in the README) wait for the first message before swapping.
"""

import iris
rt = iris.Runtime()

def behavior_a(msg): print("Logic A")
def behavior_b(msg): print("Logic B (Upgraded!)")

pid = rt.spawn(behavior_a, budget=10)
rt.send(pid, b"test") # Prints "Logic A"

rt.hot_swap(pid, behavior_b)
rt.send(pid, b"test") # Prints "Logic B (Upgraded!)"

# Not in the README: deterministic order, and a rollback to version 1.
pid = rt.spawn(behavior_a, budget=10)
rt.call(pid, b"test").result()          # Logic A, handled before the swap
rt.hot_swap(pid, behavior_b)
rt.call(pid, b"test").result()          # Logic B (Upgraded!)
print("version", rt.behavior_version(pid), "-> rollback to", rt.rollback_behavior(pid))
rt.call(pid, b"test").result()          # Logic A
rt.shutdown()
