"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from reelgate.api.auth import ResourcesDep
from reelgate.api.responses import errors
from reelgate.db import migrate
from reelgate.db.models import Task
from reelgate.engines.relay.base import RelayEngine
from reelgate.errors import ApiError
from reelgate.queue import repository as queue_repo
from reelgate.tasks.states import TaskStatus

router = APIRouter(tags=["Operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready to serve: database reachable and migrated", responses=errors(503))
async def readyz(resources: ResourcesDep) -> dict[str, object]:
    try:
        current = await migrate.is_current(resources.db)
    except Exception:
        raise ApiError(503, "Database unreachable", headers={"Retry-After": "5"}) from None
    if not current:
        raise ApiError(503, "Database schema is not current: run 'reelgate migrate'", headers={"Retry-After": "30"})
    engines = {name: engine.availability().ok for name, engine in resources.registry.engines.items()}
    # A relay whose credentials the upstream refused needs the operator; the API itself still serves.
    degraded = {
        name: reason
        for name, engine in resources.registry.engines.items()
        if isinstance(engine, RelayEngine) and (reason := engine.degraded_reason())
    }
    if degraded:
        return {"status": "degraded", "engines": engines, "degraded": degraded}
    return {"status": "ready", "engines": engines}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
async def metrics(resources: ResourcesDep) -> Response:
    metrics = resources.metrics
    async with resources.db.read() as session:
        counts = await queue_repo.count_by_status(session)
        depth = await session.scalar(
            select(func.count())
            .select_from(Task)
            .where(Task.status == TaskStatus.PENDING, Task.available_at <= time.time())
        )
    for status in TaskStatus:
        metrics.tasks.labels(str(status)).set(counts.get(status, 0))
    metrics.queue_depth.set(depth or 0)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
