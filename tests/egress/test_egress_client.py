"""EgressClient against real local HTTP and HTTPS servers (threads on 127.0.0.1, port 0)."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme

from reelgate.egress import addresses
from reelgate.egress.client import EgressClient
from reelgate.egress.errors import BlockedAddressError, EgressError, TooLargeError

PAYLOAD = bytes(range(256)) * 40
STREAM_CHUNK = b"x" * 65536
STREAM_LIMIT_BYTES = 1 << 30


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Seen:
    """What the servers observed, for assertions about what the client really sent."""

    hosts: list[str] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    posts: list[tuple[str, bytes, str]] = field(default_factory=list)
    stream_aborted: threading.Event = field(default_factory=threading.Event)
    release_body: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.hosts.append(self.headers.get("Host", ""))
        parts = urlsplit(self.path)
        route = parts.path.strip("/").split("/")
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        handler = getattr(self, f"route_{route[0]}", None)
        if handler is None:
            self.reply(404, b"no such route")
        else:
            handler(route[1:], query)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen.posts.append((self.path, body, self.headers.get("Content-Type", "")))
        if self.path == "/moved":
            self.send_response(307)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.reply(202, b'{"ok": true}' + b" " * 4000, content_type="application/json")

    def reply(self, status: int, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_payload(self, _: list[str], __: dict[str, str]) -> None:
        self.reply(200, PAYLOAD, content_type="image/png")

    def route_host(self, _: list[str], __: dict[str, str]) -> None:
        self.reply(200, self.headers.get("Host", "").encode())

    def route_headers(self, _: list[str], __: dict[str, str]) -> None:
        self.reply(200, str(dict(self.headers)).encode())

    def route_cookie(self, _: list[str], __: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Set-Cookie", "session=secret; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_status(self, args: list[str], __: dict[str, str]) -> None:
        self.reply(int(args[0]), b"nope")

    def route_redirect(self, _: list[str], query: dict[str, str]) -> None:
        self.redirect(query["to"])

    def route_chain(self, args: list[str], __: dict[str, str]) -> None:
        left = int(args[0])
        if left == 0:
            self.reply(200, b"end of chain")
        else:
            self.redirect(f"/chain/{left - 1}")

    def route_bytes(self, args: list[str], __: dict[str, str]) -> None:
        # No Content-Length: HTTP/1.0, the body ends when the connection closes.
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"b" * int(args[0]))

    def route_endless(self, _: list[str], __: dict[str, str]) -> None:
        self.send_response(200)
        self.end_headers()
        self.stream_until_aborted(lambda chunk: chunk)

    def route_chunked(self, _: list[str], __: dict[str, str]) -> None:
        self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.stream_until_aborted(lambda chunk: b"%x\r\n%s\r\n" % (len(chunk), chunk))

    def route_lying(self, _: list[str], __: dict[str, str]) -> None:
        # Declares far more than any limit and holds the body back: a client that waited for the body
        # would time out instead of refusing on the header.
        self.send_response(200)
        self.send_header("Content-Length", str(10**12))
        self.end_headers()
        self.wfile.flush()
        self.server.seen.release_body.wait(10)

    def route_slow(self, _: list[str], __: dict[str, str]) -> None:
        time.sleep(2)
        self.reply(200, b"late")

    def stream_until_aborted(self, frame: Callable[[bytes], bytes]) -> None:
        sent = 0
        try:
            while sent < STREAM_LIMIT_BYTES:
                self.wfile.write(frame(STREAM_CHUNK))
                sent += len(STREAM_CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            self.server.seen.stream_aborted.set()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, seen: Seen, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen = seen
        self.tls = tls

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # Handshake in the handler thread, so one failed handshake cannot block the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@dataclass
class Servers:
    http: Server
    https: Server
    seen: Seen
    ca_file: str


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    seen = Seen()
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "rebind.test").configure_cert(tls)

    def record_sni(_sock: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        seen.sni.append(server_name)

    tls.sni_callback = record_sni
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    started = [Server(seen), Server(seen, tls)]
    for server in started:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield Servers(started[0], started[1], seen, str(ca_file))
    for server in started:
        server.shutdown()
        server.server_close()


def private_ok(servers: Servers, **kwargs: Any) -> EgressClient:
    return EgressClient(allow_private_networks=True, ca_bundle=servers.ca_file, **kwargs)


async def fetch(client: EgressClient, url: str, max_bytes: int = 1 << 20, timeout_s: float = 5.0) -> bytes:
    async with client:
        return (await client.fetch_bytes(url, max_bytes=max_bytes, timeout_s=timeout_s)).data


@pytest.mark.anyio
async def test_loopback_refused_by_default(servers: Servers) -> None:
    for url in (
        f"http://127.0.0.1:{servers.http.port}/payload",
        f"http://localhost:{servers.http.port}/payload",
        f"http://[::ffff:127.0.0.1]:{servers.http.port}/payload",
        f"https://localhost:{servers.https.port}/payload",
    ):
        with pytest.raises(BlockedAddressError):
            await fetch(EgressClient(allow_private_networks=False, ca_bundle=servers.ca_file), url)
    assert servers.seen.hosts == []


@pytest.mark.anyio
async def test_loopback_allowed_with_flag(servers: Servers) -> None:
    async with private_ok(servers) as client:
        body = await client.fetch_bytes(f"http://localhost:{servers.http.port}/payload", max_bytes=1 << 20, timeout_s=5)
    assert body.data == PAYLOAD
    assert body.content_type == "image/png"
    assert body.final_url == f"http://localhost:{servers.http.port}/payload"
    # The connection went to the address, the Host header still names the host of the URL.
    assert servers.seen.hosts == [f"localhost:{servers.http.port}"]


@pytest.mark.anyio
async def test_https_verifies_the_name_through_sni_while_connecting_to_the_address(servers: Servers) -> None:
    url = f"https://localhost:{servers.https.port}/host"
    assert await fetch(private_ok(servers), url) == f"localhost:{servers.https.port}".encode()
    assert servers.seen.sni == ["localhost"]


@pytest.mark.anyio
async def test_https_rejects_untrusted_and_mismatched_certificates(servers: Servers) -> None:
    with pytest.raises(EgressError, match="TLS handshake with localhost failed"):
        await fetch(EgressClient(allow_private_networks=True), f"https://localhost:{servers.https.port}/")
    # The certificate names "localhost", not the address: verification follows the URL's host.
    with pytest.raises(EgressError, match=re.escape("TLS handshake with 127.0.0.1 failed")):
        await fetch(private_ok(servers), f"https://127.0.0.1:{servers.https.port}/")


@pytest.mark.anyio
async def test_dns_rebinding_cannot_swap_the_address_after_the_check(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "rebind.test" answers 127.0.0.1 once, then an unroutable address: a client that resolved twice
    # (once to check, once to connect) would fail to connect or, in a real attack, reach the second.
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1"])
    lookups: list[str] = []

    def rebinding_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            lookups.append(host)
            return real_getaddrinfo(next(answers, "10.255.255.1"), port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    body = await fetch(private_ok(servers), f"https://rebind.test:{servers.https.port}/host")
    assert body == f"rebind.test:{servers.https.port}".encode()
    assert lookups == ["rebind.test"]
    assert servers.seen.sni == ["rebind.test"]


@pytest.mark.anyio
async def test_redirect_to_an_internal_address_is_refused_on_the_hop(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every server here is internal; let 127.0.0.1 pass as "public" so the first hop goes through.
    real_check = addresses.is_internal_address
    monkeypatch.setattr(addresses, "is_internal_address", lambda ip: str(ip) != "127.0.0.1" and real_check(ip))
    port = servers.http.port
    client = EgressClient(allow_private_networks=False)
    assert await fetch(client, f"http://127.0.0.1:{port}/payload") == PAYLOAD
    for target in (f"http://127.0.0.2:{port}/payload", f"http://[::ffff:10.0.0.1]:{port}/", "http://[::1]/"):
        with pytest.raises(BlockedAddressError):
            await fetch(EgressClient(allow_private_networks=False), f"http://127.0.0.1:{port}/redirect?to={target}")


@pytest.mark.anyio
async def test_redirects_followed_up_to_five(servers: Servers) -> None:
    async with private_ok(servers) as client:
        body = await client.fetch_bytes(f"http://127.0.0.1:{servers.http.port}/chain/5", max_bytes=1000, timeout_s=5)
        assert body.data == b"end of chain"
        assert body.final_url.endswith("/chain/0")
        with pytest.raises(EgressError, match="too many redirects"):
            await client.fetch_bytes(f"http://127.0.0.1:{servers.http.port}/chain/6", max_bytes=1000, timeout_s=5)


@pytest.mark.anyio
async def test_redirect_to_other_schemes_refused(servers: Servers) -> None:
    url = f"http://127.0.0.1:{servers.http.port}/redirect?to=file:///etc/passwd"
    with pytest.raises(EgressError, match="non-http"):
        await fetch(private_ok(servers), url)


@pytest.mark.anyio
@pytest.mark.parametrize("route", ["endless", "chunked"])
async def test_body_cap_stops_reading_a_stream_without_length(servers: Servers, route: str) -> None:
    with pytest.raises(TooLargeError):
        await fetch(private_ok(servers), f"http://127.0.0.1:{servers.http.port}/{route}", max_bytes=100_000)
    # The server was cut off long before its 1 GiB: the client stopped reading and closed.
    assert servers.seen.stream_aborted.wait(10)


@pytest.mark.anyio
async def test_body_cap_is_exact(servers: Servers) -> None:
    base = f"http://127.0.0.1:{servers.http.port}/bytes"
    assert len(await fetch(private_ok(servers), f"{base}/5000", max_bytes=5000)) == 5000
    with pytest.raises(TooLargeError):
        await fetch(private_ok(servers), f"{base}/5001", max_bytes=5000)


@pytest.mark.anyio
async def test_declared_length_over_the_cap_fails_before_reading(servers: Servers) -> None:
    try:
        with pytest.raises(TooLargeError):
            await fetch(private_ok(servers), f"http://127.0.0.1:{servers.http.port}/lying", timeout_s=5)
    finally:
        servers.seen.release_body.set()


@pytest.mark.anyio
async def test_proxy_variables_are_ignored(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert await fetch(private_ok(servers), f"http://localhost:{servers.http.port}/payload") == PAYLOAD
    assert await fetch(private_ok(servers), f"https://localhost:{servers.https.port}/payload") == PAYLOAD


@pytest.mark.anyio
async def test_failures_are_short_messages_naming_only_the_users_host(servers: Servers) -> None:
    with pytest.raises(EgressError) as status:
        await fetch(private_ok(servers), f"http://localhost:{servers.http.port}/status/503")
    assert status.value.message == "localhost answered HTTP 503"

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(EgressError) as refused:
        await fetch(private_ok(servers), f"http://localhost:{closed_port}/")
    assert refused.value.message == "could not connect to localhost"

    with pytest.raises(EgressError) as slow:
        await fetch(private_ok(servers), f"http://localhost:{servers.http.port}/slow", timeout_s=0.5)
    assert "localhost" in slow.value.message and "127.0.0.1" not in slow.value.message


@pytest.mark.anyio
async def test_no_cookies_kept_and_no_compression_requested(servers: Servers) -> None:
    async with private_ok(servers) as client:
        await client.fetch_bytes(f"http://localhost:{servers.http.port}/cookie", max_bytes=100, timeout_s=5)
        sent = await client.fetch_bytes(f"http://localhost:{servers.http.port}/headers", max_bytes=10_000, timeout_s=5)
    headers = sent.data.decode()
    assert "Cookie" not in headers
    assert "'Accept-Encoding': 'identity'" in headers
    assert "'User-Agent': 'reelgate/0.1'" in headers


@pytest.mark.anyio
async def test_post_json_sends_once_and_returns_redirects_as_is(servers: Servers) -> None:
    async with private_ok(servers, user_agent="reelgate-test") as client:
        answer = await client.post_json(
            f"https://localhost:{servers.https.port}/hook",
            body=b'{"id": "t1"}',
            headers={"X-Signature": "abc"},
            timeout_s=5,
        )
        moved = await client.post_json(
            f"http://localhost:{servers.http.port}/moved", body=b"{}", headers={}, timeout_s=5
        )
    assert answer.status == 202
    assert answer.body_excerpt.startswith('{"ok": true}') and len(answer.body_excerpt) == 1024
    assert answer.headers["content-type"] == "application/json"
    assert answer.elapsed_s > 0
    assert moved.status == 307 and moved.headers["location"] == "/elsewhere"
    assert servers.seen.posts == [
        ("/hook", b'{"id": "t1"}', "application/json"),
        ("/moved", b"{}", "application/json"),
    ]


@pytest.mark.anyio
async def test_post_json_checks_the_address(servers: Servers) -> None:
    async with EgressClient(allow_private_networks=False) as client:
        with pytest.raises(BlockedAddressError):
            await client.post_json(f"http://localhost:{servers.http.port}/hook", body=b"{}", headers={}, timeout_s=5)
    assert servers.seen.posts == []


@pytest.mark.anyio
async def test_check_url() -> None:
    async with EgressClient(allow_private_networks=False) as client:
        await client.check_url("https://8.8.8.8/hook")
        with pytest.raises(BlockedAddressError):
            await client.check_url("https://localhost/hook")
        with pytest.raises(EgressError, match="does not resolve"):
            await client.check_url("https://no-such-host.invalid/hook")
        with pytest.raises(EgressError, match="only http and https"):
            await client.check_url("ftp://example.com/file")
        with pytest.raises(EgressError, match="no host"):
            await client.check_url("http:///path")
