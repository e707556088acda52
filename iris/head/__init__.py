"""The head service (internal): the cluster's control plane — nodes, workers, clients and
the events that tie them together. It stays off the task path."""
