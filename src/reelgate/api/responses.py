"""OpenAPI descriptions of the error answers each route can give, all in the contract's envelope."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from reelgate.tasks.schemas import ErrorBody, ErrorResponse

JSON = "application/json"
_DESCRIPTIONS = {
    400: "Invalid request parameters",
    401: "Unauthenticated, invalid or expired token",
    402: "Insufficient quota, recharge required",
    403: "Access denied",
    404: "Resource not found",
    405: "Method not allowed",
    409: "A request with this Idempotency-Key is still being processed",
    413: "Request body too large",
    416: "Requested range not satisfiable",
    422: "This Idempotency-Key was used with a different request body",
    429: "Rate limit exceeded",
    500: "Internal server error",
    502: "Upstream service error",
    503: "Service temporarily unavailable",
}


class FastJSONResponse(JSONResponse):
    """JSONResponse encoded by orjson: the same bytes as Starlette's `json.dumps(..., ensure_ascii=False,
    separators=(",", ":"))` for the values we send (str, int, float, bool, None, lists, dicts), several times
    faster. For answers built as dicts (a create's task object, the error envelope): a route that returns one
    skips FastAPI's validation of a dict it would only rebuild into the model it came from."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def model_answer(model: BaseModel, *, exclude_none: bool = False) -> Response:
    """`model` as its JSON answer, encoded by pydantic-core in one call. For hot routes: a model returned as
    is would be dumped to a dict, validated again against the response model and encoded from that dict, three
    passes for what this does in one (the route keeps `response_model` for its documentation)."""
    return Response(model.__pydantic_serializer__.to_json(model, exclude_none=exclude_none), media_type=JSON)


def errors(*statuses: int, meaning: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`meaning`: what a status means on these routes where it differs from the usual (409 on worker routes)."""
    described = {**_DESCRIPTIONS, **(meaning or {})}
    return {status: {"model": ErrorResponse, "description": described[status]} for status in statuses}


class WrappedErrorResponse(BaseModel):
    """An error of the files API: the vendor's wrapper (what its file client reads) around the contract's
    envelope (what every other client of this server reads)."""

    success: Literal[False] = False
    code: int
    msg: str
    data: None = None
    error: ErrorBody


def wrapped_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": WrappedErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}
