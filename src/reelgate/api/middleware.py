"""Request latency metrics and rate-limit headers. Latency is labelled by route template (not raw path,
which would explode cardinality)."""

from __future__ import annotations

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgate.accounts.limits import Decision
from reelgate.metrics import Metrics

# Where api/auth.py leaves the request's rate-limit decision for RateLimitHeaders to add to the answer.
RATE_LIMIT_STATE = "rate_limit"


class RequestMetrics:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.request_seconds.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )


class RateLimitHeaders:
    """Adds X-RateLimit-Limit/-Remaining/-Reset to every answer of an authenticated request (the dependency
    that counted the request left its decision in the request state), error answers included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get("state", {}).get(RATE_LIMIT_STATE)
                if isinstance(decision, Decision):
                    headers = MutableHeaders(scope=message)
                    for name, value in decision.headers().items():
                        if name.startswith("X-RateLimit-"):
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
