"""README "2. Synchronous Pull Actors": a saga coordinator blocking on recv.

The README snippet uses an ``rt`` made earlier; the first two lines supply it, and the last
lines (not in the README) drive the saga so the program shows both outcomes.
"""

import iris
rt = iris.Runtime()

# Runs in a dedicated OS thread. Blocking is safe.
def saga_coordinator(mailbox):
    # Blocks thread, releases GIL
    msg = mailbox.recv() 
    print("Starting Saga...")
    
    # Wait up to 5 seconds for next message
    confirm = mailbox.recv(timeout=5.0)
    if confirm: 
        print("Confirmed")
    else:
        print("Timed out")

rt.spawn_with_mailbox(saga_coordinator, budget=100)

# Not in the README: run one saga to completion.
pid = rt.spawn_with_mailbox(saga_coordinator, budget=100)
rt.send(pid, b"begin")
rt.send(pid, b"confirm")
rt.join(pid, timeout=10)
rt.shutdown()
