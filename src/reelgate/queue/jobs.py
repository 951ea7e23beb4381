"""Running one claimed task: fetch and decode its images, run its engine in a thread while a heartbeat
renews the lease and publishes progress, store the video, and finish with a fenced compare-and-set.

Nothing a user sends can crash the worker: user-caused problems end the task as `failed` with a business
code; unexpected errors are logged with their stack server-side, retried while attempts remain, then end as
`service_error` with the credits released.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from reelgate.backoff import Backoff
from reelgate.db.notify import notify
from reelgate.egress.client import EgressClient
from reelgate.engines.base import Engine, EngineResult, Job, JobCancelled, raise_if_cancelled
from reelgate.engines.relay.base import RelayEngine, RetryLater, UpstreamRecord
from reelgate.errors import TaskErrorCode, TaskFailure
from reelgate.media.framing import nearest_aspect_ratio
from reelgate.media.images import DecodedImage, ImageRejected, decode_image, load_image
from reelgate.media.video import VideoProbeError, write_poster
from reelgate.queue import TASK_EVENTS_CHANNEL, terminal
from reelgate.queue import repository as queue_repo
from reelgate.queue.context import QueueResources
from reelgate.queue.repository import Fence
from reelgate.queue.states import TaskStatus
from reelgate.storage.base import ObjectMissing, read_object
from reelgate.storage.keys import poster_key, stored_key, video_key

log = logging.getLogger(__name__)

# After a failed attempt (an error on our side): 2 s, then 10 s, then 30 s.
RETRY_BACKOFF = Backoff(first_s=2.0, factor=5.0, max_s=30.0)
_MIN_PROGRESS_FOR_ESTIMATE = 0.05


@dataclass
class ThreadRunContext:
    """The engine's view of its task; written from the engine thread, read by the heartbeat."""

    scratch_dir: Path
    fraction: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    # Set by relays, which learn the time left from their upstream instead of from a rate of progress.
    estimated_left_s: int | None = None

    def report_progress(self, fraction: float) -> None:
        self.fraction = min(1.0, max(self.fraction, fraction))

    def cancelled(self) -> bool:
        return self.stop.is_set()


class DbRelayContext:
    """A relay engine's view of its task (engines/relay/base.py RelayContext): progress and cancellation through
    the heartbeat's ThreadRunContext, the upstream record through the queue's fenced writes."""

    def __init__(self, resources: QueueResources, claimed: ClaimedTask, run: ThreadRunContext) -> None:
        self._resources = resources
        self._claimed = claimed
        self._run = run
        self.scratch_dir = run.scratch_dir
        self.egress: EgressClient = resources.egress
        self.created_at = 0.0
        self._record: UpstreamRecord | None = None

    async def load(self) -> None:
        async with self._resources.db.read() as session:
            self._record, self.created_at = await queue_repo.load_upstream(session, self._claimed.id)

    @property
    def upstream(self) -> UpstreamRecord | None:
        return self._record

    def report_progress(self, fraction: float, estimated_left_s: int | None = None) -> None:
        self._run.report_progress(fraction)
        self._run.estimated_left_s = estimated_left_s

    def cancelled(self) -> bool:
        return self._run.cancelled()

    async def cancelled_by_user(self) -> bool:
        async with self._resources.db.read() as session:
            return await queue_repo.was_cancelled(session, self._claimed.id)

    async def record_upstream(self, record: UpstreamRecord) -> None:
        async with self._resources.db.transaction() as session:
            alive = await queue_repo.record_upstream(
                session, self._claimed.id, self._claimed.fence, record, now=time.time()
            )
        if not alive:
            self._run.stop.set()
            raise JobCancelled
        self._record = record


@dataclass(frozen=True)
class ClaimedTask:
    id: str
    fence: Fence
    engine: str
    prompt: str
    image_urls: list[str]
    aspect_ratio: str | None
    duration_s: int
    seed: int
    max_attempts: int
    estimate_s: int


async def run_claimed_task(resources: QueueResources, claimed: ClaimedTask, engine: Engine) -> None:
    scratch = Path(tempfile.mkdtemp(prefix=f"{claimed.id}-", dir=resources.scratch_root))
    ctx = ThreadRunContext(scratch_dir=scratch)
    started = time.monotonic()
    outcome = "error"
    try:
        job = await _prepare_job(resources, claimed)
        heartbeat = asyncio.create_task(_heartbeat_loop(resources, claimed, ctx, started, job.aspect_ratio))
        try:
            if isinstance(engine, RelayEngine):
                # I/O bound: runs on this loop; its upstream record is written fenced by our lease.
                relay_ctx = DbRelayContext(resources, claimed, ctx)
                await relay_ctx.load()
                result = await engine.run_relay(job, relay_ctx, scratch / "output.mp4")
            else:
                result = await asyncio.to_thread(engine.run, job, ctx, scratch / "output.mp4")
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        raise_if_cancelled(ctx)
        await _store_and_complete(resources, claimed, result)
        outcome = "completed"
    except JobCancelled:
        outcome = "cancelled"
        log.info("stopped: task cancelled or lease lost")
    except RetryLater as later:
        outcome = "deferred"
        await _defer(resources, claimed, later)
    except TaskFailure as failure:
        outcome = "failed"
        await _fail(resources, claimed, failure.code, failure.message)
    except Exception:
        log.exception("engine run failed unexpectedly")
        await _retry_or_fail(resources, claimed)
    finally:
        resources.metrics.engine_seconds.labels(claimed.engine, outcome).observe(time.monotonic() - started)
        shutil.rmtree(scratch, ignore_errors=True)


async def _prepare_job(resources: QueueResources, claimed: ClaimedTask) -> Job:
    images = []
    for index, ref in enumerate(claimed.image_urls):
        try:
            decoded = await _load_input(resources, ref, param=f"image_urls[{index}]")
        except ImageRejected as rejected:
            raise TaskFailure(TaskErrorCode.IMAGE_PROCESSING_ERROR, f"{rejected.param}: {rejected.message}") from None
        images.append(decoded.pixels)
    first = images[0]
    aspect_ratio = claimed.aspect_ratio or nearest_aspect_ratio(first.shape[1], first.shape[0])
    return Job(
        task_id=claimed.id,
        images=images,
        prompt=claimed.prompt,
        aspect_ratio=aspect_ratio,
        duration_s=claimed.duration_s,
        seed=claimed.seed,
    )


async def _load_input(resources: QueueResources, ref: str, *, param: str) -> DecodedImage:
    """A stored input is read from our storage, never through the egress client; a URL is fetched."""
    settings = resources.settings
    key = stored_key(ref)
    if key is None:
        return await load_image(
            ref,
            param=param,
            client=resources.egress,
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            timeout_s=settings.image_fetch_timeout_s,
        )
    try:
        data = await asyncio.to_thread(read_object, resources.storage, key)
    except ObjectMissing:
        raise ImageRejected("the stored image is gone (expired or deleted)", param=param) from None
    return await asyncio.to_thread(decode_image, data, max_pixels=settings.max_image_pixels, param=param)


def _estimate_left_s(ctx: ThreadRunContext, started: float, fallback_s: int) -> int:
    if ctx.estimated_left_s is not None:
        return max(1, ctx.estimated_left_s)
    elapsed = time.monotonic() - started
    if ctx.fraction < _MIN_PROGRESS_FOR_ESTIMATE:
        return max(1, round(fallback_s - elapsed))
    return max(1, round(elapsed * (1 - ctx.fraction) / ctx.fraction))


async def _heartbeat_loop(
    resources: QueueResources, claimed: ClaimedTask, ctx: ThreadRunContext, started: float, aspect_ratio: str
) -> None:
    settings = resources.settings
    interval_s = min(settings.lease_s / 3, 1.0)
    # The first beat also records the aspect ratio the job resolved (it may have come from the image).
    extra: dict[str, object] | None = {"aspect_ratio": aspect_ratio}
    published = 0  # the claim wrote progress 0
    while True:
        try:
            # 99 at most: 100 means completed, and only the completing write may say so.
            progress = min(99, int(ctx.fraction * 100))
            async with resources.db.transaction() as session:
                alive = await queue_repo.heartbeat(
                    session,
                    claimed.id,
                    claimed.fence,
                    lease_s=settings.lease_s,
                    progress=progress,
                    estimated_time_s=_estimate_left_s(ctx, started, claimed.estimate_s),
                    now=time.time(),
                    extra=extra,
                )
                if alive and progress != published:
                    # Only a beat that moved the progress wakes the event streams: most beats just renew.
                    await notify(session, TASK_EVENTS_CHANNEL, claimed.id)
            if alive:
                published = progress
            extra = None
            if not alive:
                ctx.stop.set()
                return
        except Exception:
            # A database hiccup must not kill the job; the lease has slack for a missed beat or two.
            log.warning("heartbeat failed; will retry", exc_info=True)
        await asyncio.sleep(interval_s)


async def _store_poster(resources: QueueResources, claimed: ClaimedTask, result: EngineResult) -> str | None:
    """The poster of the finished video, stored beside it; None (and the task still completes) if it cannot be
    made: a poster is a convenience, the video is the result."""
    key = poster_key(claimed.id, claimed.fence.attempt)
    path = result.video_path.with_name("poster.jpg")
    middle_s = result.frames / result.fps / 2 if result.fps > 0 else 0.0
    try:
        await asyncio.to_thread(write_poster, result.video_path, path, at_s=middle_s)
        await asyncio.to_thread(resources.storage.put_file, key, path)
    except (VideoProbeError, OSError):
        log.warning("no poster for this video", exc_info=True)
        return None
    return key


async def _store_and_complete(resources: QueueResources, claimed: ClaimedTask, result: EngineResult) -> None:
    key = video_key(claimed.id, claimed.fence.attempt)
    poster = await _store_poster(resources, claimed, result)
    await asyncio.to_thread(resources.storage.put_file, key, result.video_path)
    info: dict[str, object] = {
        "width": result.width,
        "height": result.height,
        "frames": result.frames,
        "fps": result.fps,
        **result.info,
    }
    async with resources.db.transaction() as session:
        won = await terminal.complete(
            session,
            resources.task_ended,
            claimed.id,
            fence=claimed.fence,
            result_key=key,
            result_info=info,
            poster_key=poster,
        )
    if won is None:
        for stored in (key, poster):
            if stored is not None:
                await asyncio.to_thread(resources.storage.delete, stored)
        log.warning("finished but the lease was lost; result discarded", extra={"attempt": claimed.fence.attempt})
        return
    await terminal.discard_losing_videos(resources.storage, won)
    resources.metrics.tasks_finished.labels(claimed.engine, "completed").inc()
    log.info("completed", extra={"attempt": claimed.fence.attempt, "video_key": key})


async def _fail(resources: QueueResources, claimed: ClaimedTask, code: TaskErrorCode, message: str) -> None:
    async with resources.db.transaction() as session:
        won = await terminal.fail(
            session,
            resources.task_ended,
            claimed.id,
            code=code,
            message=message,
            from_statuses=(TaskStatus.PROCESSING,),
            fence=claimed.fence,
        )
    if won is not None:
        await terminal.discard_losing_videos(resources.storage, won)
        resources.metrics.tasks_finished.labels(claimed.engine, "failed").inc()
        log.info("failed", extra={"error_code": str(code), "error_message": message})


async def _defer(resources: QueueResources, claimed: ClaimedTask, later: RetryLater) -> None:
    now = time.time()
    async with resources.db.transaction() as session:
        deferred = await queue_repo.defer(session, claimed.id, claimed.fence, available_at=now + later.delay_s, now=now)
        if deferred:
            await notify(session, TASK_EVENTS_CHANNEL, claimed.id)
    if deferred:
        log.warning("upstream busy; task back to pending", extra={"reason": later.reason, "delay_s": later.delay_s})


async def _retry_or_fail(resources: QueueResources, claimed: ClaimedTask) -> None:
    attempt = claimed.fence.attempt
    if attempt >= claimed.max_attempts:
        await _fail(
            resources,
            claimed,
            TaskErrorCode.SERVICE_ERROR,
            f"Generation failed after {attempt} attempts; credits were released",
        )
        return
    backoff_s = RETRY_BACKOFF.delay_s(attempt)
    now = time.time()
    async with resources.db.transaction() as session:
        requeued = await queue_repo.retry_later(
            session, claimed.id, claimed.fence, available_at=now + backoff_s, now=now
        )
        if requeued:
            await notify(session, TASK_EVENTS_CHANNEL, claimed.id)
    if requeued:
        log.warning("attempt failed; retrying later", extra={"attempt": attempt, "backoff_s": backoff_s})
