"""`LeanRoute`: an APIRoute whose endpoint FastAPI documents but does not call through its request machinery.

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
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.convertors import StringConvertor


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
