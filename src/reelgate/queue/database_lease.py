"""The lease of a database worker: fenced writes to the tasks table and the storage, in this process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from reelgate.db.notify import notify
from reelgate.engines.relay.base import UpstreamRecord
from reelgate.queue import TASK_EVENTS_CHANNEL, repository, terminal
from reelgate.queue.context import QueueResources
from reelgate.queue.lease import ClaimedTask
from reelgate.queue.states import TaskStatus
from reelgate.storage.base import read_object
from reelgate.storage.keys import poster_key, video_key


class DatabaseLease:
    def __init__(self, resources: QueueResources, claimed: ClaimedTask) -> None:
        self.resources = resources
        self.claimed = claimed
        self._published = 0  # the claim wrote progress 0

    async def heartbeat(self, *, progress: int, estimated_time_s: int, extra: dict[str, Any] | None) -> bool:
        settings = self.resources.settings
        async with self.resources.db.transaction() as session:
            alive = await repository.heartbeat(
                session,
                self.claimed.id,
                self.claimed.fence,
                lease_s=settings.lease_s,
                progress=progress,
                estimated_time_s=estimated_time_s,
                now=time.time(),
                extra=extra,
            )
            if alive and progress != self._published:
                # Only a beat that moved the progress wakes the event streams: most beats just renew.
                await notify(session, TASK_EVENTS_CHANNEL, self.claimed.id)
        if alive:
            self._published = progress
        return alive

    async def read_stored_input(self, index: int, key: str) -> bytes:
        return await asyncio.to_thread(read_object, self.resources.storage, key)

    async def record_upstream(self, record: UpstreamRecord) -> bool:
        async with self.resources.db.transaction() as session:
            return await repository.record_upstream(
                session, self.claimed.id, self.claimed.fence, record, now=time.time()
            )

    async def was_cancelled(self) -> bool:
        async with self.resources.db.read() as session:
            return await repository.was_cancelled(session, self.claimed.id)

    async def complete(self, video: Path, poster: Path | None, info: dict[str, object]) -> bool:
        storage = self.resources.storage
        attempt = self.claimed.fence.attempt
        # The keys carry the attempt: a stale worker that lost its lease can never overwrite the winner's files.
        key = video_key(self.claimed.id, attempt)
        stored_poster = None
        if poster is not None:
            stored_poster = poster_key(self.claimed.id, attempt)
            await asyncio.to_thread(storage.put_file, stored_poster, poster)
        await asyncio.to_thread(storage.put_file, key, video)
        async with self.resources.db.transaction() as session:
            won = await terminal.complete(
                session,
                self.resources.task_ended,
                self.claimed.id,
                fence=self.claimed.fence,
                result_key=key,
                result_info=info,
                poster_key=stored_poster,
            )
        if won is None:
            for stored in (key, stored_poster):
                if stored is not None:
                    await asyncio.to_thread(storage.delete, stored)
            return False
        await terminal.discard_losing_videos(storage, won)
        return True

    async def fail(self, code: str, message: str) -> bool:
        async with self.resources.db.transaction() as session:
            won = await terminal.fail(
                session,
                self.resources.task_ended,
                self.claimed.id,
                code=code,
                message=message,
                from_statuses=(TaskStatus.PROCESSING,),
                fence=self.claimed.fence,
            )
        if won is None:
            return False
        await terminal.discard_losing_videos(self.resources.storage, won)
        return True

    async def retry_later(self, delay_s: float, *, spend_attempt: bool) -> bool:
        now = time.time()
        write = repository.retry_later if spend_attempt else repository.defer
        async with self.resources.db.transaction() as session:
            requeued = await write(session, self.claimed.id, self.claimed.fence, available_at=now + delay_s, now=now)
            if requeued:
                await notify(session, TASK_EVENTS_CHANNEL, self.claimed.id)
        return requeued
