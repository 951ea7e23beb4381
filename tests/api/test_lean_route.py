"""LeanRoute: the endpoint is called with the request and its path strings, its errors reach the app's
handlers, its OpenAPI description is FastAPI's own, and an endpoint FastAPI would have had to solve is refused
when the route is made. LeanBodyRoute: every request, plain or not, is answered as FastAPI answers it, the key
dependency called once, and a shape it cannot serve is refused when the route is made."""

from __future__ import annotations

import json
from typing import Annotated, Any

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from reelgate.api.lean_route import LeanBodyRoute, LeanRoute
from reelgate.config import DEFAULT_MODEL
from reelgate.tasks.schemas import CreateVideoRequest


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


# --- LeanBodyRoute ---------------------------------------------------------------------------------------


async def _caller(request: Request) -> str:
    request.app.state.calls.append(request.url.path)
    token = request.headers.get("authorization", "")
    if token != "Bearer good":
        raise HTTPException(401, "bad key")
    return token


async def _create(
    request: Request,
    body: CreateVideoRequest,
    who: Annotated[str, Depends(_caller)],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> Response:
    return JSONResponse({"body": body.model_dump(mode="json"), "who": who, "key": idempotency_key})


def _create_shaped_app(route_class: type[APIRoute], calls: list[str]) -> FastAPI:
    """The create's shape (a JSON body model, a request-only key dependency, an optional header), under
    `route_class`, answering the full list of validation errors (with their inputs, NaN too), not our envelope."""
    app = FastAPI()
    app.state.calls = calls

    @app.exception_handler(RequestValidationError)
    async def every_error(request: Request, exc: RequestValidationError) -> Response:
        return PlainTextResponse(repr(exc.errors()), status_code=422)

    app.router.add_api_route("/create", _create, methods=["POST"], route_class_override=route_class)
    return app


_VALID = {"model": DEFAULT_MODEL, "prompt": "a slow pan", "image_urls": ["https://images.example.com/a.png"]}
_GOOD = {"Authorization": "Bearer good"}
_JSON = {**_GOOD, "Content-Type": "application/json"}
_REQUESTS: list[tuple[bytes, dict[str, str]]] = [
    (json.dumps(_VALID).encode(), _JSON),
    (json.dumps(_VALID).encode(), {"Content-Type": "application/json"}),  # no key
    (b"{not json", {"Content-Type": "application/json"}),  # no key and a bad body: the key first
    (b"{not json", _JSON),
    (b"", _JSON),
    (b"[]", _JSON),
    (b'"text"', _JSON),
    (json.dumps({**_VALID, "duration": 7}).encode(), _JSON),
    (json.dumps({**_VALID, "surprise": 1}).encode(), _JSON),
    (json.dumps({k: v for k, v in _VALID.items() if k != "prompt"}).encode(), _JSON),
    (json.dumps(_VALID).encode(), _GOOD),  # no Content-Type
    (json.dumps(_VALID).encode(), {**_GOOD, "Content-Type": "text/plain"}),
    (json.dumps(_VALID).encode(), {**_GOOD, "Content-Type": "application/json; charset=utf-8"}),
    (json.dumps(_VALID).encode(), {**_GOOD, "Content-Type": "APPLICATION/JSON"}),
    (json.dumps(_VALID).encode(), {**_GOOD, "Content-Type": "application/vnd.reel+json"}),
    (json.dumps(_VALID).encode(), {**_GOOD, "Content-Type": "application/json, text/plain"}),
    (b"\xef\xbb\xbf" + json.dumps(_VALID).encode(), _JSON),  # a byte-order mark: json.loads reads it, orjson not
    (json.dumps(_VALID).encode("utf-16"), _JSON),
    (json.dumps({**_VALID, "duration": 5}).replace("5", "NaN").encode(), _JSON),
    (json.dumps({**_VALID, "duration": 10**30}).encode(), _JSON),
    (b'{"model": "a", ' + json.dumps(_VALID).encode()[1:], _JSON),  # a duplicate key: the last one counts
    (json.dumps({**_VALID, "prompt": "\ud800"}).encode(), _JSON),
    (json.dumps(_VALID).encode(), {**_JSON, "Idempotency-Key": "k1"}),
    (json.dumps(_VALID).encode(), {**_JSON, "Idempotency-Key": "k" * 256}),
    (json.dumps(_VALID).encode(), {**_JSON, "Idempotency-Key": ""}),
    (b"{not json", {**_JSON, "Idempotency-Key": "k" * 256}),
]


def _answers(route_class: type[APIRoute], requests: list[tuple[bytes, dict[str, str]]]) -> list[tuple[int, bytes, int]]:
    calls: list[str] = []
    answers: list[tuple[int, bytes, int]] = []
    with TestClient(_create_shaped_app(route_class, calls)) as client:
        for content, headers in requests:
            before = len(calls)
            answer = client.post("/create", content=content, headers=headers)
            answers.append((answer.status_code, answer.content, len(calls) - before))
    return answers


def test_a_lean_body_route_answers_every_request_as_fastapi_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # Status, body byte for byte (FastAPI's validation errors with their inputs and locations) and the key
    # dependency called exactly once: the plain requests take the lean path, the others FastAPI's.
    solved: list[object] = []
    real_solve = fastapi.routing.solve_dependencies

    async def counted_solve(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs.get("request"))
        return await real_solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted_solve)
    lean = _answers(LeanBodyRoute, _REQUESTS)
    lean_solved = len(solved)
    assert lean == _answers(APIRoute, _REQUESTS)
    # FastAPI solves every request but those whose JSON it cannot read; the LeanBodyRoute none of the plain
    # ones (JSON, no Idempotency-Key, a body that validates; with a good key or none).
    plain = [0, 1, 8, 12, 13, 20]
    assert [lean[index][0] for index in plain] == [200, 401, 200, 200, 200, 200]
    assert lean_solved == len(solved) - lean_solved - len(plain)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["model", "prompt", "image_urls", "duration", "aspect_ratio", "callback_url", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
            max_leaves=6,
        ),
    ).map(lambda extra: {**_VALID, **extra})
)
def test_a_lean_body_route_validates_random_bodies_as_fastapi_does(candidate: dict[str, object]) -> None:
    requests = [(json.dumps(candidate).encode(), _JSON)]
    assert _answers(LeanBodyRoute, requests) == _answers(APIRoute, requests)


def test_a_lean_body_route_refuses_what_it_cannot_serve_when_made() -> None:
    async def endpoint_with_query(request: Request, body: CreateVideoRequest, page: int = 1) -> Response:
        return Response()

    async def needs(thing: Annotated[str, Header()]) -> str:
        return thing

    async def endpoint_with_deep_dependency(
        request: Request, body: CreateVideoRequest, found: Annotated[str, Depends(needs)]
    ) -> Response:
        return Response()

    async def endpoint_with_required_header(
        request: Request, body: CreateVideoRequest, must: Annotated[str, Header()]
    ) -> Response:
        return Response()

    async def endpoint_naming_a_dependency_twice(
        request: Request,
        body: CreateVideoRequest,
        who: Annotated[str, Depends(_caller)],
        again: Annotated[str, Depends(_caller)],
    ) -> Response:
        return Response()

    for endpoint in (
        endpoint_with_query,
        endpoint_with_deep_dependency,
        endpoint_with_required_header,
        endpoint_naming_a_dependency_twice,
    ):
        router = APIRouter()
        with pytest.raises(TypeError, match="LeanBodyRoute"):
            router.add_api_route("/x", endpoint, methods=["POST"], route_class_override=LeanBodyRoute)
