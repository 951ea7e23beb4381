"""A task's callbacks seen from the API: the delivery log, redelivery, and the payload the deliverer signs
(webhooks/delivery.py asks for it through `reelgate.resources`). Same visibility as `GET /v1/tasks/{id}`:
the key's own, unexpired tasks."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts.service import KeyFields
from reelgate.config import Settings
from reelgate.errors import ApiError
from reelgate.queue.states import UNFINISHED
from reelgate.storage.base import Storage
from reelgate.tasks import repository
from reelgate.tasks.context import TasksResources
from reelgate.tasks.service import get_visible_task, task_object
from reelgate.webhooks import outbox
from reelgate.webhooks import repository as webhooks
from reelgate.webhooks.delivery import CallbackPayload
from reelgate.webhooks.schemas import CallbackDeliveryList, CallbackDeliveryView, delivery_view
from reelgate.webhooks.states import DeliveryState


async def list_deliveries(resources: TasksResources, key: KeyFields, task_id: str) -> CallbackDeliveryList:
    async with resources.db.read() as session:
        task = await get_visible_task(session, resources.settings, key, task_id)
        series = await webhooks.deliveries_with_attempts(session, task.id)
    url = task.callback_url or ""
    return CallbackDeliveryList(data=[delivery_view(row, attempts, url=url) for row, attempts in series])


async def redeliver(resources: TasksResources, key: KeyFields, task_id: str) -> CallbackDeliveryView:
    """A new attempt series of the task's callback, with the same webhook-id; refused while one is running."""
    async with resources.db.transaction() as session:
        task = await get_visible_task(session, resources.settings, key, task_id)
        if task.callback_url is None:
            raise ApiError(400, "Task has no callback_url: there is nothing to redeliver", param="task_id")
        if task.status in UNFINISHED:
            raise ApiError(400, f"Task is still {task.status}: its callback is sent when it ends", param="task_id")
        # Serialises redeliveries of one task, so two cannot both find the previous series finished.
        await repository.lock_task(session, task.id)
        previous = await webhooks.latest_delivery(session, task.id)
        if previous is not None and previous.state == DeliveryState.PENDING:
            raise ApiError(400, "A delivery of this callback is still in progress", param="task_id")
        delivery = await outbox.enqueue_redelivery(session, task.id, previous=previous, now=time.time())
    return delivery_view(delivery, [], url=task.callback_url)


async def callback_payloads(
    session: AsyncSession, task_ids: list[str], *, storage: Storage, settings: Settings
) -> dict[str, CallbackPayload]:
    """What each task's callback sends: the task object as `GET /v1/tasks/{id}` shows it now."""
    payloads: dict[str, CallbackPayload] = {}
    for task in await repository.get_tasks(session, task_ids):
        if task.callback_url is None:
            continue
        body = task_object(task, storage=storage, settings=settings).model_dump_json(exclude_none=True)
        payloads[task.id] = CallbackPayload(url=task.callback_url, body=body, api_key_id=task.api_key_id)
    return payloads
