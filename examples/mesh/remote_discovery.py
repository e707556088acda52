"""README "4. Service Discovery & Registry", step 3 (the network part), run for real.

The README looks "auth_worker" up on another machine, "192.168.1.5:9000". Here the other
node is a second process this program starts (``serve`` below): it registers
"auth_worker", listens on a free loopback port and prints its address. The two processes
share the mesh token with no set-up: ``$IRIS_TOKEN`` if set, else the per-user token file
iris creates (mode 0600) in its state directory.

Run:  python examples/mesh/remote_discovery.py
"""

import asyncio
import os
import subprocess
import sys

import iris


def serve() -> None:
    """The remote node: the README's steps 1 and 2, plus ``listen``."""
    rt = iris.Runtime()

    def my_handler(msg):
        print("auth_worker got", msg, flush=True)

    # 1. Register a local actor
    pid = rt.spawn(my_handler)
    rt.register("auth_worker", pid)

    # 2. Look it up later (Local)
    assert rt.whereis("auth_worker") == pid

    print(rt.listen("127.0.0.1:0"), flush=True)  # port 0: any free port
    sys.stdin.read()  # serve until the parent closes our stdin
    rt.shutdown()


def main() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(os.path.dirname(iris.__file__)), env.get("PYTHONPATH")]))
    server = subprocess.Popen([sys.executable, __file__, "--serve"], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        addr = server.stdout.readline().strip()  # e.g. "127.0.0.1:40123"
        assert addr, "the server process did not start"
        rt = iris.Runtime()

        # 3. Look it up remotely (Network)
        async def find_remote():
            # Non-blocking resolution
            remote_pid = await rt.resolve_remote_py(addr, "auth_worker")
            if remote_pid:
                rt.send_remote(addr, remote_pid, b"login")
            return remote_pid

        remote_pid = asyncio.run(find_remote())
        assert remote_pid is not None, "auth_worker was not found"
        # Location transparency: the resolved pid is a local proxy; send() forwards.
        rt.send(remote_pid, b"logout")
        print(server.stdout.readline().strip())  # auth_worker got b'login'
        print(server.stdout.readline().strip())  # auth_worker got b'logout'
        rt.shutdown()
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
    else:
        main()
