"""Failures of the outbound client, carrying messages safe to show to the user who gave us the URL."""

from __future__ import annotations


class EgressError(Exception):
    """An outbound request that could not be made or did not succeed.

    `message` is written for the user: it may name the host of their own URL but never an address we
    resolved it to, so the service's view of internal networks does not leak through error messages.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BlockedAddressError(EgressError):
    """The host is, or resolves to, an address the service must not reach (SSRF defence)."""


class TooLargeError(EgressError):
    """The response body is larger than the caller's limit."""
