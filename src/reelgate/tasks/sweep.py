"""The expiry sweep: once a task's 24-hour links have run out, deletes everything it stored (its videos and
posters, one per attempt, and its stored input images) and marks it purged; deletes the inputs of creates that
never wrote their row; deletes expired uploaded files (files/service.py); and deletes expired Idempotency-Keys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from reelgate.accounts import idempotency
from reelgate.files import service as files
from reelgate.storage.base import Storage
from reelgate.storage.keys import INPUTS_PREFIX, attempt_poster_keys, attempt_video_keys, input_prefix, stored_key
from reelgate.tasks import repository
from reelgate.tasks.context import TasksResources
from reelgate.tasks.service import TASK_ID_PREFIX, task_id_second

log = logging.getLogger(__name__)


# Tasks purged per transaction: a large backlog is worked through in steps, never one long transaction.
_BATCH = 200
# A create stores the images sent inline before its row exists (tasks/service.py) and deletes them if the row
# is never written, unless its process dies in between (SIGKILL, power). Such inputs belong to no task, so no
# purge would ever find them: a task id with inputs and no row, drawn longer ago than any create lasts, is
# one of those.
ORPHAN_INPUT_GRACE_S = 3600.0
_TASK_INPUTS = f"{INPUTS_PREFIX}{TASK_ID_PREFIX}"


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


@dataclass(frozen=True)
class InputsSwept:
    deleted: int
    # Where the next pass starts listing: every task id drawn before the cutoff has been looked at.
    next_after: str


async def sweep_orphan_inputs(resources: TasksResources, *, now: float | None = None, after: str = "") -> InputsSwept:
    """Delete the stored inputs of task ids that have no row, among those drawn before the grace cutoff and
    listed after `after` (the previous pass's `next_after`; "" for everything)."""
    cutoff = int((now if now is not None else time.time()) - ORPHAN_INPUT_GRACE_S)
    candidates = await asyncio.to_thread(_inputs_drawn_before, resources.storage, cutoff, after)
    deleted = 0
    if candidates:
        async with resources.db.read() as session:
            existing = await repository.existing_ids(session, list(candidates))
        for task_id, keys in candidates.items():
            if task_id not in existing:
                for key in keys:
                    await asyncio.to_thread(resources.storage.delete, key)
                deleted += len(keys)
    if deleted:
        log.warning("inputs of creates that never wrote their task deleted", extra={"count": deleted})
    # Keys sort by task id, and task ids by the second they were drawn (ten digits until the year 2286).
    return InputsSwept(deleted, f"{_TASK_INPUTS}{cutoff}")


def _inputs_drawn_before(storage: Storage, cutoff: int, after: str) -> dict[str, list[str]]:
    """Stored input keys by task id, for task ids drawn before `cutoff`, in the listing after `after`."""
    found: dict[str, list[str]] = {}
    for key in storage.list_keys(_TASK_INPUTS, start_after=after):
        task_id = key[len(INPUTS_PREFIX) :].split("/", 1)[0]
        second = task_id_second(task_id)
        if second is None:
            continue
        if second >= cutoff:
            break  # the rest were drawn later still
        found.setdefault(task_id, []).append(key)
    return found


async def sweep_expired_idempotency_keys(resources: TasksResources) -> int:
    async with resources.db.transaction() as session:
        return await idempotency.delete_expired(session, now=time.time())


async def sweep_forever(resources: TasksResources, stop: asyncio.Event) -> None:
    inputs_after = ""  # the first pass lists every stored input; later ones only what is new since
    while not stop.is_set():
        try:
            await sweep_expired_results(resources)
            inputs_after = (await sweep_orphan_inputs(resources, after=inputs_after)).next_after
            await files.sweep_expired_files(resources)
            await sweep_expired_idempotency_keys(resources)
        except Exception:
            log.exception("result sweep failed; will retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=resources.settings.sweep_interval_s)
