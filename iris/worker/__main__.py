"""``python -m iris.worker``: a worker process, configured through stdin (internal)."""

from iris.worker._process import main

main()
