"""Use cases of the delivery log API. Same visibility as `GET /v1/tasks/{id}`: the key's own, unexpired tasks."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.config import Settings
from reelgate.db.models import ApiKey
from reelgate.errors import ApiError
from reelgate.tasks.service import get_visible_task
from reelgate.tasks.states import UNFINISHED
from reelgate.webhooks import outbox, repository
from reelgate.webhooks.schemas import CallbackDeliveryList, CallbackDeliveryView, delivery_view
from reelgate.webhooks.states import DeliveryState


async def list_deliveries(session: AsyncSession, settings: Settings, key: ApiKey, task_id: str) -> CallbackDeliveryList:
    task = await get_visible_task(session, settings, key, task_id)
    series = await repository.deliveries_with_attempts(session, task.id)
    url = task.callback_url or ""
    return CallbackDeliveryList(data=[delivery_view(row, attempts, url=url) for row, attempts in series])


async def redeliver(session: AsyncSession, settings: Settings, key: ApiKey, task_id: str) -> CallbackDeliveryView:
    """A new attempt series of the task's callback, with the same webhook-id; refused while one is running."""
    task = await get_visible_task(session, settings, key, task_id)
    if task.callback_url is None:
        raise ApiError(400, "Task has no callback_url: there is nothing to redeliver", param="task_id")
    if task.status in UNFINISHED:
        raise ApiError(400, f"Task is still {task.status}: its callback is sent when it ends", param="task_id")
    await repository.lock_task_row(session, task.id)
    previous = await repository.latest_delivery(session, task.id)
    if previous is not None and previous.state == DeliveryState.PENDING:
        raise ApiError(400, "A delivery of this callback is still in progress", param="task_id")
    delivery = await outbox.enqueue_redelivery(session, task, previous=previous, now=time.time())
    return delivery_view(delivery, [], url=task.callback_url)
