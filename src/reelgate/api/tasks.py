"""Create, query, list and cancel tasks (CONTRACT.md sections 1, 2, 6)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from reelgate.accounts import idempotency
from reelgate.accounts.service import authorize_model
from reelgate.api.auth import Caller, CurrentCaller, CurrentKey, ResourcesDep
from reelgate.api.responses import errors
from reelgate.api.strict import reject_unknown_query
from reelgate.egress.urls import validate_callback_url
from reelgate.errors import ApiError
from reelgate.media.images import validate_image_at_create
from reelgate.tasks import repository, service
from reelgate.tasks.schemas import CreateVideoRequest, TaskList, TaskObject
from reelgate.tasks.service import Route

router = APIRouter(prefix="/v1", tags=["Video Generation"])

MAX_PAGE = 100


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
    key = caller.key
    usable = authorize_model(key, body.model, resources.registry.model_names())
    route = resources.registry.route(body.model, body.duration, allowed=usable)
    if idempotency_key is None:
        return await _create(body, caller, resources, route, idempotency_key=None)
    idempotency.validate_key(idempotency_key)
    stored = await idempotency.claim(
        resources.db, key.id, idempotency_key, idempotency.fingerprint(body.model_dump(mode="json"))
    )
    if stored is not None:
        return JSONResponse(stored, headers={"Idempotent-Replayed": "true"})
    try:
        return await _create(body, caller, resources, route, idempotency_key=idempotency_key)
    except BaseException:
        # Nothing was created (the task and the stored answer commit together): free the key for a retry.
        await idempotency.release(resources.db, key.id, idempotency_key)
        raise


async def _create(
    body: CreateVideoRequest, caller: Caller, resources: ResourcesDep, route: Route, *, idempotency_key: str | None
) -> dict[str, Any]:
    settings = resources.settings
    for index, url in enumerate(body.image_urls):
        # Decoding a data: URI is CPU work; keep it off the event loop.
        await asyncio.to_thread(
            validate_image_at_create,
            url,
            param=f"image_urls[{index}]",
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            allow_private=settings.allow_private_networks,
        )
    if body.callback_url is not None:
        await validate_callback_url(body.callback_url, allow_private=settings.allow_private_networks)
    async with resources.db.transaction() as session:
        task = await service.create_task(
            session,
            settings,
            key=caller.key,
            request=body,
            route=route,
            pricing=resources.pricing.current(),
            max_concurrent=caller.limits.max_concurrent,
        )
        answer = service.task_object(task, links=resources.links, settings=settings).model_dump(
            mode="json", exclude_none=True
        )
        if idempotency_key is not None:
            await idempotency.complete(
                session,
                caller.key.id,
                idempotency_key,
                task_id=task.id,
                response=answer,
                ttl_s=settings.idempotency_ttl_s,
            )
    resources.queue_wakeup.set()
    return answer


@router.get(
    "/tasks/{task_id}",
    response_model=TaskObject,
    response_model_exclude_none=True,
    operation_id="getTask",
    summary="Query a task",
    responses=errors(400, 401, 404, 429, 500, 503),
)
async def get_task(task_id: str, key: CurrentKey, resources: ResourcesDep) -> TaskObject:
    async with resources.db.read() as session:
        task = await service.get_visible_task(session, resources.settings, key, task_id)
    return service.task_object(task, links=resources.links, settings=resources.settings)


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
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size, 1..100")] = 20,
    after: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page")] = None,
) -> TaskList:
    reject_unknown_query(request, allowed=("limit", "after"))
    settings = resources.settings
    async with resources.db.read() as session:
        cursor = None
        if after is not None:
            cursor = await repository.get_task(session, after)
            if cursor is None or cursor.api_key_id != key.id:
                raise ApiError(400, "Invalid cursor: pass the next_cursor of a previous page", param="after")

        rows = await repository.list_tasks(
            session, key.id, limit=limit + 1, after=cursor, not_finished_before=time.time() - settings.result_ttl_s
        )
    page = rows[:limit]
    return TaskList(
        data=[service.task_object(task, links=resources.links, settings=settings) for task in page],
        has_more=len(rows) > limit,
        next_cursor=page[-1].id if len(rows) > limit else None,
    )


@router.post(
    "/tasks/{task_id}/cancel",
    response_model=TaskObject,
    response_model_exclude_none=True,
    operation_id="cancelTask",
    summary="Cancel a pending or processing task; its credits are released",
    responses=errors(400, 401, 404, 429, 500, 503),
)
async def cancel_task(task_id: str, key: CurrentKey, resources: ResourcesDep) -> TaskObject:
    async with resources.db.transaction() as session:
        task = await service.cancel_task(session, resources.settings, key, task_id)
    return service.task_object(task, links=resources.links, settings=resources.settings)
