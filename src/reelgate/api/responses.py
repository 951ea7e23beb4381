"""OpenAPI descriptions of the error answers each route can give, all in the contract's envelope."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from reelgate.tasks.schemas import ErrorBody, ErrorResponse

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
