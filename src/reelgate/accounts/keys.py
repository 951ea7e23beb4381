"""API key format: `rg_<id>_<secret>`.

The id is public and indexed, so lookup never compares secrets in SQL; the secret is compared as a sha256
digest in constant time. Keys carry 256 bits of randomness, so a fast hash is the right tool (a slow
password hash would only add latency to every request).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from reelgate.webhooks.signing import generate_secret

KEY_PREFIX = "rg"
_ID_BYTES = 6
_SECRET_BYTES = 32


@dataclass(frozen=True)
class NewKey:
    key_id: str
    plaintext: str
    secret_hash: str
    # The key's callback signing secret (`whsec_...`), shown once beside the key.
    webhook_secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key() -> NewKey:
    key_id = secrets.token_hex(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES).replace("_", "x").replace("-", "y")
    return NewKey(
        key_id=key_id,
        plaintext=f"{KEY_PREFIX}_{key_id}_{secret}",
        secret_hash=hash_secret(secret),
        webhook_secret=generate_secret(),
    )


def split_key(plaintext: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    parts = plaintext.split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
