"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from reelgate.api.auth import ResourcesDep
from reelgate.api.responses import errors

router = APIRouter(tags=["Operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready to serve: database reachable and migrated", responses=errors(503))
async def readyz(resources: ResourcesDep) -> dict[str, Any]:
    return await resources.readiness()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
async def metrics(resources: ResourcesDep) -> Response:
    return Response(await resources.metrics_text(), media_type=CONTENT_TYPE_LATEST)
