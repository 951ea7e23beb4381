"""The expiry sweep: once a task's 24-hour links have run out, deletes everything it stored (its videos and
posters, one per attempt, and its stored input images) and marks it purged; deletes expired uploaded files
(files/service.py); and deletes expired Idempotency-Keys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from reelgate.accounts import idempotency
from reelgate.files import service as files
from reelgate.storage.keys import attempt_poster_keys, attempt_video_keys, input_prefix, stored_key
from reelgate.tasks import repository
from reelgate.tasks.context import TasksResources

log = logging.getLogger(__name__)


# Tasks purged per transaction: a large backlog is worked through in steps, never one long transaction.
_BATCH = 200


async def sweep_expired_results(resources: TasksResources, *, now: float | None = None) -> int:
    """Purge every task finished before the cutoff; returns how many were purged."""
    cutoff = (now if now is not None else time.time()) - resources.settings.result_ttl_s
    purged = 0
    while True:
        async with resources.db.read() as session:
            expired = await repository.expired_unpurged(session, finished_before=cutoff, limit=_BATCH)
        for task in expired:
            keys = attempt_video_keys(task.task_id, task.attempts) + attempt_poster_keys(task.task_id, task.attempts)
            own_inputs = input_prefix(task.task_id)
            keys += [key for ref in task.image_refs if (key := stored_key(ref)) and key.startswith(own_inputs)]
            for key in keys:
                await asyncio.to_thread(resources.storage.delete, key)
            async with resources.db.transaction() as session:
                await repository.mark_purged(session, task.task_id)
        purged += len(expired)
        if len(expired) < _BATCH:
            break
    if purged:
        log.info("expired tasks purged from storage", extra={"count": purged})
    return purged


async def sweep_expired_idempotency_keys(resources: TasksResources) -> int:
    async with resources.db.transaction() as session:
        return await idempotency.delete_expired(session, now=time.time())


async def sweep_forever(resources: TasksResources, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await sweep_expired_results(resources)
            await files.sweep_expired_files(resources)
            await sweep_expired_idempotency_keys(resources)
        except Exception:
            log.exception("result sweep failed; will retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=resources.settings.sweep_interval_s)
