"""Verify a callback reelgate sent (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`
over `id.timestamp.body`, HMAC-SHA256 with the key's `whsec_...` secret) and read the task it carries."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from reelgate_client._errors import WebhookVerificationError
from reelgate_client._types import Task

SECRET_PREFIX = "whsec_"
# Standard Webhooks' recommendation: refuse a message signed more than 5 minutes away from now (replays).
DEFAULT_TOLERANCE_S = 300


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> Task:
    """The task of a genuine callback; WebhookVerificationError for a forged, altered or stale one.

    Pass the body exactly as received (bytes, before any JSON parsing) and its headers. During a secret
    rotation the callback carries a signature per secret; either secret verifies it."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
    except KeyError as missing:
        raise WebhookVerificationError(f"not a signed callback: the {missing.args[0]} header is missing") from None
    try:
        signed_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    moment = time.time() if now is None else now
    if abs(moment - signed_at) > tolerance_s:
        raise WebhookVerificationError(f"stale callback: signed {moment - signed_at:+.0f} s from now")
    raw = body.encode() if isinstance(body, str) else body
    expected = base64.b64encode(
        hmac.new(_key(secret), f"{message_id}.{signed_at}.".encode() + raw, hashlib.sha256).digest()
    )
    for entry in signatures.split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            break
    else:
        raise WebhookVerificationError("the signature does not match (wrong secret, or an altered body)")
    try:
        return Task.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookVerificationError(f"the callback body is not a task object: {exc}") from None


def _key(secret: str) -> bytes:
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not a whsec_... Standard Webhooks secret") from None
