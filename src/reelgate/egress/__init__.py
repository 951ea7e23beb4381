"""The SSRF-safe outbound HTTP client and the URL checks made when a task is created.

The names below are imported when first used, not with the package: `egress.errors` is needed by code
that never fetches anything (decoding a local image in `reelgate generate` or a worker), and the client
brings httpx with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reelgate.egress.client import EgressClient, EgressResponse, FetchedBody
    from reelgate.egress.errors import BlockedAddressError, EgressError, TooLargeError

_HOMES = {
    "BlockedAddressError": "reelgate.egress.errors",
    "EgressClient": "reelgate.egress.client",
    "EgressError": "reelgate.egress.errors",
    "EgressResponse": "reelgate.egress.client",
    "FetchedBody": "reelgate.egress.client",
    "TooLargeError": "reelgate.egress.errors",
}

__all__ = [
    "BlockedAddressError",
    "EgressClient",
    "EgressError",
    "EgressResponse",
    "FetchedBody",
    "TooLargeError",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
