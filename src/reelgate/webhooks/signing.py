"""Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

Signing goes through the `standardwebhooks` package itself, so what we send is exactly what its `verify`
(and every other Standard Webhooks library) accepts. While a key's secret is being rotated, the message is
signed with both secrets: the header carries several space-separated `v1,...` entries and a receiver that
knows either secret verifies it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
# 256 bits, the size of the HMAC-SHA256 key itself.
_SECRET_BYTES = 32


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def signature_headers(
    *, webhook_id: str, timestamp_s: int, body: str, signing_secrets: Sequence[str]
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt, signed with every secret given (current first)."""
    if not signing_secrets:
        raise ValueError("at least one secret is needed to sign a webhook")
    signed_at = datetime.fromtimestamp(timestamp_s, UTC)
    signatures = [Webhook(secret).sign(webhook_id, signed_at, body) for secret in signing_secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": " ".join(signatures),
    }
