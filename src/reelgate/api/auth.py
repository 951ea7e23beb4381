"""Bearer API keys and the per-key request limit. Every authentication failure is the same 401 so a caller
learns nothing about which keys exist; every authenticated answer carries the X-RateLimit-* headers."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reelgate.accounts import repository
from reelgate.accounts.keys import secret_matches, split_key
from reelgate.accounts.limits import Decision
from reelgate.accounts.service import EffectiveLimits, effective_limits, key_is_usable
from reelgate.db.models import Account, ApiKey
from reelgate.errors import ApiError
from reelgate.resources import Resources

log = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
INVALID_KEY_MESSAGE = "Invalid or expired token"
# Where the rate-limit decision waits for the response (api/middleware.py RateLimitHeaders adds it).
RATE_LIMIT_STATE = "rate_limit"


def resources_of(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


@dataclass(frozen=True)
class Caller:
    key: ApiKey
    account: Account
    limits: EffectiveLimits


async def current_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    if credentials is None:
        raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'")
    parts = split_key(credentials.credentials)
    if parts is None:
        raise ApiError(401, INVALID_KEY_MESSAGE)
    key_id, secret = parts
    resources = resources_of(request)
    async with resources.db.read() as session:
        found = await repository.get_key_with_account(session, key_id)
    if found is None:
        raise ApiError(401, INVALID_KEY_MESSAGE)
    key, account = found
    if not key_is_usable(key, time.time()) or not secret_matches(secret, key.secret_hash):
        raise ApiError(401, INVALID_KEY_MESSAGE)
    limits = effective_limits(key, account, resources.pricing.current(), resources.settings)
    decision = await _count_request(resources, key.id, limits.rpm)
    setattr(request.state, RATE_LIMIT_STATE, decision)
    if not decision.allowed:
        raise ApiError(
            429,
            f"Rate limit exceeded: this key may make {decision.limit} requests per minute",
            fallback_suggestion=f"retry after {max(1, decision.reset_s)} seconds",
            headers=decision.headers(),
        )
    return Caller(key=key, account=account, limits=limits)


async def _count_request(resources: Resources, key_id: str, rpm: int) -> Decision:
    try:
        return await resources.limiter.hit(key_id, rpm)
    except Exception:
        # The shared counter (Redis) is down: refuse rather than let every key through unlimited.
        log.exception("rate limiter unavailable")
        raise ApiError(503, "Rate limiter unavailable", headers={"Retry-After": "5"}) from None


async def current_key(caller: Annotated[Caller, Depends(current_caller)]) -> ApiKey:
    return caller.key


CurrentCaller = Annotated[Caller, Depends(current_caller)]
CurrentKey = Annotated[ApiKey, Depends(current_key)]
ResourcesDep = Annotated[Resources, Depends(resources_of)]
