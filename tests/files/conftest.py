"""Fixtures of the files API tests: an app on a real database, keys, and a local HTTP server of images."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.images import astronaut, encode

FIELDS = {
    "file_id",
    "file_name",
    "original_name",
    "file_size",
    "mime_type",
    "upload_path",
    "file_url",
    "download_url",
    "upload_time",
    "expires_at",
}


def png(width: int = 300, height: int = 200) -> bytes:
    return encode(astronaut()[:height, :width], "PNG")


def jpeg(width: int = 300, height: int = 200) -> bytes:
    return encode(astronaut()[:height, :width], "JPEG")


def wrapped_ok(answer: Any) -> dict[str, Any]:
    """The vendor's wrapper of a success, and its `data`."""
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"success", "code", "msg", "data"} and body["success"] is True and body["code"] == 200
    data: dict[str, Any] = body["data"]
    return data


def wrapped_error(answer: Any, status: int) -> dict[str, Any]:
    """A refusal: the vendor's wrapper (what its file client reads) around the contract's envelope."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False and body["code"] == status and body["data"] is None
    assert body["msg"] == body["error"]["message"] and body["error"]["code"] == status
    error: dict[str, Any] = body["error"]
    return error


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, served directory): a plain HTTP server on loopback for `upload/url`."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        with contextlib.suppress(OSError):
            server.server_close()
