"""README "Persistent Worker Pool": a pool of child workers used round robin (verbatim).

``serialize_args`` is the README's placeholder; it is only named inside ``dispatch``, which
the snippet never calls. The last lines (not in the README) use the pool.
"""

import iris

rt = iris.Runtime()

# spawn a reusable pool attached to a parent PID (useful for supervision)
parent = rt.spawn(lambda m: None)              # dummy parent
workers = iris.spawn_child_pool(rt, parent, size=4)

# `workers` is a list of PIDs. use in a simple round‑robin loop:
from itertools import cycle
worker_cycle = cycle(workers)

def dispatch(price, vol, strike):
    pid = next(worker_cycle)
    # regular send is automatically optimized internally
    rt.send(pid, serialize_args(price, vol, strike))

# each worker's handler can call into JIT or Python directly

# Not in the README: without a handler, pool workers call what they are sent.
answers = [rt.call(next(worker_cycle), lambda i=i: i * i).result() for i in range(8)]
print(answers)
rt.shutdown()
