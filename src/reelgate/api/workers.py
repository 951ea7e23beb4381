"""The worker routes (`/worker/v1/...`): how a remote worker (a GPU box anywhere, holding only the API's URL
and a worker token) registers, claims by long poll, heartbeats, uploads and finishes. Every call about a task
is fenced by the lease it names (queue/remote_leases.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reelgate.accounts import service as accounts
from reelgate.api.auth import ResourcesDep, resources_of
from reelgate.api.responses import errors
from reelgate.queue import remote_leases
from reelgate.queue.remote_leases import WorkerPass
from reelgate.queue.remote_schemas import (
    BeatAnswer,
    ClaimAnswer,
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    Fenced,
    Outcome,
    Registered,
    RegisterRequest,
    RetryRequest,
    StoredObject,
    TaskBeat,
    UploadRequest,
    UploadTarget,
    UpstreamRequest,
    WorkerBeat,
)

UPLOAD_ROUTE = "/worker/v1/tasks/{task_id}/upload/{stored}"
# The bodies that may be larger than REELGATE_MAX_BODY_MB (app.py's BodySizeLimit): uploads of videos and posters.
UPLOAD_PATHS = r"/worker/v1/tasks/[^/]+/upload/(video|poster)"

worker_bearer = HTTPBearer(auto_error=False, scheme_name="workerToken", description="Bearer rgw_... (a worker token)")


async def current_worker(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(worker_bearer)]
) -> WorkerPass:
    return await accounts.authenticate_worker(
        resources_of(request).db, credentials.credentials if credentials is not None else None
    )


CurrentWorker = Annotated[WorkerPass, Depends(current_worker)]
_FENCED = errors(400, 401, 403, 404, 409, 500, meaning={409: "The lease this call names is gone: stop the task"})

router = APIRouter(prefix="/worker/v1", tags=["Workers"])


@router.post(
    "/workers", response_model=Registered, summary="Register a remote worker", responses=errors(400, 401, 403, 500)
)
async def register(body: RegisterRequest, worker: CurrentWorker, resources: ResourcesDep) -> Registered:
    return await remote_leases.register(resources, worker, body)


@router.post(
    "/workers/{worker_id}/heartbeat",
    response_model=Registered,
    summary="The worker is alive: its engines and running jobs",
    responses=errors(400, 401, 403, 404, 500),
)
async def heartbeat_worker(
    worker_id: str, body: WorkerBeat, worker: CurrentWorker, resources: ResourcesDep
) -> Registered:
    return await remote_leases.heartbeat_worker(resources, worker, worker_id, body)


@router.delete(
    "/workers/{worker_id}",
    status_code=204,
    summary="A clean stop: the worker leaves the registry",
    responses=errors(401, 403, 404, 500),
)
async def deregister(worker_id: str, worker: CurrentWorker, resources: ResourcesDep) -> Response:
    await remote_leases.deregister(resources, worker, worker_id)
    return Response(status_code=204)


@router.post(
    "/claims",
    response_model=ClaimAnswer,
    summary="Claim tasks of the worker's engines (long poll, 30 s at most)",
    responses=errors(400, 401, 403, 404, 500),
)
async def claim(body: ClaimRequest, worker: CurrentWorker, resources: ResourcesDep) -> ClaimAnswer:
    return await remote_leases.claim(resources, worker, body)


@router.post(
    "/tasks/{task_id}/heartbeat",
    response_model=BeatAnswer,
    summary="Renew the lease and publish progress; says when the lease is gone or the task cancelled",
    responses=_FENCED,
)
async def heartbeat_task(task_id: str, body: TaskBeat, worker: CurrentWorker, resources: ResourcesDep) -> BeatAnswer:
    return await remote_leases.heartbeat_task(resources, worker, task_id, body)


@router.post(
    "/tasks/{task_id}/upstream",
    response_model=BeatAnswer,
    summary="Record a relay's upstream state",
    responses=_FENCED,
)
async def record_upstream(
    task_id: str, body: UpstreamRequest, worker: CurrentWorker, resources: ResourcesDep
) -> BeatAnswer:
    return await remote_leases.record_upstream(resources, worker, task_id, body)


@router.post(
    "/tasks/{task_id}/upload",
    response_model=UploadTarget,
    summary="Where to PUT this attempt's video or poster (a presigned bucket URL, or the API)",
    responses=_FENCED,
)
async def upload_target(
    request: Request, task_id: str, body: UploadRequest, worker: CurrentWorker, resources: ResourcesDep
) -> UploadTarget:
    api_url = resources.settings.public_url or str(request.base_url)
    return await remote_leases.upload_target(resources, worker, task_id, body, api_url=api_url)


@router.put(
    UPLOAD_ROUTE.removeprefix("/worker/v1"),
    status_code=204,
    summary="Upload this attempt's video or poster through the API (storage without presigned uploads)",
    responses={**_FENCED, **errors(413)},
)
async def put_upload(
    request: Request,
    task_id: str,
    stored: StoredObject,
    worker: CurrentWorker,
    resources: ResourcesDep,
    attempt: Annotated[int, Query(ge=1)],
    lease_owner: Annotated[str, Query(min_length=1, max_length=160)],
) -> Response:
    fence = Fenced(attempt=attempt, lease_owner=lease_owner)
    await remote_leases.receive_upload(resources, worker, task_id, stored, fence, request.stream())
    return Response(status_code=204)


@router.post(
    "/tasks/{task_id}/complete", response_model=Outcome, summary="End the task as completed", responses=_FENCED
)
async def complete(task_id: str, body: CompleteRequest, worker: CurrentWorker, resources: ResourcesDep) -> Outcome:
    return await remote_leases.complete(resources, worker, task_id, body)


@router.post(
    "/tasks/{task_id}/fail", response_model=Outcome, summary="End the task as failed, with its code", responses=_FENCED
)
async def fail(task_id: str, body: FailRequest, worker: CurrentWorker, resources: ResourcesDep) -> Outcome:
    return await remote_leases.fail(resources, worker, task_id, body)


@router.post(
    "/tasks/{task_id}/retry",
    response_model=Outcome,
    summary="Give the task back to the queue for later (an error on our side, or a busy upstream)",
    responses=_FENCED,
)
async def retry(task_id: str, body: RetryRequest, worker: CurrentWorker, resources: ResourcesDep) -> Outcome:
    return await remote_leases.retry(resources, worker, task_id, body)
