"""Cluster-wide names: register an actor with the cluster's head, find it from anywhere.

This program starts a local iris cluster (``iris.init()``) and a second driver process
that joins it (``iris.init(address=...)``). The second driver registers its "greeter"
actor cluster-wide; this one looks the name up through the head and sends to it, without
knowing which process or machine the actor lives in. When the greeter exits, its name
disappears from the head.

Run:  python examples/mesh/cluster_names.py
"""

import os
import subprocess
import sys
import time

import iris


def second_driver(head: str) -> None:
    """Another process of the same cluster: registers "greeter" and serves it."""
    iris.init(address=head)
    rt = iris.Runtime()
    rt.listen("127.0.0.1:0")
    replies = {}

    def greeter(msg):
        if msg == b"bye":
            raise SystemExit  # the actor exits (reason Normal): its name goes with it
        # Answer whoever registered "greeter-inbox", wherever that is.
        if "inbox" not in replies:
            replies["inbox"] = rt.whereis_global("greeter-inbox")
        rt.send(replies["inbox"], b"hello, " + msg)

    rt.register_global("greeter", rt.spawn(greeter))
    print("ready", flush=True)
    sys.stdin.read()  # serve until the first driver closes our stdin
    rt.shutdown()
    iris.shutdown()


def main() -> None:
    ctx = iris.init(num_workers=1)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    child = subprocess.Popen([sys.executable, __file__, "--second", ctx.address], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rt = iris.Runtime()
    try:
        assert child.stdout.readline().strip() == "ready"
        rt.listen("127.0.0.1:0")
        got = []
        inbox = rt.spawn(got.append)
        rt.register_global("greeter-inbox", inbox)

        greeter = rt.whereis_global("greeter")  # a proxy PID: send works as for a local one
        print("cluster names:", rt.global_names())
        rt.send(greeter, b"iris")
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        print("reply:", got[0])

        rt.send(greeter, b"bye")
        while "greeter" in rt.global_names() and time.monotonic() < deadline:
            time.sleep(0.01)
        print("after the greeter exited:", rt.whereis_global("greeter"))  # None
    finally:
        child.stdin.close()
        child.wait(20)
        rt.shutdown()
        iris.shutdown()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--second":
        second_driver(sys.argv[2])
    else:
        main()
