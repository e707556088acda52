"""README "4. Service Discovery & Registry".

The README uses ``rt`` and ``my_handler`` from earlier; the first lines supply them.
``find_remote`` (the network part) is defined as written and, like in the README, not
called here: "192.168.1.5:9000" is the README's placeholder address.
"""

import iris
rt = iris.Runtime()

def my_handler(msg):
    print("auth_worker got", msg)

# 1. Register a local actor
pid = rt.spawn(my_handler)
rt.register("auth_worker", pid)

# 2. Look it up later (Local)
target = rt.whereis("auth_worker")

# 3. Look it up remotely (Network)
async def find_remote():
    addr = "192.168.1.5:9000"
    # Non-blocking resolution
    remote_pid = await rt.resolve_remote_py(addr, "auth_worker")
    if remote_pid:
        rt.send_remote(addr, remote_pid, b"login")

assert target == pid
