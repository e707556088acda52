"""README "Actor-local Timers": one-shot and repeating timers (with an actor to target)."""

import iris
rt = iris.Runtime()
pid = rt.spawn(lambda msg: print("timer sent", msg))

timer_id = rt.send_after(pid, 200, b'tick')  # send 'tick' after 200ms

# cancel if needed
rt.cancel_timer(timer_id)

timer_id = rt.send_interval(pid, 1000, b'heartbeat')  # every 1s

# stop later
rt.cancel_timer(timer_id)
