"""Single byte ranges (RFC 9110 section 14) over any `Storage`: what players need to seek and resume.

A `Range` this cannot serve as one range (several ranges, another unit, a malformed header) is ignored and
the whole object is sent, as the RFC allows; a range wholly past the end is a 416 with `Content-Range:
bytes */size`.
"""

from __future__ import annotations

import re

from fastapi.responses import StreamingResponse

from reelgate.errors import ApiError
from reelgate.storage.base import Storage

_SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, stop) asked for by `header`, None for the whole object; ApiError(416) if unsatisfiable."""
    if header is None:
        return None
    match = _SINGLE_RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # a suffix: the last N bytes
        length = int(last)
        if length == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size
    start = int(first)
    stop = size if last == "" else min(size, int(last) + 1)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, stop


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(416, "Requested range not satisfiable", param="Range", headers={"Content-Range": f"bytes */{size}"})


def ranged_response(
    storage: Storage, key: str, size: int, range_header: str | None, *, media_type: str, headers: dict[str, str]
) -> StreamingResponse:
    wanted = byte_range(range_header, size)
    start, stop = wanted if wanted is not None else (0, size)
    answer_headers = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(stop - start)}
    if wanted is not None:
        answer_headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return StreamingResponse(
        storage.read_range(key, start, stop),
        status_code=206 if wanted is not None else 200,
        media_type=media_type,
        headers=answer_headers,
    )
