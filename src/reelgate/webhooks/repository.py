"""SQL for webhook secrets, the callback outbox (`callback_deliveries`) and the delivery log
(`callback_attempts`). Callers own the transaction.

A delivery row is one attempt series (the task's outcome, or a redelivery). A deliverer claims due rows with a
lease, exactly as workers claim tasks: inside `BEGIN IMMEDIATE` on SQLite, `FOR UPDATE SKIP LOCKED` on
PostgreSQL, so two processes never send the same attempt. The write that records an attempt's outcome is
fenced by the lease it was claimed under, so a deliverer that lost its lease cannot overwrite anything.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.backoff import Backoff
from reelgate.db.models import CallbackAttempt, CallbackDelivery, WebhookSecret
from reelgate.webhooks.states import DeliveryState, ErrorKind

# A delivery whose process died mid-attempt is re-run without using up one of the receiver's attempts, but
# only this often: a delivery that somehow kills every process sending it must end, not loop forever.
MAX_INTERRUPTIONS = 3


def new_delivery_id() -> str:
    return f"dlv_{secrets.token_hex(12)}"


def new_webhook_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


# --- secrets ---------------------------------------------------------------------------------------------


async def insert_secret(session: AsyncSession, api_key_id: str, secret: str, *, now: float) -> None:
    session.add(
        WebhookSecret(
            api_key_id=api_key_id,
            current_secret=secret,
            previous_secret=None,
            previous_valid_until=None,
            created_at=now,
            rotated_at=None,
        )
    )
    await session.flush()


async def rotate_secret(
    session: AsyncSession, api_key_id: str, new_secret: str, *, now: float, overlap_s: float
) -> bool:
    """The current secret becomes the previous one, which keeps signing (beside the new one) for `overlap_s`."""
    result = await session.execute(
        update(WebhookSecret)
        .where(WebhookSecret.api_key_id == api_key_id)
        .values(
            previous_secret=WebhookSecret.current_secret,
            previous_valid_until=now + overlap_s,
            current_secret=new_secret,
            rotated_at=now,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def signing_secrets(row: WebhookSecret, *, now: float) -> list[str]:
    """The secrets an attempt at `now` is signed with: the current one first, the previous one during rotation."""
    active = [row.current_secret]
    if row.previous_secret and row.previous_valid_until is not None and now < row.previous_valid_until:
        active.append(row.previous_secret)
    return active


# --- the outbox ------------------------------------------------------------------------------------------


async def insert_delivery(
    session: AsyncSession, *, task_id: str, webhook_id: str, series: int, max_attempts: int, now: float
) -> CallbackDelivery:
    row = CallbackDelivery(
        id=new_delivery_id(),
        task_id=task_id,
        webhook_id=webhook_id,
        series=series,
        state=DeliveryState.PENDING,
        attempts=0,
        max_attempts=max_attempts,
        interruptions=0,
        next_attempt_at=now,
        lease_owner=None,
        lease_expires_at=None,
        created_at=now,
        updated_at=now,
        finished_at=None,
    )
    session.add(row)
    # The unique (task_id, series) index makes a second outbox row for one outcome impossible.
    await session.flush()
    return row


async def latest_delivery(session: AsyncSession, task_id: str) -> CallbackDelivery | None:
    query = (
        select(CallbackDelivery)
        .where(CallbackDelivery.task_id == task_id)
        .order_by(CallbackDelivery.series.desc())
        .limit(1)
    )
    return (await session.scalars(query)).first()


async def deliveries_with_attempts(
    session: AsyncSession, task_id: str
) -> list[tuple[CallbackDelivery, list[CallbackAttempt]]]:
    """Every series of the task, newest first, each with its attempts in the order they were made."""
    deliveries = list(
        (
            await session.scalars(
                select(CallbackDelivery)
                .where(CallbackDelivery.task_id == task_id)
                .order_by(CallbackDelivery.series.desc())
            )
        ).all()
    )
    if not deliveries:
        return []
    attempts = (
        await session.scalars(
            select(CallbackAttempt)
            .where(CallbackAttempt.delivery_id.in_([d.id for d in deliveries]))
            .order_by(CallbackAttempt.attempt, CallbackAttempt.id)
        )
    ).all()
    by_delivery: dict[str, list[CallbackAttempt]] = {d.id: [] for d in deliveries}
    for attempt in attempts:
        by_delivery[attempt.delivery_id].append(attempt)
    return [(delivery, by_delivery[delivery.id]) for delivery in deliveries]


async def secrets_for_keys(session: AsyncSession, api_key_ids: set[str]) -> dict[str, WebhookSecret]:
    """The signing secrets of these API keys, by key id."""
    if not api_key_ids:
        return {}
    found = (await session.scalars(select(WebhookSecret).where(WebhookSecret.api_key_id.in_(api_key_ids)))).all()
    return {row.api_key_id: row for row in found}


# --- claiming and recording attempts ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    """One attempt a deliverer holds the lease for."""

    id: str
    task_id: str
    webhook_id: str
    attempt: int
    attempts_before: int
    max_attempts: int
    scheduled_at: float
    lease_owner: str


async def claim_due(
    session: AsyncSession, *, owner: str, limit: int, lease_s: float, now: float
) -> list[ClaimedDelivery]:
    """Lease up to `limit` due deliveries, oldest due first.

    A row whose lease ran out while it was held belongs to a process that died mid-attempt: that attempt is
    logged as interrupted and run again under the same number (the receiver may or may not have seen it, which
    is the at-least-once the contract allows).
    """
    rows = (
        await session.scalars(
            select(CallbackDelivery)
            .where(
                CallbackDelivery.state == DeliveryState.PENDING,
                CallbackDelivery.next_attempt_at <= now,
                or_(CallbackDelivery.lease_owner.is_(None), CallbackDelivery.lease_expires_at < now),
            )
            .order_by(CallbackDelivery.next_attempt_at, CallbackDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    claimed: list[ClaimedDelivery] = []
    for row in rows:
        if row.lease_owner is not None:
            session.add(
                CallbackAttempt(
                    delivery_id=row.id,
                    attempt=row.attempts + 1,
                    scheduled_at=row.next_attempt_at,
                    started_at=row.updated_at,
                    finished_at=now,
                    latency_s=None,
                    status_code=None,
                    error_kind=ErrorKind.INTERRUPTED,
                    error_message="the delivering process stopped during this attempt; it is run again",
                    response_excerpt=None,
                )
            )
            row.interruptions += 1
            if row.interruptions > MAX_INTERRUPTIONS:
                row.state = DeliveryState.FAILED
                row.finished_at = now
                row.lease_owner = None
                row.lease_expires_at = None
                row.updated_at = now
                continue
        lease_owner = f"{owner}/{secrets.token_hex(4)}"
        row.lease_owner = lease_owner
        row.lease_expires_at = now + lease_s
        row.updated_at = now
        claimed.append(
            ClaimedDelivery(
                id=row.id,
                task_id=row.task_id,
                webhook_id=row.webhook_id,
                attempt=row.attempts + 1,
                attempts_before=row.attempts,
                max_attempts=row.max_attempts,
                scheduled_at=row.next_attempt_at,
                lease_owner=lease_owner,
            )
        )
    await session.flush()
    return claimed


@dataclass(frozen=True)
class AttemptOutcome:
    started_at: float
    finished_at: float
    latency_s: float
    status_code: int | None
    error_kind: ErrorKind | None
    error_message: str | None
    response_excerpt: str | None

    @property
    def succeeded(self) -> bool:
        return self.error_kind is None


async def record_attempt(
    session: AsyncSession,
    claimed: ClaimedDelivery,
    outcome: AttemptOutcome,
    *,
    retry: Backoff,
    now: float,
) -> DeliveryState | None:
    """Log the attempt and move the series on (delivered, retry at its time, or given up), fenced by the lease.

    Returns the series' new state, or None when the lease was lost (the attempt was taken over and logged as
    interrupted by the process that took it).
    """
    attempts = claimed.attempts_before + 1
    if outcome.succeeded:
        values: dict[str, object] = {"state": DeliveryState.DELIVERED, "finished_at": now}
    elif attempts >= claimed.max_attempts:
        values = {"state": DeliveryState.FAILED, "finished_at": now}
    else:
        # Retries are timed from the end of the failed attempt: +1 s, +2 s, +4 s (docs/contract.md section 5).
        values = {"state": DeliveryState.PENDING, "next_attempt_at": outcome.finished_at + retry.delay_s(attempts)}
    result = await session.execute(
        update(CallbackDelivery)
        .where(
            CallbackDelivery.id == claimed.id,
            CallbackDelivery.lease_owner == claimed.lease_owner,
            CallbackDelivery.attempts == claimed.attempts_before,
        )
        .values(attempts=attempts, lease_owner=None, lease_expires_at=None, updated_at=now, **values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    session.add(
        CallbackAttempt(
            delivery_id=claimed.id,
            attempt=claimed.attempt,
            scheduled_at=claimed.scheduled_at,
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            latency_s=outcome.latency_s,
            status_code=outcome.status_code,
            error_kind=outcome.error_kind,
            error_message=outcome.error_message,
            response_excerpt=outcome.response_excerpt,
        )
    )
    await session.flush()
    return DeliveryState(str(values["state"]))


async def release(session: AsyncSession, claimed: ClaimedDelivery, *, started_at: float, now: float) -> None:
    """Give back a lease cut short by this process stopping: logged as interrupted, due again at once, for
    anyone, under the same attempt number (a shutdown must not use up the receiver's attempts)."""
    result = await session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.id == claimed.id, CallbackDelivery.lease_owner == claimed.lease_owner)
        .values(lease_owner=None, lease_expires_at=None, next_attempt_at=now, updated_at=now)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        session.add(
            CallbackAttempt(
                delivery_id=claimed.id,
                attempt=claimed.attempt,
                scheduled_at=claimed.scheduled_at,
                started_at=started_at,
                finished_at=now,
                latency_s=None,
                status_code=None,
                error_kind=ErrorKind.INTERRUPTED,
                error_message="the delivering process shut down during this attempt; it is run again",
                response_excerpt=None,
            )
        )


async def next_due_at(session: AsyncSession) -> float | None:
    """When the earliest unleased pending delivery is due (leased ones come back through their lease)."""
    value = await session.scalar(
        select(func.min(CallbackDelivery.next_attempt_at)).where(
            CallbackDelivery.state == DeliveryState.PENDING, CallbackDelivery.lease_owner.is_(None)
        )
    )
    return float(value) if value is not None else None
