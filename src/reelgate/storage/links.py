"""Signed result links: HMAC-SHA256 over the object key and the expiry, so a link cannot be stretched or
pointed at another file. A tampered or expired link is indistinguishable from a missing file (404)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlencode

FILES_ROUTE = "/v1/files"


class LinkSigner:
    def __init__(self, secret: bytes, base_url: str) -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def signature(self, key: str, expires_at: int) -> str:
        message = f"{FILES_ROUTE}/{key}\n{expires_at}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url_for(self, key: str, *, expires_at: int) -> str:
        query = urlencode({"expires": expires_at, "signature": self.signature(key, expires_at)})
        return f"{self.base_url}{FILES_ROUTE}/{quote(key)}?{query}"

    def is_valid(self, key: str, *, expires_at: int, signature: str, now: float) -> bool:
        if now > expires_at:
            return False
        # Compared as bytes: compare_digest refuses non-ASCII str, and a link is user input.
        return hmac.compare_digest(self.signature(key, expires_at).encode(), signature.encode(errors="replace"))
