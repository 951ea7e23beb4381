"""Property-based conformance: schemathesis generates requests from our own /openapi.json and checks every
answer against it (no 5xx, documented status codes, bodies matching their schemas), against a real uvicorn
server on loopback with a real database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, assume, settings
from schemathesis.checks import positive_data_acceptance

from reelgate.app import create_app
from reelgate.config import Settings
from tests.conftest import Backend, advertise_worker, auth, create_key, make_settings, migrate_db

schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
_FRAMING_HEADERS = {"content-length", "transfer-encoding", "host", "connection", "expect", "upgrade"}


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process owns the signals
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    home = tmp_path_factory.mktemp("schemathesis")
    backend = Backend("sqlite", f"sqlite+aiosqlite:///{home / 'reelgate.db'}", "")
    app_settings = make_settings(Path(home), backend, allow_private_networks=False)
    migrate_db(app_settings)
    advertise_worker(app_settings)  # creates are accepted (and stay pending): a worker is up elsewhere
    key = create_key(app_settings, credits=10**9)
    server = _Server(
        uvicorn.Config(create_app(app_settings, workers=0), host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", key
    server.should_exit = True
    thread.join(timeout=10)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi(case: Any, server: tuple[str, str]) -> None:
    base_url, key = server
    headers = auth(key) if case.operation.path.startswith(("/v1/", "/api/v1/")) else {}
    # Acceptance of schema-valid data is not checked: a URL can match the schema and still be refused for
    # reasons no schema states (a name that does not resolve, a data: URI that is not an image); those
    # answers are documented 400s. Every other check (5xx, status codes, bodies, headers) runs.
    # A query key whose value is an empty list is not sent at all (httpx writes nothing for it): a case made
    # "negative" by such a key is a valid request on the wire, and its 200 is no acceptance of bad data.
    assume(not any(value == [] for value in (case.query or {}).values()))
    # Headers that frame the HTTP message itself, which a negative case may add with a random value (an invalid
    # Content-Length): uvicorn refuses such a request before any app sees it, with its own text/plain 400.
    assume(not any(name.lower() in _FRAMING_HEADERS for name in (case.headers or {})))
    case.call_and_validate(base_url=base_url, headers=headers, excluded_checks=[positive_data_acceptance])
