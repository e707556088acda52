"""README "Distributed Supervision & Self-Healing": heartbeats and NodeDown, run for real.

A second process (``serve`` below) is the remote node. This process resolves its
"worker", monitors it with ``monitor_remote`` and kills the node: the observer gets an
EXIT with reason NodeDown (the lost connection says so at once; for a node that stops
answering without closing its connection, the 0x02/0x03 heartbeats say so within
``heartbeat_timeout_s``).

Run:  python examples/mesh/remote_monitoring.py
"""

import os
import subprocess
import sys
import time

import iris


def serve() -> None:
    """The remote node: one registered worker, listening on a free loopback port."""
    rt = iris.Runtime()
    rt.register("worker", rt.spawn(lambda msg: None))
    print(rt.listen("127.0.0.1:0"), flush=True)
    sys.stdin.read()  # serve until killed or our stdin closes


def main() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(os.path.dirname(iris.__file__)), env.get("PYTHONPATH")]))
    server = subprocess.Popen([sys.executable, __file__, "--serve"], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    rt = iris.Runtime()
    try:
        addr = server.stdout.readline().strip()
        assert addr, "the server process did not start"
        rt.configure_network(heartbeat_interval_s=0.2, heartbeat_timeout_s=2.0)

        worker = rt.resolve_remote(addr, "worker")          # a local proxy pid
        observer = rt.spawn_observed_handler()
        rt.monitor_remote(addr, worker, watcher=observer)   # EXIT goes to observer
        print("node up:", rt.is_node_up(addr))              # True

        server.kill()                                       # the remote node dies

        deadline = time.monotonic() + 30
        while not rt.get_messages(observer) and time.monotonic() < deadline:
            time.sleep(0.01)
        for msg in rt.get_messages(observer):
            if isinstance(msg, iris.PySystemMessage) and msg.type_name == "EXIT":
                print(f"Actor {msg.target_pid} exited: {msg.reason}")  # NodeDown
                assert msg.reason == "NodeDown"
        assert rt.get_messages(observer), "no EXIT arrived"
        print("node up:", rt.is_node_up(addr))              # False
    finally:
        server.kill()
        server.wait()
        server.stdin.close()
        server.stdout.close()
        rt.shutdown()


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
    else:
        main()
