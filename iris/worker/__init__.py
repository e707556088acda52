"""The node manager and the worker process (internal): one node manager per machine spawns
and supervises the worker processes that run tasks."""
