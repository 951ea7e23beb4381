"""The expiry sweep: deletes result videos whose 24-hour links have run out (and forgets them in the
database), and expired Idempotency-Keys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from reelgate.accounts import idempotency
from reelgate.tasks import repository
from reelgate.tasks.context import TasksResources

log = logging.getLogger(__name__)


async def sweep_expired_results(resources: TasksResources, *, now: float | None = None) -> int:
    cutoff = (now if now is not None else time.time()) - resources.settings.result_ttl_s
    async with resources.db.read() as session:
        expired = await repository.expired_result_keys(session, finished_before=cutoff)
    for task_id, key in expired:
        await asyncio.to_thread(resources.storage.delete, key)
        async with resources.db.transaction() as session:
            await repository.forget_result(session, task_id)
    if expired:
        log.info("expired results deleted", extra={"count": len(expired)})
    return len(expired)


async def sweep_expired_idempotency_keys(resources: TasksResources) -> int:
    async with resources.db.transaction() as session:
        return await idempotency.delete_expired(session, now=time.time())


async def sweep_forever(resources: TasksResources, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await sweep_expired_results(resources)
            await sweep_expired_idempotency_keys(resources)
        except Exception:
            log.exception("result sweep failed; will retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=resources.settings.sweep_interval_s)
