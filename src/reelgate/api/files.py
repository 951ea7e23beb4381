"""Result videos behind signed links (no API key needed: the signature is the permission)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from reelgate.api.auth import ResourcesDep
from reelgate.api.responses import errors
from reelgate.api.strict import reject_unknown_query
from reelgate.errors import ApiError
from reelgate.storage.local import InvalidKey

router = APIRouter(tags=["Results"])

EXPIRED = "File not found or link expired"


@router.get(
    "/v1/files/{key}",
    operation_id="getResultFile",
    summary="Download a result video through its signed 24-hour link (Range requests supported)",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The MP4"},
        206: {"description": "A byte range"},
        **errors(400, 404, 500),
    },
)
async def get_file(
    request: Request,
    key: str,
    resources: ResourcesDep,
    expires: Annotated[int, Query(description="Unix time the link expires")],
    signature: Annotated[str, Query(max_length=128)],
) -> FileResponse:
    reject_unknown_query(request, allowed=("expires", "signature"))
    if not resources.links.is_valid(key, expires_at=expires, signature=signature, now=time.time()):
        raise ApiError(404, EXPIRED, param="signature")
    try:
        path = resources.storage.path_for(key)
    except InvalidKey:
        raise ApiError(404, EXPIRED) from None
    if not path.is_file():
        raise ApiError(404, EXPIRED)
    return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})
