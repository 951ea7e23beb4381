"""Credential formats: API keys `rg_<id>_<secret>`, worker tokens `rgw_<id>_<secret>`.

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
WORKER_TOKEN_PREFIX = "rgw"
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


@dataclass(frozen=True)
class NewCredential:
    id: str
    plaintext: str
    secret_hash: str


def _new_credential(prefix: str) -> NewCredential:
    credential_id = secrets.token_hex(_ID_BYTES)
    # No "_" or "-" in the secret: "_" separates the parts, and a plain alphabet survives every shell.
    secret = secrets.token_urlsafe(_SECRET_BYTES).replace("_", "x").replace("-", "y")
    return NewCredential(credential_id, f"{prefix}_{credential_id}_{secret}", hash_secret(secret))


def generate_key() -> NewKey:
    credential = _new_credential(KEY_PREFIX)
    return NewKey(
        key_id=credential.id,
        plaintext=credential.plaintext,
        secret_hash=credential.secret_hash,
        webhook_secret=generate_secret(),
    )


def generate_worker_token() -> NewCredential:
    return _new_credential(WORKER_TOKEN_PREFIX)


def split_key(plaintext: str, prefix: str = KEY_PREFIX) -> tuple[str, str] | None:
    """(id, secret) of a well-formed credential of the kind `prefix` names, else None."""
    parts = plaintext.split("_")
    if len(parts) != 3 or parts[0] != prefix or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def is_worker_token(plaintext: str) -> bool:
    return plaintext.startswith(f"{WORKER_TOKEN_PREFIX}_")


def is_api_key(plaintext: str) -> bool:
    return plaintext.startswith(f"{KEY_PREFIX}_")


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
