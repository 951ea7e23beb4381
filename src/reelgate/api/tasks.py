"""Create, query, list and cancel tasks (docs/contract.md sections 1, 2, 6), and a task's event stream
(docs/events.md)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from reelgate.api.auth import CurrentCaller, CurrentKey, ResourcesDep
from reelgate.api.responses import FastJSONResponse, errors
from reelgate.api.strict import reject_unknown_query
from reelgate.tasks import events, service
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
    # The task object as the service dumped it from TaskObject (exclude_none, as response_model_exclude_none).
    if created.replayed:
        return FastJSONResponse(created.task, headers={"Idempotent-Replayed": "true"})
    return FastJSONResponse(created.task)


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


# How long a client waits before reconnecting a dropped stream (the SSE `retry:` field); a resume with
# Last-Event-ID then sends only what it missed.
RECONNECT_MS = 3000


@router.get(
    "/tasks/{task_id}/events",
    operation_id="streamTaskEvents",
    summary="Follow a task as Server-Sent Events: progress and status changes, then the task object at its end",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream (docs/events.md)"},
        **errors(400, 401, 404, 429, 500, 503),
    },
)
async def stream_task_events(
    request: Request,
    task_id: str,
    key: CurrentKey,
    resources: ResourcesDep,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=64, description="The id of the last event received: resume after it"),
    ] = None,
) -> EventSourceResponse:
    reject_unknown_query(request, allowed=())
    stream = await events.open_stream(resources, key, task_id, last_event_id=last_event_id)

    async def sse() -> AsyncIterator[ServerSentEvent]:
        async for event in stream:
            yield ServerSentEvent(
                data=json.dumps(event.data, separators=(",", ":")), event=event.event, id=event.id, retry=RECONNECT_MS
            )

    return EventSourceResponse(
        sse(),
        ping=resources.settings.events_heartbeat_s,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
    )


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
