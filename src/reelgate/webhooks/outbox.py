"""Writing callbacks to the outbox. Called inside the transaction that ends a task (or asks for a
redelivery), so the row exists exactly when that transaction commits."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.backoff import Backoff
from reelgate.db.models import CallbackDelivery
from reelgate.db.notify import notify
from reelgate.webhooks import repository

# The wake-up channel of the deliverers (db/notify.py): here at once after the commit, elsewhere via NOTIFY.
CALLBACKS_CHANNEL = "reelgate_callbacks"
# The contract: the first attempt, then retries 1, 2 and 4 seconds after each failure (4 attempts at most).
RETRY = Backoff(first_s=1.0, factor=2.0, max_s=4.0)
MAX_ATTEMPTS = 4
FIRST_SERIES = 1


async def enqueue_task_callback(session: AsyncSession, task_id: str, *, now: float) -> CallbackDelivery:
    """The callback of the task's outcome (series 1; a second one for the same task violates a unique index)."""
    delivery = await repository.insert_delivery(
        session,
        task_id=task_id,
        webhook_id=repository.new_webhook_id(),
        series=FIRST_SERIES,
        max_attempts=MAX_ATTEMPTS,
        now=now,
    )
    await notify(session, CALLBACKS_CHANNEL)
    return delivery


async def enqueue_redelivery(
    session: AsyncSession, task_id: str, *, previous: CallbackDelivery | None, now: float
) -> CallbackDelivery:
    """A new attempt series with the webhook-id of the earlier ones (receivers deduplicate on it)."""
    delivery = await repository.insert_delivery(
        session,
        task_id=task_id,
        webhook_id=previous.webhook_id if previous is not None else repository.new_webhook_id(),
        series=previous.series + 1 if previous is not None else FIRST_SERIES,
        max_attempts=MAX_ATTEMPTS,
        now=now,
    )
    await notify(session, CALLBACKS_CHANNEL)
    return delivery
