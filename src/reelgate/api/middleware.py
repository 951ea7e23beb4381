"""Request latency metrics and rate-limit headers, in one middleware. Latency is labelled by route template
(not raw path, which would explode cardinality)."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgate.accounts.limits import Decision
from reelgate.metrics import Metrics

# Where api/auth.py leaves the request's rate-limit decision for RequestMetrics to add to the answer.
RATE_LIMIT_STATE = "rate_limit"


class RequestMetrics:
    """Observes every HTTP request's latency by method, route template and status, and adds
    X-RateLimit-Limit/-Remaining/-Reset to every answer of an authenticated request (the dependency that
    counted the request left its decision in the request state), error answers included. One middleware for
    both: each layer wraps every request's `send` once more, and two were a measurable part of a poll."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # prometheus_client's labels() resolves and locks per call; the children are few (routes x statuses).
        self._observers: dict[tuple[str, str, int], Callable[[float], None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                decision = scope.get("state", {}).get(RATE_LIMIT_STATE)
                if isinstance(decision, Decision):
                    headers = MutableHeaders(scope=message)
                    for name, value in decision.headers().items():
                        if name.startswith("X-RateLimit-"):
                            headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            self._observer(scope["method"], getattr(scope.get("route"), "path", "unmatched"), status)(
                time.perf_counter() - started
            )

    def _observer(self, method: str, template: str, status: int) -> Callable[[float], None]:
        found = self._observers.get((method, template, status))
        if found is None:
            found = self.metrics.request_seconds.labels(method, template, str(status)).observe
            self._observers[(method, template, status)] = found
        return found
