"""README "3. Structured Concurrency": a child dies with its parent.

The README's parent handler only prints, so ``b"quit"`` would not make it exit and the
final assert could not hold. Its stated intent -- children stop when their parent exits --
is what iris does; here the parent exits on ``b"quit"`` (a handler that raises SystemExit
stops its actor with reason Normal). ``rt.join`` makes the 0.1 s sleep unnecessary but it
is kept as written.
"""

import iris

rt = iris.Runtime()

def parent_handler(msg):
    print("parent got", msg)
    if msg == b"quit":
        raise SystemExit  # exit normally: the children go too

parent = rt.spawn(parent_handler)
child = rt.spawn_child(parent, lambda msg: print("child got", msg))

rt.send(parent, b"quit")
rt.join(parent, timeout=10)
import time; time.sleep(0.1)
assert not rt.is_alive(child)

# The same with an explicit stop.
parent = rt.spawn(lambda msg: print("parent got", msg))
child = rt.spawn_child(parent, lambda msg: print("child got", msg))
rt.stop(parent)
assert not rt.is_alive(child)
print("children stopped with their parents")
