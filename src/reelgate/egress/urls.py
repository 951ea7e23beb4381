"""URL checks made when a task is created, so a bad URL is a 400 now rather than a failed task later.

They parse with httpx, the same parser the client uses, so what is validated here is what gets fetched.
The client checks again on every request: names can change their answers after creation.
"""

from __future__ import annotations

import re
from typing import Literal

import httpx

from reelgate.egress.addresses import is_internal_address, parse_ip_literal, resolve_checked
from reelgate.egress.errors import BlockedAddressError, EgressError
from reelgate.errors import ApiError

MAX_URL_CHARS = 2048
_DATA_IMAGE_PREFIX = re.compile(r"^data:image/[a-z0-9.+-]+(;[a-z0-9.+-]+=[a-z0-9.+-]+)*;base64,", re.IGNORECASE)


async def validate_callback_url(url: str, *, allow_private: bool, param: str = "callback_url") -> None:
    if len(url) > MAX_URL_CHARS:
        raise ApiError(400, f"{param} must be at most {MAX_URL_CHARS} characters", param=param)
    target = _parse(url, param)
    if target.scheme != "https":
        raise ApiError(400, f"{param} must be an https URL", param=param)
    if target.userinfo:
        raise ApiError(400, f"{param} must not contain credentials (user:password@)", param=param)
    host = target.raw_host.decode("ascii")
    port = target.port or 443
    try:
        await resolve_checked(host, port, allow_private=allow_private)
    except BlockedAddressError:
        raise ApiError(400, f"{param} points to a private or internal address", param=param) from None
    except EgressError:
        raise ApiError(400, f"{param} host {host} does not resolve", param=param) from None


def validate_image_url_syntax(url: str, *, param: str, allow_private: bool) -> Literal["http", "data"]:
    """What kind of image reference `url` is; refuses anything else without any network access."""
    if url[:5].lower() == "data:":
        if not _DATA_IMAGE_PREFIX.match(url):
            raise ApiError(400, f"{param} must be a data:image/...;base64, URI", param=param)
        return "data"
    if len(url) > MAX_URL_CHARS:
        raise ApiError(400, f"{param} must be at most {MAX_URL_CHARS} characters", param=param)
    target = _parse(url, param)
    if target.scheme not in ("http", "https"):
        raise ApiError(400, f"{param} must be an http(s) URL or a data:image/...;base64, URI", param=param)
    if not allow_private and _is_local_host(target.raw_host.decode("ascii")):
        raise ApiError(400, f"{param} points to a private or internal address", param=param)
    return "http"


def _parse(url: str, param: str) -> httpx.URL:
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        raise ApiError(400, f"{param} is not a valid URL", param=param) from None
    if not target.host:
        raise ApiError(400, f"{param} must be an absolute URL with a host", param=param)
    if target.port is not None and not 0 < target.port < 65536:
        raise ApiError(400, f"{param} has an invalid port", param=param)
    return target


def _is_local_host(host: str) -> bool:
    """What is known to be internal without asking DNS; names are checked again when they resolve."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    literal = parse_ip_literal(host)
    return literal is not None and is_internal_address(literal)
