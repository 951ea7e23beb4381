"""Where relay route health is shared between processes: the database (`upstream_health`, the one owner of
its SQL), or Redis when REELGATE_REDIS_URL is set. Both apply each change as one atomic read-modify-write of
one route's row, so two processes that record a failure at once count two failures."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from reelgate.db.database import Database
from reelgate.db.models import UpstreamHealth
from reelgate.engines.relay.health import HealthState, after_failure, after_success


def _state(row: UpstreamHealth) -> HealthState:
    return HealthState(failures=row.failures, opened_at=row.opened_at, auth_problem=row.auth_problem)


class DbHealthStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def read_all(self) -> dict[str, HealthState]:
        async with self._db.read() as session:
            rows = (await session.scalars(select(UpstreamHealth))).all()
        return {row.key: _state(row) for row in rows}

    async def _change(self, key: str, change: Callable[[HealthState], HealthState], *, now: float) -> None:
        for _ in range(2):  # a first writer of the same new key may win the insert; then the row exists
            try:
                async with self._db.transaction() as session:
                    row = await session.get(UpstreamHealth, key, with_for_update=True)
                    if row is None:
                        new = change(HealthState())
                        session.add(
                            UpstreamHealth(
                                key=key,
                                failures=new.failures,
                                opened_at=new.opened_at,
                                auth_problem=new.auth_problem,
                                updated_at=now,
                            )
                        )
                    else:
                        new = change(_state(row))
                        row.failures, row.opened_at, row.auth_problem = new.failures, new.opened_at, new.auth_problem
                        row.updated_at = now
                return
            except IntegrityError:
                continue

    async def record_failure(self, key: str, *, now: float, failures_to_open: int, cooldown_s: float) -> None:
        await self._change(
            key,
            lambda state: after_failure(state, now=now, failures_to_open=failures_to_open, cooldown_s=cooldown_s),
            now=now,
        )

    async def record_success(self, key: str, *, now: float) -> None:
        await self._change(key, after_success, now=now)

    async def mark_auth_problem(self, key: str, problem: str, *, now: float) -> None:
        await self._change(key, lambda state: replace(state, auth_problem=problem), now=now)

    async def clear_auth_problems(self, keys: Iterable[str], *, now: float) -> None:
        for key in keys:
            await self._change(key, lambda state: replace(state, auth_problem=None), now=now)

    async def aclose(self) -> None:
        return None  # the database handle belongs to the service


# KEYS[1] = the route's key. ARGV = the operation and its numbers. One script, so a change is atomic.
_CHANGE = """
local raw = redis.call('GET', KEYS[1])
local state = {failures = 0}
if raw then state = cjson.decode(raw) end
local op = ARGV[1]
if op == 'failure' then
  local now, n, cooldown = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  state.failures = state.failures + 1
  local half_open = state.opened_at and (now - state.opened_at >= cooldown)
  if state.failures >= n or half_open then state.opened_at = now end
elseif op == 'success' then
  state.failures = 0
  state.opened_at = nil
elseif op == 'auth' then
  state.auth_problem = ARGV[2]
elseif op == 'clear_auth' then
  state.auth_problem = nil
end
redis.call('SET', KEYS[1], cjson.encode(state))
return 1
"""


class RedisHealthStore:
    def __init__(self, url: str, *, prefix: str = "reelgate:upstream_health:") -> None:
        import redis.asyncio as redis

        self._client: Any = redis.Redis.from_url(url)
        self._script = self._client.register_script(_CHANGE)
        self._prefix = prefix

    async def read_all(self) -> dict[str, HealthState]:
        keys = [key async for key in self._client.scan_iter(match=f"{self._prefix}*")]
        if not keys:
            return {}
        values = await self._client.mget(keys)
        states: dict[str, HealthState] = {}
        for key, raw in zip(keys, values, strict=True):
            if raw is None:
                continue
            data = json.loads(raw)
            states[key.decode()[len(self._prefix) :]] = HealthState(
                failures=int(data.get("failures", 0)),
                opened_at=data.get("opened_at"),
                auth_problem=data.get("auth_problem"),
            )
        return states

    async def record_failure(self, key: str, *, now: float, failures_to_open: int, cooldown_s: float) -> None:
        await self._script(keys=[self._prefix + key], args=["failure", now, failures_to_open, cooldown_s])

    async def record_success(self, key: str, *, now: float) -> None:
        await self._script(keys=[self._prefix + key], args=["success"])

    async def mark_auth_problem(self, key: str, problem: str, *, now: float) -> None:
        await self._script(keys=[self._prefix + key], args=["auth", problem])

    async def clear_auth_problems(self, keys: Iterable[str], *, now: float) -> None:
        for key in keys:
            await self._script(keys=[self._prefix + key], args=["clear_auth"])

    async def aclose(self) -> None:
        await self._client.aclose()
