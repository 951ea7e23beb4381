"""Create, query, list and cancel tasks (docs/contract.md sections 1, 2, 6)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from reelgate.api.auth import CurrentCaller, CurrentKey, ResourcesDep
from reelgate.api.responses import errors
from reelgate.api.strict import reject_unknown_query
from reelgate.tasks import service
from reelgate.tasks.schemas import CreateVideoRequest, TaskList, TaskObject

router = APIRouter(prefix="/v1", tags=["Video Generation"])


@router.post(
    "/videos/generations",
    response_model=TaskObject,
    response_model_exclude_none=True,
    operation_id="createVideoGeneration",
    summary="Create an image-to-video task",
    responses=errors(400, 401, 402, 403, 404, 409, 413, 422, 429, 500, 503),
)
async def create_video_generation(
    body: CreateVideoRequest,
    caller: CurrentCaller,
    resources: ResourcesDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Same key and body within 24 h = the same task, charged once",
        ),
    ] = None,
) -> Any:
    created = await service.create(resources, caller, body, idempotency_key=idempotency_key)
    if created.replayed:
        return JSONResponse(created.task, headers={"Idempotent-Replayed": "true"})
    return created.task


@router.get(
    "/tasks/{task_id}",
    response_model=TaskObject,
    response_model_exclude_none=True,
    operation_id="getTask",
    summary="Query a task",
    responses=errors(400, 401, 404, 429, 500, 503),
)
async def get_task(task_id: str, key: CurrentKey, resources: ResourcesDep) -> TaskObject:
    return await service.get_task(resources, key, task_id)


@router.get(
    "/tasks",
    response_model=TaskList,
    response_model_exclude_none=True,
    operation_id="listTasks",
    summary="List the key's tasks, newest first",
    responses=errors(400, 401, 429, 500, 503),
)
async def list_tasks(
    request: Request,
    key: CurrentKey,
    resources: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE, description="Page size, 1..100")] = 20,
    after: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page")] = None,
) -> TaskList:
    reject_unknown_query(request, allowed=("limit", "after"))
    return await service.list_tasks(resources, key, limit=limit, after=after)


@router.post(
    "/tasks/{task_id}/cancel",
    response_model=TaskObject,
    response_model_exclude_none=True,
    operation_id="cancelTask",
    summary="Cancel a pending or processing task; its credits are released",
    responses=errors(400, 401, 404, 429, 500, 503),
)
async def cancel_task(task_id: str, key: CurrentKey, resources: ResourcesDep) -> TaskObject:
    return await service.cancel_task(resources, key, task_id)
