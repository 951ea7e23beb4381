"""Running one claimed task: fetch and decode its images, run its engine in a thread while a heartbeat
renews the lease and publishes progress, store the video, and finish with a fenced compare-and-set. Every
write goes through the task's `Lease` (queue/lease.py), so database and remote workers run this same code.

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
from reelgate.egress.client import EgressClient
from reelgate.engines.base import Engine, EngineResult, Job, JobCancelled, raise_if_cancelled
from reelgate.engines.relay.base import RelayEngine, RetryLater, UpstreamRecord
from reelgate.errors import TaskErrorCode, TaskFailure
from reelgate.media.framing import nearest_aspect_ratio
from reelgate.media.images import DecodedImage, ImageRejected, decode_image, load_image
from reelgate.media.video import VideoProbeError, write_poster
from reelgate.queue.context import JobResources
from reelgate.queue.lease import Lease
from reelgate.storage.base import ObjectMissing
from reelgate.storage.keys import stored_key

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


class LeaseRelayContext:
    """A relay engine's view of its task (engines/relay/base.py RelayContext): progress and cancellation through
    the heartbeat's ThreadRunContext, the upstream record through the lease's fenced writes."""

    def __init__(self, egress: EgressClient, lease: Lease, run: ThreadRunContext) -> None:
        self._lease = lease
        self._run = run
        self.scratch_dir = run.scratch_dir
        self.egress = egress
        self.created_at = lease.claimed.created_at
        self._record: UpstreamRecord | None = lease.claimed.upstream

    @property
    def upstream(self) -> UpstreamRecord | None:
        return self._record

    def report_progress(self, fraction: float, estimated_left_s: int | None = None) -> None:
        self._run.report_progress(fraction)
        self._run.estimated_left_s = estimated_left_s

    def cancelled(self) -> bool:
        return self._run.cancelled()

    async def cancelled_by_user(self) -> bool:
        return await self._lease.was_cancelled()

    async def record_upstream(self, record: UpstreamRecord) -> None:
        if not await self._lease.record_upstream(record):
            self._run.stop.set()
            raise JobCancelled
        self._record = record


async def run_claimed_task(resources: JobResources, lease: Lease, engine: Engine) -> None:
    claimed = lease.claimed
    scratch = Path(tempfile.mkdtemp(prefix=f"{claimed.id}-", dir=resources.scratch_root))
    ctx = ThreadRunContext(scratch_dir=scratch)
    started = time.monotonic()
    outcome = "error"
    try:
        job = await _prepare_job(resources, lease)
        heartbeat = asyncio.create_task(_heartbeat_loop(resources, lease, ctx, started, job.aspect_ratio))
        try:
            if isinstance(engine, RelayEngine):
                # I/O bound: runs on this loop; its upstream record is written fenced by our lease.
                relay_ctx = LeaseRelayContext(resources.egress, lease, ctx)
                result = await engine.run_relay(job, relay_ctx, scratch / "output.mp4")
            else:
                result = await asyncio.to_thread(engine.run, job, ctx, scratch / "output.mp4")
            raise_if_cancelled(ctx)
            # Beating on through the poster, the upload and the finish: a long video on a slow link takes
            # longer than a lease, and a lease that ran out there threw the finished work away.
            outcome = await _complete(resources, lease, result)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
    except JobCancelled:
        outcome = "cancelled"
        log.info("stopped: task cancelled or lease lost")
    except RetryLater as later:
        outcome = "deferred"
        if await lease.retry_later(later.delay_s, spend_attempt=False):
            log.warning("upstream busy; task back to pending", extra={"reason": later.reason, "delay_s": later.delay_s})
    except TaskFailure as failure:
        outcome = "failed"
        await _fail(resources, lease, failure.code, failure.message)
    except Exception:
        log.exception("engine run failed unexpectedly")
        await _retry_or_fail(resources, lease)
    finally:
        resources.metrics.engine_seconds.labels(claimed.engine, outcome).observe(time.monotonic() - started)
        shutil.rmtree(scratch, ignore_errors=True)


async def _prepare_job(resources: JobResources, lease: Lease) -> Job:
    claimed = lease.claimed
    images = []
    for index, ref in enumerate(claimed.image_urls):
        try:
            decoded = await _load_input(resources, lease, index, ref)
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


async def _load_input(resources: JobResources, lease: Lease, index: int, ref: str) -> DecodedImage:
    """A stored input is read through the lease (our storage), never through the egress client; a URL is
    fetched through it."""
    settings = resources.settings
    param = f"image_urls[{index}]"
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
        data = await lease.read_stored_input(index, key)
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
    resources: JobResources, lease: Lease, ctx: ThreadRunContext, started: float, aspect_ratio: str
) -> None:
    interval_s = min(resources.settings.lease_s / 3, 1.0)
    # The first beat also records the aspect ratio the job resolved (it may have come from the image).
    extra: dict[str, object] | None = {"aspect_ratio": aspect_ratio}
    while True:
        try:
            alive = await lease.heartbeat(
                # 99 at most: 100 means completed, and only the completing write may say so.
                progress=min(99, int(ctx.fraction * 100)),
                estimated_time_s=_estimate_left_s(ctx, started, lease.claimed.estimate_s),
                extra=extra,
            )
            extra = None
            if not alive:
                ctx.stop.set()
                return
        except Exception:
            # A database or network hiccup must not kill the job; the lease has slack for a missed beat or two.
            log.warning("heartbeat failed; will retry", exc_info=True)
        await asyncio.sleep(interval_s)


async def _make_poster(result: EngineResult) -> Path | None:
    """The poster of the finished video (its middle frame); None (and the task still completes) if it cannot be
    made: a poster is a convenience, the video is the result."""
    path = result.video_path.with_name("poster.jpg")
    middle_s = result.frames / result.fps / 2 if result.fps > 0 else 0.0
    try:
        await asyncio.to_thread(write_poster, result.video_path, path, at_s=middle_s)
    except (VideoProbeError, OSError):
        log.warning("no poster for this video", exc_info=True)
        return None
    return path


async def _complete(resources: JobResources, lease: Lease, result: EngineResult) -> str:
    info: dict[str, object] = {
        "width": result.width,
        "height": result.height,
        "frames": result.frames,
        "fps": result.fps,
        **result.info,
    }
    attempt = lease.claimed.fence.attempt
    poster = await _make_poster(result)
    if not await lease.complete(result.video_path, poster, info):
        log.warning("finished but the lease was lost; result discarded", extra={"attempt": attempt})
        return "cancelled"
    resources.metrics.tasks_finished.labels(lease.claimed.engine, "completed").inc()
    log.info("completed", extra={"attempt": attempt})
    return "completed"


async def _fail(resources: JobResources, lease: Lease, code: TaskErrorCode, message: str) -> None:
    if await lease.fail(code, message):
        resources.metrics.tasks_finished.labels(lease.claimed.engine, "failed").inc()
        log.info("failed", extra={"error_code": str(code), "error_message": message})


async def _retry_or_fail(resources: JobResources, lease: Lease) -> None:
    attempt = lease.claimed.fence.attempt
    if attempt >= lease.claimed.max_attempts:
        await _fail(
            resources,
            lease,
            TaskErrorCode.SERVICE_ERROR,
            f"Generation failed after {attempt} attempts; credits were released",
        )
        return
    backoff_s = RETRY_BACKOFF.delay_s(attempt)
    if await lease.retry_later(backoff_s, spend_attempt=True):
        log.warning("attempt failed; retrying later", extra={"attempt": attempt, "backoff_s": backoff_s})
