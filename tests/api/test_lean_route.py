"""LeanRoute: the endpoint is called with the request and its path strings, its errors reach the app's
handlers, its OpenAPI description is FastAPI's own, and an endpoint FastAPI would have had to solve is refused
when the route is made."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from reelgate.api.lean_route import LeanRoute


class Refused(Exception):
    pass


def _app(router: APIRouter) -> FastAPI:
    app = FastAPI()
    app.include_router(router)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=404)

    return app


def test_the_endpoint_gets_its_path_strings_and_its_errors_reach_the_handlers() -> None:
    router = APIRouter(route_class=LeanRoute)

    @router.get("/things/{thing_id}/parts/{part}", summary="A part")
    async def part(thing_id: str, part: str, request: Request) -> Response:
        if thing_id == "missing":
            raise Refused(f"no {thing_id}")
        return JSONResponse({"thing": thing_id, "part": part, "method": request.method})

    app = _app(router)
    with TestClient(app) as client:
        assert client.get("/things/a%20b/parts/7").json() == {"thing": "a b", "part": "7", "method": "GET"}
        answer = client.get("/things/missing/parts/1")
        assert answer.status_code == 404 and answer.json() == {"error": "no missing"}
    operation = app.openapi()["paths"]["/things/{thing_id}/parts/{part}"]["get"]
    assert operation["summary"] == "A part"
    assert [p["name"] for p in operation["parameters"]] == ["thing_id", "part"]


def test_an_endpoint_that_returns_no_response_is_a_programming_error() -> None:
    router = APIRouter(route_class=LeanRoute)

    @router.get("/plain/{x}")
    async def plain(x: str, request: Request) -> dict[str, str]:
        return {"x": x}

    with TestClient(_app(router), raise_server_exceptions=True) as client, pytest.raises(TypeError, match="Response"):
        client.get("/plain/1")


async def _key(authorization: Annotated[str, Header()]) -> str:
    return authorization


@pytest.mark.parametrize("shape", ["query", "header", "body", "dependency", "int path", "sync", "no request"])
def test_an_endpoint_fastapi_would_have_to_solve_is_refused(shape: str) -> None:
    router = APIRouter(route_class=LeanRoute)
    with pytest.raises(TypeError, match=r"LeanRoute|plain string"):
        if shape == "query":

            @router.get("/q/{x}")
            async def query(x: str, request: Request, limit: int = 10) -> Response: ...

        elif shape == "header":

            @router.get("/h/{x}")
            async def header(x: str, request: Request, agent: Annotated[str, Header()]) -> Response: ...

        elif shape == "body":

            @router.post("/b/{x}")
            async def body(x: str, request: Request, payload: dict[str, int]) -> Response: ...

        elif shape == "dependency":

            @router.get("/d/{x}")
            async def dependency(x: str, request: Request, key: Annotated[str, Depends(_key)]) -> Response: ...

        elif shape == "int path":

            @router.get("/i/{x}")
            async def number(x: int, request: Request) -> Response: ...

        elif shape == "sync":

            @router.get("/s/{x}")
            def sync(x: str, request: Request) -> Response: ...

        else:

            @router.get("/n/{x}")
            async def no_request(x: str) -> Response: ...
