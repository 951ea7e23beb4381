"""Bearer API keys. Every failure is the same 401 so a caller learns nothing about which keys exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reelgate.accounts import repository
from reelgate.accounts.keys import secret_matches, split_key
from reelgate.db.models import ApiKey
from reelgate.errors import ApiError
from reelgate.resources import Resources

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
INVALID_KEY_MESSAGE = "Invalid or expired token"


def resources_of(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def current_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiKey:
    if credentials is None:
        raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'")
    parts = split_key(credentials.credentials)
    if parts is None:
        raise ApiError(401, INVALID_KEY_MESSAGE)
    key_id, secret = parts
    async with resources_of(request).db.read() as session:
        key = await repository.get_key(session, key_id)
    if key is None or key.revoked_at is not None or not secret_matches(secret, key.secret_hash):
        raise ApiError(401, INVALID_KEY_MESSAGE)
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]
ResourcesDep = Annotated[Resources, Depends(resources_of)]
