"""Create, query, list and cancel tasks (docs/contract.md sections 1, 2, 6), a task's event stream
(docs/events.md) and credit entries, and the quote of a create (price and frame) before making it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from reelgate.api.auth import KEY_SECURITY, CurrentCaller, CurrentKey, ResourcesDep, current_caller, resources_of
from reelgate.api.lean_route import LeanBodyRoute, LeanRoute
from reelgate.api.responses import FastJSONResponse, errors, model_answer
from reelgate.api.strict import reject_unknown_query
from reelgate.config import DEFAULT_MODEL
from reelgate.tasks import events, service
from reelgate.tasks.schemas import AspectRatio, CreateVideoRequest, TaskCredits, TaskList, TaskObject, VideoQuote

router = APIRouter(prefix="/v1", tags=["Video Generation"])


async def create_video_generation(
    request: Request,
    body: CreateVideoRequest,
    caller: CurrentCaller,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Same key and body within 24 h = the same task, charged once",
        ),
    ] = None,
) -> Any:
    # The resources from the request, not a dependency: one less for FastAPI to solve on a hot route.
    created = await service.create(resources_of(request), caller, body, idempotency_key=idempotency_key)
    # The task object as the service dumped it from TaskObject (exclude_none, as response_model_exclude_none).
    if created.replayed:
        return FastJSONResponse(created.task, headers={"Idempotent-Replayed": "true"})
    return FastJSONResponse(created.task)


# A LeanBodyRoute (api/lean_route.py): a plain create skips FastAPI's solving of its parameters (a tenth of its
# CPU); any other request, an invalid one included, is FastAPI's as before.
router.add_api_route(
    "/videos/generations",
    create_video_generation,
    methods=["POST"],
    response_model=TaskObject,
    response_model_exclude_none=True,
    operation_id="createVideoGeneration",
    summary="Create an image-to-video task",
    responses=errors(400, 401, 402, 403, 404, 409, 413, 422, 429, 500, 503),
    route_class_override=LeanBodyRoute,
)


@router.get(
    "/videos/quote",
    response_model=VideoQuote,
    operation_id="quoteVideoGeneration",
    summary="What a create with these choices would reserve for this key, and the frame its engine renders",
    responses=errors(400, 401, 403, 404, 429, 500, 502, 503),
)
async def quote_video_generation(
    request: Request,
    caller: CurrentCaller,
    resources: ResourcesDep,
    model: Annotated[str, Query(min_length=1, max_length=200, description="Public model name")] = DEFAULT_MODEL,
    aspect_ratio: Annotated[AspectRatio, Query(description="16:9, 9:16 or 1:1")] = "16:9",
    # An int checked by the service (a query string is text, and a Literal of ints refuses "5"); the enum
    # tells the document's readers the two values.
    duration: Annotated[int, Query(description="Seconds of video: 5 or 10", json_schema_extra={"enum": [5, 10]})] = 5,
) -> VideoQuote:
    reject_unknown_query(request, allowed=("model", "aspect_ratio", "duration"))
    return await service.quote(resources, caller, model=model, aspect_ratio=aspect_ratio, duration=duration)


async def get_task(task_id: str, request: Request) -> Response:
    # The poll, every few seconds per task: a LeanRoute (api/lean_route.py), with no dependencies (FastAPI
    # solves each one per request, and the key's and the resources' were a sixth of a poll's CPU,
    # docs/benchmarks.md). The key is checked first, as a dependency would be: the path's one parameter is a
    # string, so no validation error can come before it.
    key = (await current_caller(request)).key
    return model_answer(await service.get_task(resources_of(request), key, task_id), exclude_none=True)


router.add_api_route(
    "/tasks/{task_id}",
    get_task,
    methods=["GET"],
    response_model=TaskObject,
    response_model_exclude_none=True,
    operation_id="getTask",
    summary="Query a task",
    responses=errors(400, 401, 404, 429, 500, 503),
    openapi_extra=KEY_SECURITY,
    route_class_override=LeanRoute,
)


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
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE, description="Page size, 1..100")] = 20,
    after: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page")] = None,
) -> Response:
    reject_unknown_query(request, allowed=("limit", "after"))
    resources = resources_of(request)  # not a dependency: one less to solve on a hot route
    return model_answer(await service.list_tasks(resources, key, limit=limit, after=after), exclude_none=True)


@router.get(
    "/tasks/{task_id}/credits",
    response_model=TaskCredits,
    operation_id="getTaskCredits",
    summary="The task's credit entries: its reserve, then the capture or release that settled it",
    responses=errors(400, 401, 404, 429, 500, 503),
)
async def get_task_credits(request: Request, task_id: str, key: CurrentKey, resources: ResourcesDep) -> TaskCredits:
    reject_unknown_query(request, allowed=())
    return await service.task_credits(resources, key, task_id)


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
