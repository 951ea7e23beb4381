"""What commits with every terminal transition that wins (queue/terminal.py calls it as its `OnTaskEnded`
hook): the ledger's settlement (capture for completed, release otherwise) and the callback in the outbox, so
both are in the database if and only if the outcome is."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts import ledger
from reelgate.db.models import Task
from reelgate.queue.states import CreditsState
from reelgate.webhooks import outbox


async def task_ended(session: AsyncSession, task: Task, now: float) -> None:
    """The ledger's unique settlement key makes a second settlement roll the whole transaction back: a task is
    never charged or refunded twice."""
    captured = task.credits_state == CreditsState.CAPTURED
    await ledger.settle(session, task.id, ledger.EntryKind.CAPTURE if captured else ledger.EntryKind.RELEASE)
    if task.callback_url is not None:
        await outbox.enqueue_task_callback(session, task.id, now=now)
