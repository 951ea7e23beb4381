"""The durable queue: the tasks table itself, claimed with leases, renewed by heartbeats."""
