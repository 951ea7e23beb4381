"""Bearer API keys as a dependency: every authenticated route gets the `Caller`, and every authenticated
answer carries the X-RateLimit-* headers (api/middleware.py adds them from the decision left here).

A `GET` is a read and spends the key's read bucket (`read_rpm`); every other method is a write (`rpm`).

Each dependency here takes the request alone, with no dependency of its own: FastAPI solves every level of
a dependency tree per request, and that solving was the largest cost of a poll (docs/benchmarks.md, the
profile). So the header is read here rather than through FastAPI's `HTTPBearer`, which the OpenAPI document
still names for these routes (`BEARER_SCHEME`, added by app.py from `KEY_DEPENDENCIES`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security.utils import get_authorization_scheme_param

from reelgate.accounts import service
from reelgate.accounts.records import KeyRecord
from reelgate.accounts.service import Caller
from reelgate.api.middleware import RATE_LIMIT_STATE
from reelgate.resources import Resources

_READ_METHODS = frozenset({"GET", "HEAD"})
# The OpenAPI security scheme of the routes that take an API key (app.py adds it to their operations).
BEARER_SCHEME = "bearerAuth"
BEARER_DESCRIPTION = "Authorization: Bearer <API key>"


def resources_of(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def _resources(request: Request) -> Resources:
    # A dependency, so async: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off on
    # every request for an attribute read (docs/benchmarks.md, the profile).
    return resources_of(request)


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, None without one (as FastAPI's HTTPBearer)."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if not token or scheme.lower() != "bearer":
        return None
    return token


async def current_caller(request: Request) -> Caller:
    resources = resources_of(request)
    caller = await service.authenticate(
        resources.key_cache,
        bearer_token(request),
        pricing=resources.pricing.current(),
        settings=resources.settings,
        limiter=resources.limiter,
        bucket="read" if request.method in _READ_METHODS else "write",
    )
    setattr(request.state, RATE_LIMIT_STATE, caller.decision)
    return caller


async def current_key(request: Request) -> KeyRecord:
    return (await current_caller(request)).key


# The dependencies that authenticate an API key: their routes' operations name BEARER_SCHEME.
KEY_DEPENDENCIES = (current_caller, current_key)
# What a route that calls `current_caller` itself (no dependency: the poll) gives as its `openapi_extra`.
KEY_SECURITY: dict[str, Any] = {"security": [{BEARER_SCHEME: []}]}
CurrentCaller = Annotated[Caller, Depends(current_caller)]
CurrentKey = Annotated[KeyRecord, Depends(current_key)]
ResourcesDep = Annotated[Resources, Depends(_resources)]
