"""Bearer API keys as a dependency: every authenticated route gets the `Caller`, and every authenticated
answer carries the X-RateLimit-* headers (api/middleware.py adds them from the decision left here).

A `GET` is a read and spends the key's read bucket (`read_rpm`); every other method is a write (`rpm`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reelgate.accounts import service
from reelgate.accounts.records import KeyRecord
from reelgate.accounts.service import Caller
from reelgate.api.middleware import RATE_LIMIT_STATE
from reelgate.resources import Resources

_READ_METHODS = frozenset({"GET", "HEAD"})
bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")


def resources_of(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def _resources(request: Request) -> Resources:
    # A dependency, so async: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off on
    # every request for an attribute read (docs/benchmarks.md, the profile).
    return resources_of(request)


async def current_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    resources = resources_of(request)
    caller = await service.authenticate(
        resources.key_cache,
        credentials.credentials if credentials is not None else None,
        pricing=resources.pricing.current(),
        settings=resources.settings,
        limiter=resources.limiter,
        bucket="read" if request.method in _READ_METHODS else "write",
    )
    setattr(request.state, RATE_LIMIT_STATE, caller.decision)
    return caller


async def current_key(caller: Annotated[Caller, Depends(current_caller)]) -> KeyRecord:
    return caller.key


CurrentCaller = Annotated[Caller, Depends(current_caller)]
CurrentKey = Annotated[KeyRecord, Depends(current_key)]
ResourcesDep = Annotated[Resources, Depends(_resources)]
