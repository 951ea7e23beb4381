"""The worker loop: advertise the engines this process runs in the workers registry, claim tasks of the
available ones, and run up to `concurrency` at once. (Tasks whose worker died come back through
queue/recovery.py, which every process that serves the API or works the database runs.)

A create wakes the workers at once (db/notify.py: in this process after its commit, and on PostgreSQL in
every other process through LISTEN/NOTIFY); otherwise a worker looks every `poll_interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from reelgate.background import process_identity, run_until_stopped
from reelgate.db.notify import notify
from reelgate.engines.base import Engine
from reelgate.logs import task_context
from reelgate.queue import TASK_EVENTS_CHANNEL, TASKS_CHANNEL, registry
from reelgate.queue import repository as queue_repo
from reelgate.queue.context import QueueResources
from reelgate.queue.database_lease import DatabaseLease
from reelgate.queue.jobs import run_claimed_task
from reelgate.queue.lease import ClaimedTask, claimed_task
from reelgate.queue.repository import Fence

log = logging.getLogger(__name__)


class Worker:
    """`engines`: every engine this worker was asked to run; it claims tasks only of those available at the
    moment of the claim (a relay whose breaker opened stops claiming until it recovers), and advertises all of
    them with their availability."""

    def __init__(self, resources: QueueResources, engines: dict[str, Engine], *, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.resources = resources
        self.engines = engines
        self.concurrency = concurrency
        self.owner = process_identity()
        self._running: set[asyncio.Task[None]] = set()
        self._last_advert = 0.0
        self._stop = asyncio.Event()

    def advert(self) -> registry.Advert:
        return registry.Advert(
            id=self.owner,
            kind="database",
            engines={name: engine.availability() for name, engine in self.engines.items()},
            concurrency=self.concurrency,
            running=len(self._running),
        )

    async def register(self) -> None:
        """Appear in the registry before the first claim, so routing can send this worker's models here."""
        async with self.resources.db.transaction() as session:
            await registry.register(session, self.advert(), now=time.time())
        self._last_advert = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        """Register (if not yet), claim until `stop`, then wait for running jobs and deregister."""
        self._stop = stop
        if not self._last_advert:
            await self.register()
        log.info(
            "worker started",
            extra={"owner": self.owner, "engines": list(self.engines), "concurrency": self.concurrency},
        )
        poll_s = self.resources.settings.poll_interval_s
        try:
            await run_until_stopped(
                self.resources.db, TASKS_CHANNEL, self._claim_what_fits, stop, name="worker", error_wait_s=poll_s
            )
        finally:
            await self.shutdown()

    async def _claim_what_fits(self) -> float:
        await self._advertise_if_due()
        available = [name for name, engine in self.engines.items() if engine.availability().ok]
        while available and len(self._running) < self.concurrency and not self._stop.is_set():
            claimed = await self._claim(available)
            if claimed is None:
                break
            job = asyncio.create_task(self._run(claimed))
            self._running.add(job)
            job.add_done_callback(self._job_done)
        return self.resources.settings.poll_interval_s

    def _job_done(self, job: asyncio.Task[None]) -> None:
        self._running.discard(job)
        # A slot is free: look for more work now rather than at the next poll.
        self.resources.db.wakeups.wake(TASKS_CHANNEL)

    async def shutdown(self) -> None:
        """Stop claiming, wait for running jobs (a job cut off here is re-run after its lease), and leave the
        registry so routing stops sending this worker's models here."""
        if self._running:
            log.info("waiting for running jobs", extra={"count": len(self._running)})
            await asyncio.gather(*self._running, return_exceptions=True)
        try:
            async with self.resources.db.transaction() as session:
                await registry.deregister(session, self.owner)
        except Exception:
            log.warning("could not leave the workers registry; the entry expires by itself", exc_info=True)

    async def _advertise_if_due(self) -> None:
        settings = self.resources.settings
        if time.monotonic() - self._last_advert < min(settings.worker_ttl_s / 3, 5.0):
            return
        async with self.resources.db.transaction() as session:
            if not await registry.heartbeat(session, self.advert(), now=time.time(), ttl_s=settings.worker_ttl_s):
                await registry.register(session, self.advert(), now=time.time())
        self._last_advert = time.monotonic()

    async def _claim(self, engines: list[str]) -> ClaimedTask | None:
        now = time.time()
        async with self.resources.db.transaction() as session:
            task = await queue_repo.claim(
                session, engines=engines, owner=self.owner, lease_s=self.resources.settings.lease_s, now=now
            )
            if task is None:
                return None
            await notify(session, TASK_EVENTS_CHANNEL, task.id)
            return claimed_task(task, Fence(attempt=task.attempt, owner=self.owner))

    async def _run(self, claimed: ClaimedTask) -> None:
        with task_context(claimed.id):
            log.info("claimed", extra={"attempt": claimed.fence.attempt, "engine": claimed.engine})
            await run_claimed_task(self.resources, DatabaseLease(self.resources, claimed), self.engines[claimed.engine])
