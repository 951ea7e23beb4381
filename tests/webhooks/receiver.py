"""A real local HTTPS callback receiver for tests: a certificate from a throwaway CA (trustme) for "localhost",
a scripted answer per request, and a record of every request (arrival time, path, headers, body)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b'{"received": true}'
    # Seconds to hold the request before answering (a receiver that hangs).
    delay_s: float = 0.0
    # Or hold it until the test lets go (at most 30 s).
    hold: threading.Event | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    arrived_at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        arrived_at = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        reply = self.server.next_reply(self.path)
        self.server.record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, arrived_at))
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.hold is not None:
            reply.hold.wait(30)
        with contextlib.suppress(OSError):  # the client may have given up on us by now
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext, ca_file: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls
        self.ca_file = ca_file
        self.received: list[Received] = []
        # Answers by path, in order; when a path's script runs out, `default` answers.
        self.scripts: dict[str, list[Reply]] = {}
        self.default = Reply()
        self._lock = threading.Lock()
        self.arrived = threading.Condition(self._lock)

    def url(self, path: str = "/hook") -> str:
        return f"https://localhost:{self.server_address[1]}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self.scripts[path] = list(replies)

    def next_reply(self, path: str) -> Reply:
        with self._lock:
            queue = self.scripts.get(path.split("?")[0])
            return queue.pop(0) if queue else self.default

    def record(self, received: Received) -> None:
        with self.arrived:
            self.received.append(received)
            self.arrived.notify_all()

    def requests(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def wait_for(self, count: int, timeout_s: float, path: str | None = None) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self.arrived:
            while len(seen := [r for r in self.received if path is None or r.path == path]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} callback request(s), got {len(seen)}")
                self.arrived.wait(left)
            return seen

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Handshake in the handler thread, so one slow or failed handshake cannot block the accept loop.
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


@contextlib.contextmanager
def running_receiver(directory: Path) -> Iterator[Receiver]:
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(tls)
    ca_file = directory / "receiver-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    receiver = Receiver(tls, str(ca_file))
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()
