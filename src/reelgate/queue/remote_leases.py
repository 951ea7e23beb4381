"""The API's side of remote workers: the same claims, leases and fenced writes a database worker makes,
made on behalf of a worker that holds only a worker token and the API's URL.

Every call about a task names the lease it is made under (task, attempt, lease owner) and acts only while
that lease holds, exactly like a database worker's writes: a frozen or partitioned worker whose lease ran out
can change nothing, upload nothing, finish nothing. A lease owner also has to be a worker registered with
the calling token, so one token can never act under another's leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from reelgate.db.models import Worker
from reelgate.db.notify import notify
from reelgate.engines.base import Availability
from reelgate.engines.relay.base import UpstreamRecord
from reelgate.errors import ApiError, TaskErrorCode
from reelgate.queue import TASK_EVENTS_CHANNEL, TASKS_CHANNEL, registry, repository, terminal
from reelgate.queue.context import QueueResources
from reelgate.queue.lease import claimed_task
from reelgate.queue.remote_schemas import (
    BeatAnswer,
    ClaimAnswer,
    ClaimedView,
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    Fenced,
    JobView,
    LeaseView,
    Outcome,
    Registered,
    RegisterRequest,
    RetryRequest,
    StoredObject,
    TaskBeat,
    UploadRequest,
    UploadTarget,
    UpstreamRequest,
    UpstreamView,
    WorkerBeat,
)
from reelgate.queue.repository import Fence
from reelgate.queue.states import TaskStatus
from reelgate.storage.keys import poster_key, stored_key, video_key

# A remote worker's links to its inputs and its upload outlive any lease renewal gap by far, but not the job.
_LINK_S = 3600
_POLL_DURING_WAIT_S = 1.0
LEASE_LOST = "The lease on this task is gone (it ran out, or the task was cancelled or taken over); stop"


@dataclass(frozen=True)
class WorkerPass:
    """A verified worker token: who it is, and which engines its workers may claim (None = all)."""

    token_id: str
    engines: frozenset[str] | None

    def allows(self, engine: str) -> bool:
        return self.engines is None or engine in self.engines


def _heartbeat_s(resources: QueueResources) -> float:
    return min(resources.settings.worker_ttl_s / 3, 5.0)


async def register(resources: QueueResources, worker: WorkerPass, request: RegisterRequest) -> Registered:
    refused = sorted(name for name in request.engines if not worker.allows(name))
    if refused:
        raise ApiError(403, f"This worker token may not run the engine(s) {', '.join(refused)}", param="engines")
    worker_id = f"remote:{request.host[:100]}:{request.pid}:{secrets.token_hex(4)}"
    advert = registry.Advert(
        id=worker_id,
        kind="remote",
        engines={name: Availability(state.available, state.reason) for name, state in request.engines.items()},
        concurrency=request.concurrency,
        running=0,
        token_id=worker.token_id,
        host=request.host,
        pid=request.pid,
        version=request.version,
    )
    async with resources.db.transaction() as session:
        await registry.register(session, advert, now=time.time())
    return Registered(worker_id=worker_id, heartbeat_s=_heartbeat_s(resources), lease_s=resources.settings.lease_s)


async def _own_worker(resources: QueueResources, worker: WorkerPass, worker_id: str) -> Worker:
    async with resources.db.read() as session:
        row = await registry.get_worker(session, worker_id)
    if row is None or row.token_id != worker.token_id:
        raise ApiError(404, f"No worker {worker_id!r} is registered with this token; register again", param="worker_id")
    return row


async def heartbeat_worker(
    resources: QueueResources, worker: WorkerPass, worker_id: str, beat: WorkerBeat
) -> Registered:
    row = await _own_worker(resources, worker, worker_id)
    advert = registry.Advert(
        id=worker_id,
        kind="remote",
        engines={
            name: Availability(state.available and worker.allows(name), state.reason)
            for name, state in beat.engines.items()
        },
        concurrency=row.concurrency,
        running=beat.running,
        token_id=worker.token_id,
    )
    async with resources.db.transaction() as session:
        await registry.heartbeat(session, advert, now=time.time(), ttl_s=resources.settings.worker_ttl_s)
    return Registered(worker_id=worker_id, heartbeat_s=_heartbeat_s(resources), lease_s=resources.settings.lease_s)


async def deregister(resources: QueueResources, worker: WorkerPass, worker_id: str) -> None:
    await _own_worker(resources, worker, worker_id)
    async with resources.db.transaction() as session:
        await registry.deregister(session, worker_id)


async def claim(resources: QueueResources, worker: WorkerPass, request: ClaimRequest) -> ClaimAnswer:
    """Claim up to `slots` tasks of the worker's engines, waiting (long poll) up to `wait_s` for one."""
    await _own_worker(resources, worker, request.worker_id)
    engines = [name for name in request.engines if worker.allows(name)]
    if not engines:
        raise ApiError(403, "This worker token may not claim tasks of any of these engines", param="engines")
    deadline = time.monotonic() + request.wait_s
    wake = asyncio.Event()
    unsubscribe = resources.db.wakeups.subscribe(TASKS_CHANNEL, wake)
    try:
        while True:
            wake.clear()
            claimed = await _claim_now(resources, request.worker_id, engines, request.slots)
            left = deadline - time.monotonic()
            if claimed or left <= 0:
                return ClaimAnswer(data=claimed)
            # Woken by a create in this process, else a short poll catches creates on other replicas.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=min(left, _POLL_DURING_WAIT_S))
    finally:
        unsubscribe()


async def _claim_now(resources: QueueResources, owner: str, engines: list[str], slots: int) -> list[ClaimedView]:
    settings = resources.settings
    answers: list[ClaimedView] = []
    for _ in range(slots):
        async with resources.db.transaction() as session:
            task = await repository.claim(
                session, engines=engines, owner=owner, lease_s=settings.lease_s, now=time.time()
            )
            if task is not None:
                await notify(session, TASK_EVENTS_CHANNEL, task.id)
        if task is None:
            break
        job = claimed_task(task, Fence(task.attempt, owner))
        expires_at = int(time.time()) + _LINK_S
        links = {
            index: await asyncio.to_thread(resources.storage.link, key, expires_at=expires_at)
            for index, ref in enumerate(job.image_urls)
            if (key := stored_key(ref)) is not None
        }
        upstream = job.upstream
        answers.append(
            ClaimedView(
                lease=LeaseView(
                    task_id=task.id,
                    attempt=task.attempt,
                    lease_owner=owner,
                    lease_expires_at=float(task.lease_expires_at or 0.0),
                ),
                job=JobView(
                    engine=job.engine,
                    prompt=job.prompt,
                    aspect_ratio=job.aspect_ratio,
                    duration_s=job.duration_s,
                    seed=job.seed,
                    max_attempts=job.max_attempts,
                    estimate_s=job.estimate_s,
                    created_at=job.created_at,
                    image_urls=job.image_urls,
                    input_links=links,
                    upstream=None
                    if upstream is None
                    else UpstreamView(
                        provider=upstream.provider,
                        task_id=upstream.task_id,
                        state=upstream.state,
                        submitted_at=upstream.submitted_at,
                    ),
                ),
            )
        )
    return answers


# --- calls under a lease ------------------------------------------------------------------------------------


async def _fence(resources: QueueResources, worker: WorkerPass, call: Fenced) -> Fence:
    await _own_worker(resources, worker, call.lease_owner)
    return Fence(call.attempt, call.lease_owner)


async def _require_lease(resources: QueueResources, task_id: str, fence: Fence) -> None:
    async with resources.db.read() as session:
        held = await repository.holds_lease(session, task_id, fence, now=time.time())
    if not held:
        raise await _lease_lost(resources, task_id, fence)


async def _lease_lost(resources: QueueResources, task_id: str, fence: Fence) -> ApiError:
    """The refusal of a call made under a lease that is gone, once what that attempt stored is deleted.

    A worker frozen or partitioned while it held an upload link can still use it after its lease ran out (a
    presigned PUT goes straight to the bucket; nothing of ours can refuse it), so its late poster or video may
    land after the winner deleted the losing attempts' objects. Its next call (the next upload, or its finish)
    is refused here, and that is the moment to delete them: the attempt's keys are its own (one claim per
    attempt), minus whatever the task keeps as its result (the attempt may be the one that won, its answer
    lost on the way back).

    Only an attempt that is over: an earlier one, or this one once its lease is this caller's or nobody's. A
    call naming an attempt that another worker holds now (a token's worker guessing at someone else's task)
    deletes nothing."""
    async with resources.db.read() as session:
        result = await repository.stored_result(session, task_id)
    if result is not None and (
        result.attempt > fence.attempt
        or (result.attempt == fence.attempt and result.lease_owner in (None, fence.owner))
    ):
        for key in (video_key(task_id, fence.attempt), poster_key(task_id, fence.attempt)):
            if key not in result.keys:
                await asyncio.to_thread(resources.storage.delete, key)
    return ApiError(409, LEASE_LOST, param="lease_owner")


async def heartbeat_task(resources: QueueResources, worker: WorkerPass, task_id: str, beat: TaskBeat) -> BeatAnswer:
    fence = await _fence(resources, worker, beat)
    extra = {"aspect_ratio": beat.aspect_ratio} if beat.aspect_ratio else None
    async with resources.db.transaction() as session:
        alive = await repository.heartbeat(
            session,
            task_id,
            fence,
            lease_s=resources.settings.lease_s,
            progress=beat.progress,
            estimated_time_s=beat.estimated_time_s,
            now=time.time(),
            extra=extra,
        )
        cancelled = not alive and await repository.was_cancelled(session, task_id)
        if alive:
            await notify(session, TASK_EVENTS_CHANNEL, task_id)
    return BeatAnswer(alive=alive, cancelled=cancelled)


async def record_upstream(
    resources: QueueResources, worker: WorkerPass, task_id: str, request: UpstreamRequest
) -> BeatAnswer:
    fence = await _fence(resources, worker, request)
    up = request.upstream
    record = UpstreamRecord(up.provider, up.task_id, up.state, up.submitted_at)
    async with resources.db.transaction() as session:
        alive = await repository.record_upstream(session, task_id, fence, record, now=time.time())
    return BeatAnswer(alive=alive)


_CONTENT_TYPES: dict[StoredObject, str] = {"video": "video/mp4", "poster": "image/jpeg"}


def _object_key(task_id: str, attempt: int, stored: StoredObject) -> str:
    return video_key(task_id, attempt) if stored == "video" else poster_key(task_id, attempt)


async def upload_target(
    resources: QueueResources, worker: WorkerPass, task_id: str, call: UploadRequest, *, api_url: str
) -> UploadTarget:
    """Where this attempt's video (or poster) goes: straight to the bucket (a presigned PUT) where the storage
    allows it, else to the API. Only while the lease holds, so a late worker never gets to upload."""
    fence = await _fence(resources, worker, call)
    await _require_lease(resources, task_id, fence)
    expires_at = int(time.time()) + _LINK_S
    key = _object_key(task_id, fence.attempt, call.object)
    headers = {"Content-Type": _CONTENT_TYPES[call.object]}
    presigned = await asyncio.to_thread(resources.storage.upload_link, key, expires_at=expires_at)
    if presigned is not None:
        return UploadTarget(url=presigned, headers=headers, needs_token=False, expires_at=expires_at)
    query = urlencode({"attempt": fence.attempt, "lease_owner": fence.owner})
    url = f"{api_url.rstrip('/')}/worker/v1/tasks/{task_id}/upload/{call.object}?{query}"
    return UploadTarget(url=url, headers=headers, needs_token=True, expires_at=expires_at)


async def receive_upload(
    resources: QueueResources,
    worker: WorkerPass,
    task_id: str,
    stored: StoredObject,
    call: Fenced,
    body: AsyncIterator[bytes],
) -> None:
    """A video or poster uploaded through the API (storage without presigned uploads): spooled to a file,
    then stored under the attempt's key, while the lease holds."""
    fence = await _fence(resources, worker, call)
    await _require_lease(resources, task_id, fence)
    descriptor, name = tempfile.mkstemp(dir=resources.scratch_root, suffix=".mp4")
    spooled = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as spool:
            async for chunk in body:
                await asyncio.to_thread(spool.write, chunk)
        await asyncio.to_thread(resources.storage.put_file, _object_key(task_id, fence.attempt, stored), spooled)
    finally:
        await asyncio.to_thread(spooled.unlink, missing_ok=True)
    # The lease may have run out during a long upload: refuse it now rather than leave it to a finish that may
    # never come.
    await _require_lease(resources, task_id, fence)


async def complete(resources: QueueResources, worker: WorkerPass, task_id: str, request: CompleteRequest) -> Outcome:
    fence = await _fence(resources, worker, request)
    key = video_key(task_id, fence.attempt)
    storage = resources.storage
    async with resources.db.read() as session:
        result = await repository.stored_result(session, task_id)
    if result is not None and result.status == TaskStatus.COMPLETED and result.result_key == key:
        # This attempt won already: a retry of a finish whose answer was lost (a replica killed after the
        # commit). Its video is the task's result: answer as the first time, and delete nothing.
        return Outcome(won=True)
    # The lease first: a late finish is refused (and its late upload deleted) whatever it uploaded.
    await _require_lease(resources, task_id, fence)
    if not await asyncio.to_thread(storage.exists, key):
        raise ApiError(400, "No video was uploaded for this attempt: upload it first", param="attempt")
    poster = poster_key(task_id, fence.attempt) if request.poster else None
    if poster is not None and not await asyncio.to_thread(storage.exists, poster):
        raise ApiError(400, "No poster was uploaded for this attempt", param="poster")
    async with resources.db.transaction() as session:
        won = await terminal.complete(
            session,
            resources.task_ended,
            task_id,
            fence=fence,
            result_key=key,
            result_info=dict(request.info),
            poster_key=poster,
        )
    if won is None:
        raise await _lease_lost(resources, task_id, fence)
    await terminal.discard_losing_videos(storage, won)
    return Outcome(won=True)


async def fail(resources: QueueResources, worker: WorkerPass, task_id: str, request: FailRequest) -> Outcome:
    fence = await _fence(resources, worker, request)
    try:
        code = TaskErrorCode(request.code)
    except ValueError:
        raise ApiError(400, f"Unknown task error code {request.code!r}", param="code") from None
    async with resources.db.transaction() as session:
        won = await terminal.fail(
            session,
            resources.task_ended,
            task_id,
            code=code,
            message=request.message,
            from_statuses=(TaskStatus.PROCESSING,),
            fence=fence,
        )
    if won is None:
        raise ApiError(409, LEASE_LOST, param="lease_owner")
    await terminal.discard_losing_videos(resources.storage, won)
    return Outcome(won=True)


async def retry(resources: QueueResources, worker: WorkerPass, task_id: str, request: RetryRequest) -> Outcome:
    fence = await _fence(resources, worker, request)
    now = time.time()
    write = repository.retry_later if request.spend_attempt else repository.defer
    async with resources.db.transaction() as session:
        requeued = await write(session, task_id, fence, available_at=now + request.delay_s, now=now)
        if requeued:
            await notify(session, TASK_EVENTS_CHANNEL, task_id)
    if not requeued:
        raise ApiError(409, LEASE_LOST, param="lease_owner")
    return Outcome(won=True)
