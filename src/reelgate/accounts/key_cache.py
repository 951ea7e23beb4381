"""Verified API keys held in the process, so an authenticated request needs no database read for its key.

What is cached: a key's record and its account's identity and group (accounts/repository.py `KeyRecord`,
`AccountRecord`), for at most `REELGATE_KEY_CACHE_S`. Never money (balances and holds are read in the create's
transaction), never the rate-limit counts (the limiter counts every request) and never the unfinished-task
count (counted in the create's transaction): those stay exact. Expiry is judged on every request from the
record's `expires_at`, so an expired key is refused at its second, cached or not. Unknown key ids are not
cached: a key created a moment ago works at once, in every process.

Invalidation across processes: every change that can make a cached key wrong bumps a counter row in its own
transaction (`repository.keys_changed`: a revoke today). A process reads the counter at most every
`CHANGE_CHECK_S`, on the first request after that interval (the read is part of that request, shared by the
requests that arrive meanwhile), and forgets every cached key when it moved. A request is answered from the
cache only while the last counter read *started* less than `CHANGE_CHECK_S` ago, so a revoked key is refused
by every process, of every backend, at most `CHANGE_CHECK_S` plus one read after the revoke commits (the
contract says 1 s). The same read works on SQLite across processes and on PostgreSQL across machines, with no
listener connection whose loss would need handling of its own; it costs each busy process two indexed
single-row reads a second, and an idle one none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from reelgate.accounts import repository
from reelgate.accounts.records import AccountRecord, KeyRecord
from reelgate.db.database import Database

# How stale the process's view of the change counter may be: the bound on refusing a revoked key, less a read.
CHANGE_CHECK_S = 0.5
# Keys kept at most; past it the cache starts over (a deployment with more active keys than this reads some
# keys from the database more often, nothing more).
MAX_KEYS = 10_000

Found = tuple[KeyRecord, AccountRecord]


class KeyCache:
    def __init__(self, db: Database, *, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._max_age_s = max_age_s
        self._clock = clock
        self._entries: dict[str, tuple[Found, float]] = {}
        self._version: int | None = None
        self._checked_at = float("-inf")
        self._check: asyncio.Future[None] | None = None
        # Bumped whenever the entries are forgotten: a read that began before is not kept (it may predate
        # the change that made them go).
        self._generation = 0
        # Reads of keys and of the counter (what the tests count).
        self.key_reads = 0
        self.version_reads = 0

    async def get(self, key_id: str) -> Found | None:
        """The key and its account, from the cache while it may be trusted, else from the database."""
        if self._max_age_s <= 0:
            return await self._read_key(key_id)
        await self._follow_changes()
        now = self._clock()
        entry = self._entries.get(key_id)
        if entry is not None and now - entry[1] < self._max_age_s:
            return entry[0]
        generation = self._generation
        found = await self._read_key(key_id)
        if found is not None and generation == self._generation:
            if len(self._entries) >= MAX_KEYS:
                self._entries.clear()
            self._entries[key_id] = (found, now)
        return found

    def forget(self) -> None:
        """Forget every cached key (this process changed one: no need to wait for the counter)."""
        self._entries.clear()
        self._generation += 1
        self._checked_at = float("-inf")

    async def _read_key(self, key_id: str) -> Found | None:
        self.key_reads += 1
        return await repository.key_record(self._db, key_id)

    async def _follow_changes(self) -> None:
        while self._clock() - self._checked_at >= CHANGE_CHECK_S:
            if self._check is not None and not self._check.done():
                # One read for every request that arrives while it runs; each looks again once it ended
                # (and reads itself if that read failed).
                await asyncio.wait([self._check])
                continue
            self._check = asyncio.get_running_loop().create_future()
            try:
                started = self._clock()
                self.version_reads += 1
                version = await repository.keys_version(self._db)
                if version != self._version:
                    self._entries.clear()
                    self._generation += 1
                    self._version = version
                # Trusted from when the read began: a change committed after that may not be in it.
                self._checked_at = started
            finally:
                self._check.set_result(None)
            return
