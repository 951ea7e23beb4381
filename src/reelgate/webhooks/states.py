"""States of a delivery series and the kinds of failed attempts, as stored and as shown in the delivery log."""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    PENDING = "pending"  # an attempt is due at next_attempt_at (or running, under a lease)
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # given up after the last attempt


class ErrorKind(StrEnum):
    """Why an attempt failed; an attempt with a 2xx answer has none."""

    HTTP_STATUS = "http_status"  # answered, but not 2xx (nor 3xx)
    REDIRECT = "redirect"  # any 3xx: a failure, never followed
    TIMEOUT = "timeout"  # no complete answer within callback_timeout_s
    CONNECTION = "connection"  # refused, reset, or broken off
    TLS = "tls"  # handshake or certificate verification failed
    DNS = "dns"  # the name does not resolve
    BLOCKED_ADDRESS = "blocked_address"  # resolves to an internal address (checked before every attempt)
    INVALID_URL = "invalid_url"
    REQUEST_ERROR = "request_error"  # the request could not be made (no host, no address...); see the message
    INTERRUPTED = "interrupted"  # the delivering process stopped mid-attempt; the attempt is run again
    INTERNAL = "internal"  # a bug on our side, logged with its stack
