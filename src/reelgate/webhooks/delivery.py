"""The deliverer: sends due callbacks from the outbox, concurrently and bounded, on the contract's schedule.

Every process that can end a task runs one (`reelgate serve` in all modes, `reelgate worker`), and any number
may run against one database: each attempt is claimed under a lease (see repository.py), so two processes
never send the same attempt, a process that dies mid-attempt is taken over once its lease runs out, and
pending retries, being rows with a due time, resume at their time after any restart.

One attempt: build the task object exactly as `GET /v1/tasks/{id}` shows it now, sign it (Standard Webhooks,
the same webhook-id on every attempt), and POST it once through the SSRF-safe egress client, which resolves
and checks the URL's addresses again on every request and never follows a redirect. Success is any 2xx;
a 3xx, any other status, a timeout, a connection or TLS error is a failure and retried 1, 2, 4 s later.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
import types
from dataclasses import dataclass
from typing import Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.background import process_identity, run_until_stopped
from reelgate.config import Settings
from reelgate.db.database import Database
from reelgate.db.models import WebhookSecret
from reelgate.egress.client import EgressClient
from reelgate.egress.errors import BlockedAddressError, EgressError
from reelgate.logs import task_context
from reelgate.webhooks import repository
from reelgate.webhooks.outbox import CALLBACKS_CHANNEL, RETRY
from reelgate.webhooks.repository import AttemptOutcome, ClaimedDelivery
from reelgate.webhooks.signing import signature_headers
from reelgate.webhooks.states import DeliveryState, ErrorKind

log = logging.getLogger(__name__)

# The lease outlives the attempt it covers (which the timeout bounds) by this much: room for the database
# reads before the request and the write after it.
LEASE_MARGIN_S = 5.0
EXCERPT_CHARS = 256
_CLAIM_BATCH = 32


@dataclass(frozen=True)
class CallbackPayload:
    """What one callback sends: the task object as `GET /v1/tasks/{id}` shows it now, to the task's URL."""

    url: str
    body: str
    api_key_id: str


class DeliveryResources(Protocol):
    """What the deliverer needs from the process it runs in (`reelgate.resources.Resources` provides it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def callback_egress(self) -> EgressClient: ...

    async def callback_payloads(self, session: AsyncSession, task_ids: list[str]) -> dict[str, CallbackPayload]:
        """The payloads of these tasks' callbacks; a task that is gone or has no callback URL is left out."""
        ...


Source = tuple[CallbackPayload, WebhookSecret | None]


class Deliverer:
    def __init__(self, resources: DeliveryResources, *, concurrency: int | None = None) -> None:
        self.resources = resources
        self.concurrency = concurrency or resources.settings.callback_concurrency
        self.owner = process_identity()
        self._running: set[asyncio.Task[None]] = set()
        # Outcomes waiting to be written; one transaction writes all that are waiting (group commit), so a
        # burst of attempts costs a few write transactions, not one each. That matters most on SQLite, where
        # a writer that finds the lock taken naps in the busy handler (up to 100 ms) instead of queueing.
        self._to_record: list[tuple[ClaimedDelivery, AttemptOutcome, asyncio.Future[DeliveryState | None]]] = []
        self._write_turn = asyncio.Lock()

    @property
    def lease_s(self) -> float:
        return self.resources.settings.callback_timeout_s + LEASE_MARGIN_S

    async def run(self, stop: asyncio.Event) -> None:
        poll_s = self.resources.settings.poll_interval_s
        try:
            await run_until_stopped(
                self.resources.db,
                CALLBACKS_CHANNEL,
                self._start_due,
                stop,
                name="callback deliverer",
                error_wait_s=poll_s,
            )
        finally:
            await self._shutdown()

    async def _start_due(self) -> float:
        """Start every due attempt there is a slot for; return how long until the next one is due."""
        while (free := self.concurrency - len(self._running)) > 0:
            batch = min(free, _CLAIM_BATCH)
            now = time.time()
            async with self._write_turn, self.resources.db.transaction() as session:
                claimed = await repository.claim_due(
                    session, owner=self.owner, limit=batch, lease_s=self.lease_s, now=now
                )
                # Read in the claiming transaction: no second round trip per attempt.
                sources = await self._sources(session, claimed)
            for delivery in claimed:
                job = asyncio.create_task(self._deliver(delivery, sources.get(delivery.task_id)))
                self._running.add(job)
                job.add_done_callback(self._job_done)
            if len(claimed) < batch:
                break
        poll_s = self.resources.settings.poll_interval_s
        if len(self._running) >= self.concurrency:
            return poll_s  # a finishing attempt wakes the loop
        async with self.resources.db.read() as session:
            due_at = await repository.next_due_at(session)
        return poll_s if due_at is None else min(poll_s, due_at - time.time())

    async def _sources(self, session: AsyncSession, claimed: list[ClaimedDelivery]) -> dict[str, Source]:
        payloads = await self.resources.callback_payloads(session, [delivery.task_id for delivery in claimed])
        secrets = await repository.secrets_for_keys(session, {payload.api_key_id for payload in payloads.values()})
        return {task_id: (payload, secrets.get(payload.api_key_id)) for task_id, payload in payloads.items()}

    def _job_done(self, job: asyncio.Task[None]) -> None:
        self._running.discard(job)
        # A slot is free and a retry may have been scheduled: recompute what is due next.
        self.resources.db.wakeups.wake(CALLBACKS_CHANNEL)

    async def _shutdown(self) -> None:
        """Attempts still running are cut short and handed back (see `_deliver`), so a stopping process never
        waits out a slow receiver and the next deliverer sends them at once."""
        for job in self._running:
            job.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _deliver(self, claimed: ClaimedDelivery, source: Source | None) -> None:
        with task_context(claimed.task_id):
            started_at = time.time()
            try:
                outcome = await self._attempt(claimed, source, started_at)
            except asyncio.CancelledError:
                await asyncio.shield(self._release(claimed, started_at))
                raise
            # Shielded: an outcome the receiver already gave is recorded even while this process stops.
            state = await asyncio.shield(self._record(claimed, outcome))
            self._log(claimed, outcome, state)

    async def _record(self, claimed: ClaimedDelivery, outcome: AttemptOutcome) -> DeliveryState | None:
        recorded: asyncio.Future[DeliveryState | None] = asyncio.get_running_loop().create_future()
        self._to_record.append((claimed, outcome, recorded))
        async with self._write_turn:
            if not recorded.done():  # else an earlier turn wrote it along with its own
                batch, self._to_record = self._to_record, []
                states = await self._record_batch(batch)
                for (_, _, future), state in zip(batch, states, strict=True):
                    future.set_result(state)
        return recorded.result()

    async def _record_batch(
        self, batch: list[tuple[ClaimedDelivery, AttemptOutcome, asyncio.Future[DeliveryState | None]]]
    ) -> list[DeliveryState | None]:
        try:
            async with self.resources.db.transaction() as session:
                now = time.time()
                return [
                    await repository.record_attempt(session, claimed, outcome, retry=RETRY, now=now)
                    for claimed, outcome, _ in batch
                ]
        except Exception:
            # Their leases run out and the attempts are made again: at-least-once, never lost.
            log.exception("could not record callback attempts; they are retried after their lease")
            return [None] * len(batch)

    async def _release(self, claimed: ClaimedDelivery, started_at: float) -> None:
        try:
            async with self._write_turn, self.resources.db.transaction() as session:
                await repository.release(session, claimed, started_at=started_at, now=time.time())
        except Exception:
            log.warning("could not hand back a callback lease; it is taken over when it runs out", exc_info=True)

    async def _attempt(self, claimed: ClaimedDelivery, source: Source | None, started_at: float) -> AttemptOutcome:
        clock = time.monotonic()
        try:
            url, body, headers = self._signed_request(claimed, source)
            response = await self.resources.callback_egress.post_json(
                url, body=body.encode(), headers=headers, timeout_s=self.resources.settings.callback_timeout_s
            )
        except EgressError as exc:
            return _outcome(started_at, clock, status=None, kind=classify_error(exc), message=exc.message, excerpt=None)
        except Exception as exc:
            log.exception("callback attempt failed on our side")
            return _outcome(
                started_at, clock, status=None, kind=ErrorKind.INTERNAL, message=type(exc).__name__, excerpt=None
            )
        excerpt = response.body_excerpt[:EXCERPT_CHARS]
        kind = classify_status(response.status)
        message = None if kind is None else _status_message(response.status, response.headers)
        return _outcome(started_at, clock, status=response.status, kind=kind, message=message, excerpt=excerpt)

    def _signed_request(self, claimed: ClaimedDelivery, source: Source | None) -> tuple[str, str, dict[str, str]]:
        """The URL, the body (the task object as GET /v1/tasks/{id} shows it now) and the signature headers."""
        if source is None:
            raise RuntimeError("the task of a callback delivery is gone or has no callback_url")
        payload, secret = source
        if secret is None:
            raise RuntimeError("the task's API key has no webhook secret")
        now = time.time()
        headers = signature_headers(
            webhook_id=claimed.webhook_id,
            timestamp_s=int(now),
            body=payload.body,
            signing_secrets=repository.signing_secrets(secret, now=now),
        )
        return payload.url, payload.body, headers

    def _log(self, claimed: ClaimedDelivery, outcome: AttemptOutcome, state: DeliveryState | None) -> None:
        extra = {
            "webhook_id": claimed.webhook_id,
            "attempt": claimed.attempt,
            "status_code": outcome.status_code,
            "error_kind": outcome.error_kind,
            "latency_s": round(outcome.latency_s, 4),
        }
        if state is None:
            log.warning("callback attempt not recorded (lease lost or database error); it is run again", extra=extra)
        elif state == DeliveryState.DELIVERED:
            log.info("callback delivered", extra=extra)
        elif state == DeliveryState.FAILED:
            log.warning("callback given up after the last attempt", extra={**extra, "error": outcome.error_message})
        else:
            log.info("callback attempt failed; retry scheduled", extra={**extra, "error": outcome.error_message})


def _outcome(
    started_at: float,
    clock: float,
    *,
    status: int | None,
    kind: ErrorKind | None,
    message: str | None,
    excerpt: str | None,
) -> AttemptOutcome:
    latency_s = time.monotonic() - clock
    return AttemptOutcome(
        started_at=started_at,
        finished_at=started_at + latency_s,
        latency_s=latency_s,
        status_code=status,
        error_kind=kind,
        error_message=message,
        response_excerpt=excerpt,
    )


def classify_status(status: int) -> ErrorKind | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return ErrorKind.REDIRECT
    return ErrorKind.HTTP_STATUS


def _status_message(status: int, headers: dict[str, str]) -> str:
    if 300 <= status < 400:
        location = headers.get("location", "")
        return f"HTTP {status} redirect (not followed){f' to {location[:200]}' if location else ''}"
    return f"HTTP {status}"


def classify_error(exc: EgressError) -> ErrorKind:
    """The kind of a failed request, from the exception the egress client's message was raised over."""
    if isinstance(exc, BlockedAddressError):
        return ErrorKind.BLOCKED_ADDRESS
    # The client raises its user-safe messages over the original exception (`raise ... from None` keeps it as
    # the context), so the kind comes from exception types, not from message texts.
    if _chain_has(exc, TimeoutError | httpx.TimeoutException):
        return ErrorKind.TIMEOUT
    if _chain_has(exc, ssl.SSLError | ssl.CertificateError):
        return ErrorKind.TLS
    if _chain_has(exc, socket.gaierror):
        return ErrorKind.DNS
    if _chain_has(exc, httpx.InvalidURL):
        return ErrorKind.INVALID_URL
    if _chain_has(exc, httpx.HTTPError | OSError):
        return ErrorKind.CONNECTION
    # Raised by the client's own checks (no host, bad port, no address): the message says which.
    return ErrorKind.REQUEST_ERROR


def _chain_has(exc: BaseException, kinds: type[BaseException] | types.UnionType) -> bool:
    cause: BaseException | None = exc.__cause__ or exc.__context__
    while cause is not None:
        if isinstance(cause, kinds):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
