"""The key cache (accounts/key_cache.py): a verified key is served from memory, the change counter is read at
most every CHANGE_CHECK_S, a revoke anywhere empties every cache at its next counter read, and a key read that
began before the entries were forgotten is not kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reelgate.accounts import repository
from reelgate.accounts.key_cache import CHANGE_CHECK_S, KeyCache
from reelgate.resources import database_for
from tests.conftest import create_key, make_settings, migrate_db, sqlite_backend_at


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_come_from_memory_until_the_counter_moves(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", sqlite_backend_at(tmp_path))
    migrate_db(settings)
    key_id = create_key(settings).split("_")[1]

    async def run() -> None:
        db = database_for(settings)
        clock = Clock()
        cache = KeyCache(db, max_age_s=60, clock=clock)
        try:
            found = await cache.get(key_id)
            assert found is not None and found[0].revoked_at is None
            for _ in range(50):
                assert await cache.get(key_id) == found
            assert (cache.key_reads, cache.version_reads) == (1, 1)

            # Revoked by another handle (another process): unseen until the counter is read again...
            other = database_for(settings)
            async with other.transaction() as session:
                assert await repository.revoke_key(session, key_id)
            await other.dispose()
            clock.now += CHANGE_CHECK_S / 2
            assert await cache.get(key_id) == found
            # ... which is at most CHANGE_CHECK_S after the last one.
            clock.now += CHANGE_CHECK_S / 2
            revoked = await cache.get(key_id)
            assert revoked is not None and revoked[0].revoked_at is not None
            assert (cache.key_reads, cache.version_reads) == (2, 2)
        finally:
            await db.dispose()

    asyncio.run(run())


def test_concurrent_requests_share_one_counter_read_and_unknown_keys_are_not_kept(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", sqlite_backend_at(tmp_path))
    migrate_db(settings)
    key_id = create_key(settings).split("_")[1]

    async def run() -> None:
        db = database_for(settings)
        cache = KeyCache(db, max_age_s=60, clock=Clock())
        try:
            results = await asyncio.gather(*(cache.get(key_id) for _ in range(20)))
            assert all(result is not None for result in results)
            assert cache.version_reads == 1
            before = cache.key_reads
            assert await cache.get("unknownkey") is None
            assert await cache.get("unknownkey") is None
            assert cache.key_reads == before + 2  # an unknown id is read every time (a new key works at once)
        finally:
            await db.dispose()

    asyncio.run(run())


def test_a_zero_life_reads_every_time(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", sqlite_backend_at(tmp_path))
    migrate_db(settings)
    key_id = create_key(settings).split("_")[1]

    async def run() -> None:
        db = database_for(settings)
        cache = KeyCache(db, max_age_s=0)
        try:
            for _ in range(3):
                assert await cache.get(key_id) is not None
            assert cache.key_reads == 3
        finally:
            await db.dispose()

    asyncio.run(run())
