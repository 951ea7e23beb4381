"""The worker loop: claim tasks of the engines this process runs, run up to `concurrency` at once, and put
back tasks whose worker died (expired leases).

Workers inside `reelgate serve` are woken at once by the API's in-process notifier; standalone workers
(`reelgate worker`) poll every `poll_interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

from reelgate.engines.base import Engine
from reelgate.logs import task_context
from reelgate.queue import repository as queue_repo
from reelgate.queue.notify import listen_for_tasks
from reelgate.queue.recovery import recover_expired
from reelgate.resources import Resources
from reelgate.tasks.jobs import ClaimedTask, run_claimed_task
from reelgate.tasks.repository import Fence

log = logging.getLogger(__name__)


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, resources: Resources, engines: dict[str, Engine], *, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.resources = resources
        self.engines = engines
        self.concurrency = concurrency
        self.owner = worker_identity()
        self._running: set[asyncio.Task[None]] = set()
        self._last_recovery = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "worker started",
            extra={"owner": self.owner, "engines": list(self.engines), "concurrency": self.concurrency},
        )
        wake = self.resources.queue_wakeup
        listener = None
        if not self.resources.db.is_sqlite:
            listener = asyncio.create_task(listen_for_tasks(self.resources.db.url, wake, stop))
        while not stop.is_set():
            # Cleared before looking, not after: a wake-up that arrives while we claim is kept for the wait.
            wake.clear()
            try:
                await self._recover_if_due()
                while len(self._running) < self.concurrency and not stop.is_set():
                    claimed = await self._claim()
                    if claimed is None:
                        break
                    job = asyncio.create_task(self._run(claimed))
                    self._running.add(job)
                    job.add_done_callback(self._job_done)
            except Exception:
                log.exception("worker loop error; continuing")
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
            await asyncio.wait(
                waiters, timeout=self.resources.settings.poll_interval_s, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()
        if listener is not None:
            await asyncio.gather(listener, return_exceptions=True)
        await self.shutdown()

    def _job_done(self, job: asyncio.Task[None]) -> None:
        self._running.discard(job)
        # A slot is free: look for more work now rather than at the next poll.
        self.resources.queue_wakeup.set()

    async def shutdown(self) -> None:
        """Stop claiming and wait for running jobs; a job cut off here is re-run after its lease."""
        if self._running:
            log.info("waiting for running jobs", extra={"count": len(self._running)})
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _claim(self) -> ClaimedTask | None:
        now = time.time()
        async with self.resources.db.transaction() as session:
            task = await queue_repo.claim(
                session,
                engines=list(self.engines),
                owner=self.owner,
                lease_s=self.resources.settings.lease_s,
                now=now,
            )
            if task is None:
                return None
            return ClaimedTask(
                id=task.id,
                fence=Fence(attempt=task.attempt, owner=self.owner),
                engine=task.engine,
                prompt=task.prompt,
                image_urls=list(task.image_urls),
                aspect_ratio=task.aspect_ratio,
                duration_s=task.duration_s,
                seed=task.seed,
                max_attempts=task.max_attempts,
                estimate_s=task.estimated_time_s,
            )

    async def _run(self, claimed: ClaimedTask) -> None:
        with task_context(claimed.id):
            log.info("claimed", extra={"attempt": claimed.fence.attempt, "engine": claimed.engine})
            await run_claimed_task(self.resources, claimed, self.engines[claimed.engine])

    async def _recover_if_due(self) -> None:
        """Requeue tasks of dead workers; end those out of attempts as failed, credits released."""
        now = time.time()
        if now - self._last_recovery < self.resources.settings.lease_s / 4:
            return
        self._last_recovery = now
        async with self.resources.db.transaction() as session:
            requeued = await recover_expired(session, now=now)
        for task_id in requeued:
            with task_context(task_id):
                log.warning("lease expired; task requeued")
