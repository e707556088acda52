"""``python -m iris._boot``: the embedded cluster's daemon, started as fast as it can be.

The daemon's configuration arrives on stdin. Before it creates any thread or socket, it
imports the worker's modules and forks the worker processes: each starts with the
interpreter and its modules already loaded, instead of a fresh Python start-up and imports
(~150-250 ms here). Replacements for workers that die later are fresh interpreters
(``python -m iris.worker``): by then the daemon has threads, and forking is unsafe.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    """Start the workers (their number is the first argument), read the config line from
    stdin, then run the daemon."""
    prespawned: list[Any] = []
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if n > 0:
        from iris.worker._spawn import fork_worker_processes

        # No thread and no ZeroMQ context exists yet: forking is safe, and each worker
        # starts with the interpreter and its modules already loaded.
        prespawned = fork_worker_processes(n)
    line = sys.stdin.readline()
    if not line:
        for proc in prespawned:  # the driver gave up: EOF on their stdin ends them
            proc.stdin.close()
            proc.wait()
        return
    cfg = json.loads(line)
    from iris._daemon import serve

    serve(cfg, prespawned)


if __name__ == "__main__":
    main()
