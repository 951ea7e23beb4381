"""The SSRF-safe outbound HTTP client and the URL checks made when a task is created."""

from reelgate.egress.client import EgressClient, EgressResponse, FetchedBody
from reelgate.egress.errors import BlockedAddressError, EgressError, TooLargeError

__all__ = [
    "BlockedAddressError",
    "EgressClient",
    "EgressError",
    "EgressResponse",
    "FetchedBody",
    "TooLargeError",
]
