"""Stored objects behind signed links (no API key needed: the signature is the permission): result videos,
their posters, and uploaded files."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from reelgate.api.auth import ResourcesDep
from reelgate.api.ranges import ranged_response
from reelgate.api.responses import errors
from reelgate.api.strict import reject_unknown_query
from reelgate.errors import ApiError
from reelgate.storage.base import InvalidKey, ObjectMissing

router = APIRouter(tags=["Results"])

EXPIRED = "File not found or link expired"
# By the key's extension: the keys are ours (storage/keys.py), so the extension is what was stored.
MEDIA_TYPES = {"mp4": "video/mp4", "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@router.get(
    "/v1/files/{key:path}",
    operation_id="getResultFile",
    summary="Download a result video, its poster or an uploaded file through its signed link (Range requests)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"video/mp4": {}, "image/jpeg": {}}, "description": "The MP4, JPEG poster or image"},
        206: {"description": "A byte range"},
        **errors(400, 404, 416, 500),
    },
)
async def get_file(
    request: Request,
    key: str,
    resources: ResourcesDep,
    expires: Annotated[int, Query(description="Unix time the link expires")],
    signature: Annotated[str, Query(max_length=128)],
    range_header: Annotated[str | None, Header(alias="Range", include_in_schema=False)] = None,
    download: Annotated[bool, Query(description="Answer as an attachment (a download, not a view)")] = False,
) -> StreamingResponse:
    reject_unknown_query(request, allowed=("expires", "signature", "download"))
    if not resources.links.is_valid(key, expires_at=expires, signature=signature, now=time.time()):
        raise ApiError(404, EXPIRED, param="signature")
    try:
        size = await asyncio.to_thread(resources.storage.size, key)
    except (InvalidKey, ObjectMissing):
        raise ApiError(404, EXPIRED) from None
    headers = {"Cache-Control": "private, max-age=3600"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{key.rsplit("/", 1)[-1]}"'
    return ranged_response(
        resources.storage,
        key,
        size,
        range_header,
        media_type=MEDIA_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream"),
        headers=headers,
    )
