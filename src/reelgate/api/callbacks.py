"""The delivery log of a task's callback, and redelivery (our extension, beside docs/contract.md section 5)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from reelgate.api.auth import CurrentKey, ResourcesDep
from reelgate.api.responses import errors
from reelgate.api.strict import reject_unknown_query
from reelgate.tasks import callbacks
from reelgate.webhooks.schemas import CallbackDeliveryList, CallbackDeliveryView

router = APIRouter(prefix="/v1", tags=["Callbacks"])


@router.get(
    "/tasks/{task_id}/callbacks",
    response_model=CallbackDeliveryList,
    response_model_exclude_none=True,
    operation_id="listTaskCallbacks",
    summary="The task's callback deliveries and every attempt (status, error, latency, answer excerpt)",
    responses=errors(400, 401, 404, 429, 500, 503),
)
async def list_callbacks(
    request: Request, task_id: str, key: CurrentKey, resources: ResourcesDep
) -> CallbackDeliveryList:
    reject_unknown_query(request, allowed=())
    return await callbacks.list_deliveries(resources, key, task_id)


@router.post(
    "/tasks/{task_id}/callbacks/redeliver",
    response_model=CallbackDeliveryView,
    response_model_exclude_none=True,
    operation_id="redeliverTaskCallback",
    summary="Send the finished task's callback again: a new attempt series with the same webhook-id",
    responses=errors(400, 401, 404, 429, 500, 503),
)
async def redeliver_callback(
    request: Request, task_id: str, key: CurrentKey, resources: ResourcesDep
) -> CallbackDeliveryView:
    reject_unknown_query(request, allowed=())
    return await callbacks.redeliver(resources, key, task_id)
