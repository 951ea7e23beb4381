"""The one outbound HTTP client of the service: image downloads, callbacks, upstream media.

DNS rebinding defence: a name is resolved once, every address is checked, and the connection goes to
a checked address itself. The URL host is rewritten to that address while the Host header, TLS SNI and
certificate verification keep using the original name, so a second, different DNS answer between the
check and the connect has nothing to act on.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any

import certifi
import httpx

from reelgate.egress.addresses import IPAddress, parse_ip_literal, resolve_checked
from reelgate.egress.errors import EgressError, TooLargeError

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_EXCERPT_BYTES = 1024
_CHUNK_BYTES = 64 * 1024
# API answers (upstream status documents) are small; anything bigger is not an answer we can use.
API_ANSWER_MAX_BYTES = 1024 * 1024


class NotSentError(EgressError):
    """The request never reached the server (no connection, TLS refused): retrying it cannot duplicate it."""


@dataclass(frozen=True)
class FetchedBody:
    data: bytes
    content_type: str | None
    final_url: str


@dataclass(frozen=True)
class JsonResponse:
    status: int
    # The parsed JSON document, or None when the body was empty or not JSON.
    body: Any
    text_excerpt: str


@dataclass(frozen=True)
class EgressResponse:
    status: int
    headers: dict[str, str]
    body_excerpt: str
    elapsed_s: float


class EgressClient:
    """Built once per process; safe to share between tasks."""

    def __init__(self, *, allow_private_networks: bool, ca_bundle: str = "", user_agent: str = "reelgate/0.1") -> None:
        self._allow_private = allow_private_networks
        self._client = httpx.AsyncClient(
            verify=_ssl_context(ca_bundle),
            # Proxy variables would route requests through a host we never checked.
            trust_env=False,
            follow_redirects=False,
            # Pooled connections are keyed by address, not name: a TLS connection verified for one
            # name must never carry a request for another name that happens to share the address.
            limits=httpx.Limits(max_keepalive_connections=0),
            # Cookies would be stored against the connected address and replayed to other sites.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            headers={"User-Agent": user_agent},
        )

    async def __aenter__(self) -> EgressClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def check_url(self, url: str) -> None:
        """Refuse `url` as a request target (scheme, host, addresses) without sending anything."""
        target = _parse(url)
        await resolve_checked(_host(target), _port(target), allow_private=self._allow_private)

    async def fetch_bytes(self, url: str, *, max_bytes: int, timeout_s: float) -> FetchedBody:
        """GET `url`, following up to 5 redirects, each hop checked like the first one."""
        target = _parse(url)
        redirects = 0
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    async with self._send("GET", target, timeout_s=timeout_s) as response:
                        location = response.headers.get("location")
                        if response.status_code in _REDIRECT_STATUSES and location:
                            if redirects == MAX_REDIRECTS:
                                raise EgressError(f"too many redirects (more than {MAX_REDIRECTS})")
                            redirects += 1
                            target = _parse_redirect(target, location)
                            continue
                        data = await _read_capped(response, _host(target), max_bytes)
                        return FetchedBody(data, response.headers.get("content-type"), str(target))
        except TimeoutError:
            raise EgressError(f"download from {_host(target)} timed out after {timeout_s:g} s") from None

    async def post_json(self, url: str, *, body: bytes, headers: dict[str, str], timeout_s: float) -> EgressResponse:
        """One POST; a redirect is returned as the answer, never followed."""
        target = _parse(url)
        request_headers = {"Content-Type": "application/json", **headers}
        sending = self._send("POST", target, timeout_s=timeout_s, body=body, headers=request_headers)
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s), sending as response:
                excerpt = await _read_excerpt(response)
        except TimeoutError:
            raise EgressError(f"request to {_host(target)} timed out after {timeout_s:g} s") from None
        return EgressResponse(
            status=response.status_code,
            headers=dict(response.headers),
            body_excerpt=excerpt.decode("utf-8", errors="replace"),
            elapsed_s=time.monotonic() - started,
        )

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        timeout_s: float,
        body: object | None = None,
        max_bytes: int = API_ANSWER_MAX_BYTES,
    ) -> JsonResponse:
        """One JSON API call (GET, POST, PUT) with the same per-request address checks as every other request;
        a redirect is returned as the answer, never followed. The answer is read up to `max_bytes`.

        Raises `NotSentError` (or `BlockedAddressError`) when nothing was sent, so the caller may retry safely;
        any other `EgressError` means the server may have received the request (an ambiguous outcome).
        """
        target = _parse(url)
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        request_headers = {"Accept": "application/json", **headers}
        if payload is not None:
            request_headers.setdefault("Content-Type", "application/json")
        sending = self._send(method, target, timeout_s=timeout_s, body=payload, headers=request_headers)
        try:
            async with asyncio.timeout(timeout_s), sending as response:
                data = await _read_limited(response, _host(target), max_bytes)
        except TimeoutError:
            raise EgressError(f"request to {_host(target)} timed out after {timeout_s:g} s") from None
        text = data.decode("utf-8", errors="replace")
        try:
            parsed: Any = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        return JsonResponse(status=response.status_code, body=parsed, text_excerpt=text[:_EXCERPT_BYTES])

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        target: httpx.URL,
        *,
        timeout_s: float,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        host = _host(target)
        addresses = await resolve_checked(host, _port(target), allow_private=self._allow_private)
        response = await self._connect_any(method, target, addresses, timeout_s, body, headers or {})
        try:
            yield response
        except httpx.HTTPError as exc:
            raise _translate(exc, host) from None
        finally:
            await response.aclose()

    async def _connect_any(
        self,
        method: str,
        target: httpx.URL,
        addresses: list[IPAddress],
        timeout_s: float,
        body: bytes | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        host = _host(target)
        # A name can have records in both families while only one is reachable from here.
        for index, address in enumerate(addresses):
            request = self._client.build_request(
                method,
                target.copy_with(host=str(address)),
                content=body,
                headers={**headers, "Host": target.netloc.decode("ascii"), "Accept-Encoding": "identity"},
                timeout=timeout_s,
                # Certificates never name "example.com." with its root dot; SNI must not carry it.
                extensions={} if parse_ip_literal(host) is not None else {"sni_hostname": host.rstrip(".")},
            )
            try:
                return await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                if index == len(addresses) - 1 or _is_tls_failure(exc):
                    raise _translate(exc, host) from None
            except httpx.HTTPError as exc:
                raise _translate(exc, host) from None
        raise EgressError(f"{host} has no address to connect to")


def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


def _parse(url: str) -> httpx.URL:
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        raise EgressError("the URL is not valid") from None
    if target.scheme not in ("http", "https"):
        raise EgressError("only http and https URLs can be fetched")
    if not target.host:
        raise EgressError("the URL has no host")
    if not 0 < _port(target) < 65536:
        raise EgressError("the URL has an invalid port")
    return target


def _parse_redirect(current: httpx.URL, location: str) -> httpx.URL:
    try:
        joined = current.join(location)
    except httpx.InvalidURL:
        raise EgressError(f"{_host(current)} redirected to an invalid URL") from None
    if joined.scheme not in ("http", "https"):
        raise EgressError(f"{_host(current)} redirected to a non-http(s) URL")
    return _parse(str(joined))


def _host(target: httpx.URL) -> str:
    # The IDNA (ASCII) form: what DNS resolves and what certificates name.
    return target.raw_host.decode("ascii")


def _port(target: httpx.URL) -> int:
    return target.port or (443 if target.scheme == "https" else 80)


async def _read_capped(response: httpx.Response, host: str, max_bytes: int) -> bytes:
    if not 200 <= response.status_code < 300:
        raise EgressError(f"{host} answered HTTP {response.status_code}")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLargeError(f"the file is larger than the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    received = 0
    # The declared length is only a claim: the cap holds on what actually arrives.
    async for chunk in response.aiter_bytes(_CHUNK_BYTES):
        received += len(chunk)
        if received > max_bytes:
            raise TooLargeError(f"the file is larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_limited(response: httpx.Response, host: str, max_bytes: int) -> bytes:
    """The body whatever the status (an API's error answer is information too), capped like a download."""
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_bytes(_CHUNK_BYTES):
        received += len(chunk)
        if received > max_bytes:
            raise TooLargeError(f"the answer from {host} is larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_excerpt(response: httpx.Response) -> bytes:
    excerpt = b""
    async for chunk in response.aiter_raw(_EXCERPT_BYTES):
        excerpt += chunk
        if len(excerpt) >= _EXCERPT_BYTES:
            break
    return excerpt[:_EXCERPT_BYTES]


def _is_tls_failure(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _translate(exc: httpx.HTTPError, host: str) -> EgressError:
    """A short message for the user; httpx's own texts can name the internal address we connected to.

    Failures while connecting (including the TLS handshake) are `NotSentError`: no request left this host."""
    if isinstance(exc, httpx.ConnectTimeout):
        return NotSentError(f"{host} did not answer in time")
    if isinstance(exc, httpx.TimeoutException):
        return EgressError(f"{host} did not answer in time")
    if _is_tls_failure(exc):
        kind = NotSentError if isinstance(exc, httpx.ConnectError) else EgressError
        return kind(f"TLS handshake with {host} failed (certificate not valid for this host?)")
    if isinstance(exc, httpx.ConnectError):
        return NotSentError(f"could not connect to {host}")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return EgressError(f"the connection to {host} broke off")
    return EgressError(f"the request to {host} failed")
