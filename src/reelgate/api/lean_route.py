"""`LeanRoute` and `LeanBodyRoute`: APIRoutes whose endpoints FastAPI documents but does not call through its
request machinery (for a LeanBodyRoute: on its plain requests, below).

FastAPI runs every request of a route through `solve_dependencies` (path, query, header and body parameters,
each validated), then validates and encodes what the endpoint returns. For the poll, a handful of requests per
task every few seconds, that machinery was about a tenth of the CPU of a request (docs/benchmarks.md), for a
route whose one parameter is a path string and whose answer is a finished `Response`. A LeanRoute keeps the
route's OpenAPI description (built from the endpoint's signature as for any route) and calls the endpoint
with the request and its path parameters only. Errors raised by the endpoint go to the app's handlers as
before: they are raised inside Starlette's request handling, where the exception middleware catches them.

Only endpoints with nothing for FastAPI to solve may use it; anything else is refused when the route is made
(`APIRoute.get_route_handler` is FastAPI's documented place to change how a route handles requests).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response, params
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.convertors import StringConvertor
from starlette.exceptions import HTTPException


class LeanRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        _require_lean(self)

        async def handle(request: Request) -> Response:
            answer = await endpoint(request=request, **request.path_params)
            if not isinstance(answer, Response):  # a programming error, not a client's: caught in any test
                raise TypeError(f"{self.path}: a LeanRoute endpoint must return a Response, not {type(answer)}")
            return answer

        return handle


def _require_lean(route: APIRoute) -> None:
    dependant = route.dependant
    solved = dependant.query_params + dependant.header_params + dependant.cookie_params + dependant.body_params
    if solved or dependant.dependencies or route.dependencies or dependant.request_param_name != "request":
        raise TypeError(f"{route.path}: a LeanRoute endpoint takes its path parameters and `request` only")
    if not inspect.iscoroutinefunction(route.endpoint):
        raise TypeError(f"{route.path}: a LeanRoute endpoint must be a coroutine function")
    # Passed as Starlette parsed them: only a plain string needs no validation FastAPI would have done.
    for param in dependant.path_params:
        if param.field_info.annotation is not str or not isinstance(
            route.param_convertors[param.name], StringConvertor
        ):
            raise TypeError(f"{route.path}: path parameter {param.name!r} must be a plain string")


class LeanBodyRoute(APIRoute):
    """An APIRoute for a JSON body, request-only dependencies and optional headers, whose plain requests skip
    FastAPI's per-request solving (a tenth of a create's CPU, docs/benchmarks.md) and whose others are
    FastAPI's own.

    A plain request is one whose optional headers are all absent, whose Content-Type is `application/json`
    (with parameters or not), and whose body orjson reads and the body field validates (FastAPI's own
    `ModelField.validate`, with FastAPI's location): FastAPI would accept it and pass the same value, because
    what orjson reads, `json.loads` (FastAPI's) reads the same (orjson refuses more: NaN, huge numbers, lone
    surrogates, other encodings, a byte-order mark). The dependencies are then called with the request, in
    order, and the endpoint with the results. Any other request, invalid or unusual, is handed to FastAPI's
    handler unchanged (the body it reads is the one already read), so every error is FastAPI's, in FastAPI's
    order: a body that is not JSON first, then the dependencies (the key), then the validation."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        endpoint = self.endpoint
        body_field, header_names, dependencies = _lean_body_shape(self)
        header_defaults = {field.name: None for field in self.dependant.header_params}
        headers = tuple(name.lower() for name in header_names)
        request_name = str(self.dependant.request_param_name)

        async def handle(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if content_type is None or any(name in request.headers for name in headers):
                return await standard(request)
            # As email.message reads the type (FastAPI's test for a JSON body): before any parameter.
            if content_type.split(";", 1)[0].strip().lower() != "application/json":
                return await standard(request)
            try:
                raw = await request.body()
            except HTTPException:
                raise  # a body over the limit: FastAPI passes it through too
            except Exception:
                return await standard(request)  # FastAPI's answer to a body it could not read
            try:
                parsed = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return await standard(request)
            if not isinstance(parsed, dict):
                return await standard(request)
            body, errors = body_field.validate(parsed, {}, loc=("body",))
            if errors:
                return await standard(request)
            values: dict[str, Any] = {request_name: request, body_field.name: body, **header_defaults}
            for name, dependency in dependencies:
                values[name] = await dependency(request)
            answer = await endpoint(**values)
            if not isinstance(answer, Response):  # a programming error, not a client's: caught in any test
                raise TypeError(f"{self.path}: a LeanBodyRoute endpoint must return a Response, not {type(answer)}")
            return answer

        return handle


def _lean_body_shape(
    route: APIRoute,
) -> tuple[Any, tuple[str, ...], tuple[tuple[str, Callable[[Request], Awaitable[Any]]], ...]]:
    """The body field, the optional headers' names and the (name, dependency) pairs of a route a
    LeanBodyRoute can serve; TypeError for any other."""
    dependant = route.dependant
    body_field = route.body_field
    refused = f"{route.path}: a LeanBodyRoute endpoint takes `request`, one JSON body model, optional headers"
    model = body_field.field_info.annotation if body_field is not None else None
    if (
        dependant.path_params
        or dependant.query_params
        or dependant.cookie_params
        or route.dependencies
        or dependant.request_param_name != "request"
        or body_field is None
        or len(dependant.body_params) != 1
        or route._embed_body_fields
        or not isinstance(body_field.field_info, params.Body)
        or isinstance(body_field.field_info, params.Form)
        or not (isinstance(model, type) and issubclass(model, BaseModel))
        or not inspect.iscoroutinefunction(route.endpoint)
    ):
        raise TypeError(refused)
    for field in dependant.header_params:
        if field.field_info.is_required() or field.field_info.default is not None:
            raise TypeError(f"{refused}: header {field.alias!r} must be optional, default None")
    dependencies: list[tuple[str, Callable[[Request], Awaitable[Any]]]] = []
    for sub in dependant.dependencies:
        if sub.dependencies or sub.body_params or sub.query_params or sub.header_params or sub.path_params:
            raise TypeError(f"{refused}: dependency {sub.name!r} must take the request only")
        if sub.call is None or not inspect.iscoroutinefunction(sub.call) or sub.request_param_name is None:
            raise TypeError(f"{refused}: dependency {sub.name!r} must be a coroutine function of the request")
        if any(sub.call is known for _, known in dependencies):
            # FastAPI calls a dependency named twice once per request (its cache); this would call it twice.
            raise TypeError(f"{refused}: dependency {sub.name!r} is named twice")
        dependencies.append((str(sub.name), sub.call))
    return body_field, tuple(field.alias for field in dependant.header_params), tuple(dependencies)
