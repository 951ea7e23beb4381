"""Requests-per-minute limits: a sliding 60-second log per key (at most `limit` requests in any 60 s, with no
window edge where twice the limit gets through).

`MemoryLimiter` counts in this process (the embedded deployment); `RedisLimiter` counts in Redis, atomically
(one Lua script), so several API processes share one count per key. Unfinished-task limits are counted in the
database at create time (tasks/service.py), so they are shared by every process without Redis.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

WINDOW_S = 60.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until a slot frees (the oldest counted request leaves the window).
    reset_s: int

    def headers(self) -> dict[str, str]:
        values = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            values["Retry-After"] = str(max(1, self.reset_s))
        return values


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int) -> Decision: ...

    async def aclose(self) -> None: ...


def _decision(allowed: bool, limit: int, count: int, oldest: float | None, now: float) -> Decision:
    reset = 0 if oldest is None else max(0, math.ceil(oldest + WINDOW_S - now))
    return Decision(allowed=allowed, limit=limit, remaining=max(0, limit - count), reset_s=reset)


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[str, deque[float]] = {}
        self._lock = asyncio.Lock()
        self._last_prune = 0.0

    async def hit(self, key: str, limit: int) -> Decision:
        async with self._lock:
            now = self._clock()
            log = self._logs.setdefault(key, deque())
            while log and log[0] <= now - WINDOW_S:
                log.popleft()
            allowed = len(log) < limit
            if allowed:
                log.append(now)
            self._prune(now)
            return _decision(allowed, limit, len(log), log[0] if log else None, now)

    def _prune(self, now: float) -> None:
        # Keys that went quiet are forgotten, so memory follows the active keys, not every key ever seen.
        if now - self._last_prune < WINDOW_S:
            return
        self._last_prune = now
        for key in [k for k, log in self._logs.items() if not log or log[-1] <= now - WINDOW_S]:
            del self._logs[key]

    async def aclose(self) -> None:
        return None


# KEYS[1] = the key's log (a sorted set of request ids scored by time); ARGV = now_ms, window_ms, limit, id.
# Uses Redis's clock (TIME) rather than ours, so processes on machines with skewed clocks agree.
_SLIDING_LOG = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local oldest_ms = -1
if oldest[2] then oldest_ms = tonumber(oldest[2]) end
return {allowed, count, oldest_ms, now}
"""


class RedisLimiter:
    def __init__(self, url: str, *, prefix: str = "reelgate:rpm:") -> None:
        import redis.asyncio as redis

        self._client: Any = redis.Redis.from_url(url)
        self._script = self._client.register_script(_SLIDING_LOG)
        self._prefix = prefix

    async def hit(self, key: str, limit: int) -> Decision:
        allowed, count, oldest_ms, now_ms = await self._script(
            keys=[self._prefix + key], args=[int(WINDOW_S * 1000), limit, uuid.uuid4().hex]
        )
        oldest = None if int(oldest_ms) < 0 else int(oldest_ms) / 1000
        return _decision(bool(allowed), limit, int(count), oldest, int(now_ms) / 1000)

    async def aclose(self) -> None:
        await self._client.aclose()


def build_limiter(redis_url: str) -> RateLimiter:
    return RedisLimiter(redis_url) if redis_url else MemoryLimiter()
