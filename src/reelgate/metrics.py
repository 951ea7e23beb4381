"""Prometheus metrics. One registry per app instance, so tests can build many apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "reelgate_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.tasks = Gauge(
            "reelgate_tasks", "Tasks by status (read from the database)", ["status"], registry=self.registry
        )
        self.queue_depth = Gauge("reelgate_queue_depth", "Pending tasks ready to be claimed", registry=self.registry)
        self.live_workers = Gauge(
            "reelgate_live_workers",
            "Live workers (seen within REELGATE_WORKER_TTL_S) advertising each engine as available",
            ["engine"],
            registry=self.registry,
        )
        self.engine_seconds = Histogram(
            "reelgate_engine_seconds",
            "Wall time of engine runs in this process",
            ["engine", "outcome"],
            registry=self.registry,
            buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640),
        )
        self.tasks_finished = Counter(
            "reelgate_tasks_finished",
            "Tasks ended by workers of this process",
            ["engine", "status"],
            registry=self.registry,
        )
