"""One place that renders every non-2xx answer in the contract's envelope (docs/contract.md section 4):
our own ApiErrors, framework validation errors, unknown routes, wrong methods, oversized or non-JSON bodies,
and anything unexpected (500, logged with its stack here, never sent to the client)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgate.api.responses import FastJSONResponse
from reelgate.errors import ApiError
from reelgate.files.schemas import FILES_API_PREFIX

log = logging.getLogger(__name__)


def error_response(error: ApiError, path: str = "") -> JSONResponse:
    # FastJSONResponse: a 404 or 429 under load is as hot as the answer it replaces.
    """The contract's envelope; under the files API also the vendor's wrapper around it (`success: false`,
    `code`, `msg`), which is what the vendor's file client reads."""
    body: dict[str, object] = error.envelope()
    if path == FILES_API_PREFIX or path.startswith(FILES_API_PREFIX + "/"):
        body = {"success": False, "code": error.status, "msg": error.message, "data": None, **body}
    return FastJSONResponse(body, status_code=error.status, headers=error.headers)


def param_name(loc: Sequence[str | int]) -> str | None:
    """`("body", "image_urls", 1)` -> `image_urls[1]`; `("query", "limit")` -> `limit`."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part:
            name += f".{part}" if name else str(part)
    return name or None


def _validation_message(error: dict[str, Any], param: str | None) -> str:
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "Request body is not valid JSON"
    if kind == "missing":
        return f"Missing required field: {param}" if param else "Request body is required"
    if kind == "model_attributes_type" or (kind == "dict_type" and param is None):
        return "Request body must be a JSON object"
    detail = str(error.get("msg", "Invalid value"))
    return f"Invalid {param}: {detail}" if param else detail


def validation_error(exc: RequestValidationError) -> ApiError:
    first = exc.errors()[0] if exc.errors() else {}
    loc = first.get("loc", ())
    param = param_name(loc) if first.get("type") != "json_invalid" else None
    return ApiError(400, _validation_message(first, param), param=param)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 404:
            message = f"Route not found: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"Method {request.method} not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(ApiError(exc.status_code, message, headers=headers), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return error_response(
            ApiError(500, "Internal server error", fallback_suggestion="try again later"), request.url.path
        )


class BodySizeLimit:
    """Refuse bodies over the limit without reading them: by Content-Length at once, and by counting bytes
    for chunked or lying uploads (raised as an HTTP 413 that FastAPI passes through to our handler).
    `larger`: paths (regular expressions) whose bodies may be larger, with their own limit (video uploads)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, larger: Sequence[tuple[str, int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = [(re.compile(pattern), limit) for pattern, limit in larger]

    def limit_for(self, path: str) -> int:
        return next((limit for pattern, limit in self.larger if pattern.fullmatch(path)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope.get("path", ""))
        message = f"Request body too large: the limit is {max_bytes} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_large = int(value) > max_bytes
                except ValueError:
                    too_large = False
                if too_large:
                    await error_response(ApiError(413, message), scope.get("path", ""))(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > max_bytes:
                    raise StarletteHTTPException(413, message)
            return incoming

        await self.app(scope, limited_receive, send)
