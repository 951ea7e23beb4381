"""Kling's API token: a JWT per request, HS256, `iss` = access key, `exp` = now + 1800 s, `nbf` = now - 5 s,
signed with the secret key (Kling API docs, "General Information > API Authentication", whose sample uses
PyJWT). Cached and re-issued a while before it expires, so a request never carries a token about to lapse.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import jwt as pyjwt

TOKEN_LIFETIME_S = 1800
NOT_BEFORE_SKEW_S = 5
# Re-issue when less than this is left: covers clock skew and a slow request.
REFRESH_MARGIN_S = 300


class KlingToken:
    def __init__(self, access_key: str, secret_key: str, *, clock: Callable[[], float] = time.time) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def current(self) -> str:
        with self._lock:
            now = self._clock()
            if now >= self._expires_at - REFRESH_MARGIN_S:
                issued = int(now)
                self._expires_at = issued + TOKEN_LIFETIME_S
                self._token = pyjwt.encode(
                    {"iss": self._access_key, "exp": issued + TOKEN_LIFETIME_S, "nbf": issued - NOT_BEFORE_SKEW_S},
                    self._secret_key,
                    algorithm="HS256",
                    headers={"typ": "JWT"},
                )
            return self._token

    def authorization(self) -> str:
        return f"Bearer {self.current()}"
