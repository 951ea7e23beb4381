"""A live reelgate server process for the SDK and remote CLI tests (one per module: starting one takes
seconds), a local HTTPS callback receiver it trusts, and a local image server that can hold a download (so a
task stays cancellable for as long as a test needs)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reelgate.accounts.repository import KeyLimits
from reelgate.config import DEFAULT_MODEL, Settings
from tests.conftest import create_key, make_settings, migrate_db, settings_env, sqlite_backend_at
from tests.e2e.processes import Processes, free_port, ready, wait_until
from tests.images import astronaut, encode
from tests.webhooks.conftest import Key, new_key
from tests.webhooks.receiver import Receiver, running_receiver

MODELS = {DEFAULT_MODEL: ["motion"], "motion-b": ["motion"], "relay-only": ["kling"], "gpu-only": ["wan"]}
PNG = encode(astronaut()[:128, :128], "PNG")


class ImageServer(ThreadingHTTPServer):
    """GET /image.png answers PNG; GET /slow.png holds the answer `hold_s` seconds first."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ImageHandler)
        self.hold_s = 3.0
        self.release = threading.Event()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _ImageHandler(BaseHTTPRequestHandler):
    server: ImageServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            self.server.release.wait(self.server.hold_s)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)


@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    processes: Processes
    receiver: Receiver
    images: ImageServer

    def key(self, *, credits: float = 1000, **limits: Any) -> str:
        return create_key(self.settings, credits=credits, limits=KeyLimits(**limits) if limits else None)

    def signed_key(self) -> Key:
        return new_key(self.settings)


def start_server(
    directory: Path, processes: Processes, *, workers: int = 2, **overrides: Any
) -> tuple[str, Settings, dict[str, str]]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        directory / "home", sqlite_backend_at(directory), public_url=base_url, poll_interval_s=0.2, **overrides
    )
    migrate_db(settings)
    env = {
        **settings_env(settings),
        "REELGATE_MODELS": json.dumps(settings.models),
        "REELGATE_EGRESS_CA_BUNDLE": settings.egress_ca_bundle,
        "REELGATE_EVENTS_POLL_INTERVAL_S": "0.2",
        "REELGATE_ALLOW_PRIVATE_NETWORKS": str(settings.allow_private_networks).lower(),
    }
    processes.start(f"serve-{port}", ["serve", "--port", str(port), "--workers", str(workers)], env)
    wait_until(lambda: ready(base_url), 30, f"the server on {port} to start")
    return base_url, settings, env


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("live")
    processes = Processes(directory)
    images = ImageServer()
    threading.Thread(target=images.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with running_receiver(directory) as receiver:
            base_url, settings, _ = start_server(
                directory, processes, models=MODELS, egress_ca_bundle=receiver.ca_file, allow_private_networks=True
            )
            yield LiveServer(base_url, settings, processes, receiver, images)
    finally:
        processes.stop_all()
        images.shutdown()
        images.server_close()


def wait_for(condition: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
