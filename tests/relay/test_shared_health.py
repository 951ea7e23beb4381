"""Relay route health is shared by every process: the database or Redis holds it, each process reads it every
second, so a failing upstream is skipped by every replica and all see it recover."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from reelgate.db import migrate
from reelgate.engines.relay.health import HealthStore, RelayRuntime
from reelgate.engines.relay.health_stores import DbHealthStore, RedisHealthStore
from reelgate.resources import Resources, database_for
from tests.conftest import (
    REDIS_URL,
    Backend,
    make_settings,
    migrate_db,
    postgres_schema,
    require_redis,
    sqlite_backend_at,
)

KEY = "kling:0123456789ab"


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def shared_place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend | None]:
    """Where the deployment keeps route health: a database (either kind), or Redis (None: no database)."""
    if request.param == "redis":
        require_redis()
        yield None
    elif request.param == "sqlite":
        yield sqlite_backend_at(tmp_path)
    else:
        with postgres_schema() as backend:
            yield backend


@asynccontextmanager
async def _stores(place: Backend | None, tmp_path: Path) -> AsyncIterator[Callable[[], HealthStore]]:
    """A factory of stores that all see the same shared state, as the processes of one deployment do."""
    if place is None:
        prefix = f"reelgate-test:{uuid.uuid4().hex[:8]}:"
        made: list[RedisHealthStore] = []

        def redis_store() -> HealthStore:
            made.append(RedisHealthStore(REDIS_URL, prefix=prefix))
            return made[-1]

        try:
            yield redis_store
        finally:
            for store in made:
                await store.aclose()
        return
    settings = make_settings(tmp_path / "home", place)
    db = database_for(settings)
    await migrate.upgrade(db)
    try:
        yield lambda: DbHealthStore(db)
    finally:
        await db.dispose()


def test_a_breaker_opened_by_one_process_is_open_for_all_and_closes_for_all(
    shared_place: Backend | None, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with _stores(shared_place, tmp_path) as store:
            a, b = RelayRuntime(store()), RelayRuntime(store())
            route_a = a.health(KEY, failures_to_open=3, cooldown_s=60)
            route_b = b.health(KEY, failures_to_open=3, cooldown_s=60)
            for _ in range(3):
                route_a.record_failure()
            await a.flush()
            assert route_a.is_open()  # this process knows at once
            assert not route_b.is_open()
            await b.refresh()
            assert route_b.is_open()  # the other one at its next refresh
            route_b.record_success()
            await b.flush()
            await a.refresh()
            assert not route_a.is_open() and route_a.state.failures == 0
            route_b.mark_auth_problem("kling refused the operator's credentials (code 1002)")
            await b.flush()
            await a.refresh()
            assert route_a.auth_problem == "kling refused the operator's credentials (code 1002)"
            # A process starting with these credentials clears the problem for everyone.
            restarted = RelayRuntime(store())
            restarted.health(KEY, failures_to_open=3, cooldown_s=60)
            await restarted.start()
            await a.refresh()
            assert route_a.auth_problem is None

    asyncio.run(scenario())


def test_failures_from_many_processes_at_once_are_all_counted(shared_place: Backend | None, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _stores(shared_place, tmp_path) as store:
            stores = [store() for _ in range(4)]
            await asyncio.gather(
                *(
                    s.record_failure(KEY, now=1e9, failures_to_open=1000, cooldown_s=60)
                    for s in stores
                    for _ in range(10)
                )
            )
            assert (await stores[0].read_all())[KEY].failures == 40

    asyncio.run(scenario())


def test_a_replica_stops_routing_to_an_upstream_another_found_failing(tmp_path: Path, backend: Backend) -> None:
    """Two services on one database (an API replica and a worker's process): the worker's relay records the
    failures, and the replica drops the route from what it serves at its next refresh."""
    settings = make_settings(
        tmp_path / "home",
        backend,
        kling_access_key="a",
        kling_secret_key="s",
        relay_breaker_failures=2,
        models={"o1": ["kling", "motion"]},
    )
    migrate_db(settings)

    async def scenario() -> None:
        worker_side, api_side = Resources.build(settings), Resources.build(settings)
        try:
            for side in (worker_side, api_side):
                await side.relays.start()
            kling = worker_side.registry.engines["kling"]
            kling.health.record_failure()  # type: ignore[attr-defined]
            kling.health.record_failure()  # type: ignore[attr-defined]
            await worker_side.relays.flush()
            assert not kling.availability().ok
            replica_kling = api_side.registry.engines["kling"]
            assert replica_kling.availability().ok  # not yet refreshed
            await api_side.relays.refresh()
            availability = replica_kling.availability()
            assert not availability.ok and "cooling down" in availability.reason
        finally:
            await worker_side.close()
            await api_side.close()

    asyncio.run(scenario())
