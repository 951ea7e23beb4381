"""What every relay shares: the async engine protocol the job runner detects, the durable upstream record,
the context a relay talks back through, and the steps every relay takes (poll waits, copying the result).

A relay is I/O bound, so it runs on the worker's event loop (`run_relay`) instead of a thread. It still
satisfies the synchronous `Engine` protocol: `run` drives the same code in a private event loop with an
in-memory record, which is what `reelgate generate --engine kling` uses (no database, no durability).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from reelgate.backoff import Backoff
from reelgate.config import Settings
from reelgate.egress.client import EgressClient
from reelgate.egress.errors import EgressError, TooLargeError
from reelgate.engines.base import Availability, EngineResult, Job, RunContext, raise_if_cancelled
from reelgate.engines.relay.health import RelayRuntime, RouteHealth
from reelgate.errors import TaskErrorCode, TaskFailure
from reelgate.media.video import VideoProbeError, probe_video

log = logging.getLogger(__name__)


class UpstreamState(StrEnum):
    # A submit is about to be sent or was sent without an answer: the outcome is unknown until resolved.
    SUBMITTING = "submitting"
    # Accepted and waiting upstream (Kling `submitted`, fal `IN_QUEUE`).
    QUEUED = "queued"
    # Being generated (Kling `processing`, fal `IN_PROGRESS`).
    RUNNING = "running"
    # Finished upstream; the result is being copied into our storage.
    DONE = "done"


def upstream_cancellable(provider: str | None, state: str | None) -> bool:
    """Whether cancelling our task can still stop the upstream's work (and its bill), for `can_cancel`.

    Nothing sent yet: yes. Kling has no cancel for video tasks, so once a submit may have left: no. fal's
    queue cancels a request "that has not started processing" (fal docs, Queue endpoints), so: while IN_QUEUE.
    """
    if provider is None or state is None:
        return True
    return provider == "fal" and state == UpstreamState.QUEUED


@dataclass(frozen=True)
class UpstreamRecord:
    """The relay columns of a task row (db/models.py Task.upstream_*)."""

    provider: str
    task_id: str | None
    state: str | None
    submitted_at: float | None


class RetryLater(Exception):
    """The upstream is busy (rate or concurrency limit): put the task back to pending for `delay_s`, without
    spending one of its attempts."""

    def __init__(self, delay_s: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s
        self.reason = reason


class RelayContext(Protocol):
    """A relay's view of its task. Writes are fenced by the worker's lease: `record_upstream` raises
    `JobCancelled` when the lease is gone, so a stale worker can never record anything."""

    scratch_dir: Path
    egress: EgressClient
    # When the task was created (for the give-up time of an upstream that stays busy).
    created_at: float

    @property
    def upstream(self) -> UpstreamRecord | None:
        """The record as last written (loaded at claim time, then as recorded by this run)."""
        ...

    def report_progress(self, fraction: float, estimated_left_s: int | None = None) -> None: ...

    def cancelled(self) -> bool:
        """True once the task was cancelled or the lease was lost."""
        ...

    async def cancelled_by_user(self) -> bool:
        """True if the task was cancelled (not merely taken over by another worker after a lost lease)."""
        ...

    async def record_upstream(self, record: UpstreamRecord) -> None: ...


@runtime_checkable
class RelayEngine(Protocol):
    """An engine that runs on the worker's event loop; the job runner detects it with isinstance."""

    name: str

    def availability(self) -> Availability: ...

    def shared_problem(self) -> str | None:
        """What the route's shared health says against it (every process sees it): refused credentials, or a
        breaker cooling down. None when the route may be used."""
        ...

    def estimate_seconds(self, duration_s: int) -> float: ...

    def degraded_reason(self) -> str | None:
        """Why the operator must act (refused credentials), for readyz; None when nothing is wrong."""
        ...

    async def run_relay(self, job: Job, ctx: RelayContext, output_path: Path) -> EngineResult: ...


class TransientUpstreamError(Exception):
    """An upstream failure worth retrying (5xx, unreachable, unreadable answer)."""


def credential_fingerprint(*parts: str) -> str:
    """Names a credential in logs and shared per-process state without revealing it."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


class RelayBase:
    """The steps every relay takes; subclasses talk their upstream's protocol."""

    name: str
    provider: str
    # Longest prompt the upstream accepts, checked at create (a 400 there, never a silent cut); None = no cap.
    max_prompt_chars: int | None = None

    def __init__(self, settings: Settings, runtime: RelayRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.health: RouteHealth = runtime.health(
            f"{self.provider}:{self._fingerprint()}",
            failures_to_open=settings.relay_breaker_failures,
            cooldown_s=settings.relay_breaker_cooldown_s,
        )
        # Retries of one request (submit, lookup, result, copy): 2 s, 4 s, 8 s... from relay_poll_initial_s.
        self.retry_backoff = Backoff(settings.relay_poll_initial_s, 2.0, max(settings.relay_poll_max_s, 1.0))
        # Status polls of a running upstream job: growing by half each poll up to relay_poll_max_s.
        self.poll_backoff = Backoff(settings.relay_poll_initial_s, 1.5, settings.relay_poll_max_s)

    # -- what subclasses provide ------------------------------------------------------------------------------

    def _credentials_missing(self) -> str | None:
        raise NotImplementedError

    def _fingerprint(self) -> str:
        raise NotImplementedError

    async def run_relay(self, job: Job, ctx: RelayContext, output_path: Path) -> EngineResult:
        raise NotImplementedError

    # -- Engine protocol ----------------------------------------------------------------------------------------

    def availability(self) -> Availability:
        missing = self._credentials_missing()
        if missing:
            return Availability(False, missing)
        problem = self.shared_problem()
        return Availability(False, problem) if problem else Availability(True)

    def shared_problem(self) -> str | None:
        if self.health.auth_problem:
            return self.health.auth_problem
        if self.health.is_open():
            return f"{self.provider} failed repeatedly; cooling down"
        return None

    def degraded_reason(self) -> str | None:
        return self.health.auth_problem

    def estimate_seconds(self, duration_s: int) -> float:
        # A prior until the upstream reports: hosted image-to-video jobs take minutes, longer for longer clips.
        return 60.0 + 24.0 * duration_s

    def run(self, job: Job, ctx: RunContext, output_path: Path) -> EngineResult:
        """Synchronous run for the CLI (`reelgate generate`): no database, the record lives in memory."""
        return asyncio.run(self._run_standalone(job, ctx, output_path))

    async def _run_standalone(self, job: Job, ctx: RunContext, output_path: Path) -> EngineResult:
        settings = self.settings
        async with EgressClient(
            allow_private_networks=settings.allow_private_networks, ca_bundle=settings.egress_ca_bundle
        ) as egress:
            return await self.run_relay(job, _MemoryContext(ctx, egress), output_path)

    # -- shared steps -------------------------------------------------------------------------------------------

    @property
    def request_timeout_s(self) -> float:
        return self.settings.relay_request_timeout_s

    def slots(self) -> asyncio.Semaphore:
        """The cap on this credential's upstream requests in flight."""
        return self.runtime.slots(self._fingerprint(), self.settings.relay_max_concurrent_per_credential)

    async def attempts(self, ctx: RelayContext) -> AsyncIterator[int]:
        """The tries of one upstream request: 0, then 1.. after a backoff each, `relay_upstream_retries` more
        at most, each only while the task is still ours. The loop body `continue`s to try again and returns
        (or raises) when done; falling out of the loop means every try failed."""
        for attempt in range(self.settings.relay_upstream_retries + 1):
            if attempt:
                await self.wait(ctx, self.retry_backoff.delay_s(attempt))
            raise_if_cancelled(ctx)
            yield attempt

    async def wait(self, ctx: RelayContext, delay_s: float) -> None:
        """Sleep between polls, looking at cancellation often enough to stop within a heartbeat."""
        deadline = time.monotonic() + delay_s
        while (left := deadline - time.monotonic()) > 0:
            if ctx.cancelled():
                return
            await asyncio.sleep(min(left, 0.2))

    def check_deadline(self, record: UpstreamRecord | None) -> None:
        submitted_at = record.submitted_at if record else None
        if submitted_at is not None and time.time() - submitted_at > self.settings.relay_timeout_s:
            raise TaskFailure(
                TaskErrorCode.GENERATION_TIMEOUT,
                f"{self.provider} did not finish within {self.settings.relay_timeout_s:g} s; credits were released",
            )

    def busy(self, ctx: RelayContext, what: str) -> RetryLater | TaskFailure:
        """The upstream is at its rate or concurrency limit: retry later, until the give-up time."""
        if time.time() - ctx.created_at > self.settings.relay_busy_give_up_s:
            return TaskFailure(
                TaskErrorCode.RESOURCE_EXHAUSTED,
                f"{self.provider} stayed at its limit ({what}) for too long; credits were released",
            )
        return RetryLater(self.settings.relay_busy_retry_s, f"{self.provider}: {what}")

    def auth_refused(self, detail: str) -> TaskFailure:
        """The operator's credentials were refused: loud log, readiness degraded, the task ends."""
        problem = f"{self.provider} refused the operator's credentials ({detail})"
        self.health.mark_auth_problem(problem)
        log.error("RELAY CREDENTIALS REFUSED: %s; fix the settings and restart", problem)
        return TaskFailure(
            TaskErrorCode.SERVICE_ERROR,
            f"The service's {self.provider} account is misconfigured; credits were released",
        )

    def stored_upstream_id(self, ctx: RelayContext) -> str | None:
        """The upstream id this provider already accepted for the task (a resumed attempt), if any."""
        record = ctx.upstream
        return record.task_id if record is not None and record.provider == self.provider else None

    def submit_left_unanswered(self, ctx: RelayContext) -> bool:
        """An earlier attempt recorded a submit but no upstream id: it may or may not have been accepted."""
        record = ctx.upstream
        return self.stored_upstream_id(ctx) is None and record is not None and record.state == UpstreamState.SUBMITTING

    async def record_submitting(self, ctx: RelayContext) -> None:
        """Record (fenced) that a submit is about to leave, before anything is sent: a crash from here on is
        resolved without a blind second submit."""
        await self.update(ctx, task_id=None, state=UpstreamState.SUBMITTING, submitted_at=time.time())

    async def update(self, ctx: RelayContext, **changes: object) -> UpstreamRecord:
        current = ctx.upstream or UpstreamRecord(self.provider, None, None, None)
        record = replace(current, provider=self.provider, **changes)  # type: ignore[arg-type]
        if record != ctx.upstream:
            await ctx.record_upstream(record)
        return record

    async def copy_result(self, ctx: RelayContext, url: str, output_path: Path, info: dict[str, str]) -> EngineResult:
        """Copy the finished video into our scratch dir through the safe client (size-capped); the upstream URL
        is never handed out. Retried while the upstream's storage is flaky."""
        max_bytes = int(self.settings.relay_max_video_mb * 1024 * 1024)
        fetched = None
        async for attempt in self.attempts(ctx):
            try:
                fetched = await ctx.egress.fetch_bytes(
                    url, max_bytes=max_bytes, timeout_s=max(60.0, self.request_timeout_s)
                )
            except TooLargeError:
                raise TaskFailure(
                    TaskErrorCode.SERVICE_ERROR,
                    f"The {self.provider} video is larger than the relay limit of "
                    f"{self.settings.relay_max_video_mb:g} MB; credits were released",
                ) from None
            except EgressError as exc:
                log.warning(
                    "copying the upstream video failed; retrying", extra={"attempt": attempt, "error": exc.message}
                )
                continue
            break
        if fetched is None:
            raise TaskFailure(
                TaskErrorCode.SERVICE_UNAVAILABLE,
                f"The finished {self.provider} video could not be downloaded; credits were released",
            )
        await asyncio.to_thread(output_path.write_bytes, fetched.data)
        try:
            probed = await asyncio.to_thread(probe_video, output_path)
        except VideoProbeError:
            raise TaskFailure(
                TaskErrorCode.SERVICE_ERROR, f"{self.provider} returned a file that is not a readable video"
            ) from None
        return EngineResult(
            video_path=output_path,
            width=probed.width,
            height=probed.height,
            frames=probed.frames,
            fps=round(probed.fps) or 24,
            info={"method": "relay", "upstream": self.provider, **info},
        )


@dataclass
class _MemoryContext:
    """RelayContext without a database, for the CLI's one-off runs."""

    inner: RunContext
    egress: EgressClient
    created_at: float = 0.0
    _record: UpstreamRecord | None = None

    def __post_init__(self) -> None:
        self.scratch_dir = self.inner.scratch_dir
        self.created_at = time.time()

    @property
    def upstream(self) -> UpstreamRecord | None:
        return self._record

    def report_progress(self, fraction: float, estimated_left_s: int | None = None) -> None:
        self.inner.report_progress(fraction)

    def cancelled(self) -> bool:
        return self.inner.cancelled()

    async def cancelled_by_user(self) -> bool:
        return self.inner.cancelled()

    async def record_upstream(self, record: UpstreamRecord) -> None:
        self._record = record
