"""What the sync and async clients share: settings from the environment, the retry policy, request bodies,
answer parsing, and a Server-Sent Events parser (the SDK depends on httpx only)."""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reelgate_client._errors import ReelgateError, error_from_answer
from reelgate_client._types import FileList, FileQuota, ListedFile, Task, TaskEvent, TaskPage, UploadedFile

__version__ = "0.1.0"

ENV_API_KEY = "REELGATE_API_KEY"
ENV_BASE_URL = "REELGATE_BASE_URL"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# Refused before anything was done, or an upstream that may be back: worth another try after a while.
RETRY_STATUSES = frozenset({429, 502, 503})
# The contract asks clients to poll every 3 to 5 seconds.
POLL_INTERVAL_S = 3.0
# A stream that says nothing for this long is dead (the server sends a heartbeat every 15 s).
STREAM_READ_TIMEOUT_S = 45.0
STREAM_RECONNECTS = 5
FILES_API = "/api/v1/files"

ImageSource = str | os.PathLike[str] | bytes


@dataclass(frozen=True)
class Config:
    base_url: str
    api_key: str
    timeout_s: float
    max_retries: int
    max_retry_wait_s: float
    user_agent: str = f"reelgate-client/{__version__}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "User-Agent": self.user_agent}


def make_config(
    base_url: str | None, api_key: str | None, *, timeout_s: float, max_retries: int, max_retry_wait_s: float
) -> Config:
    key = api_key if api_key is not None else os.environ.get(ENV_API_KEY, "")
    if not key:
        raise ReelgateError(f"an API key is needed: pass api_key=... or set {ENV_API_KEY}")
    url = base_url if base_url is not None else os.environ.get(ENV_BASE_URL, DEFAULT_BASE_URL)
    if max_retries < 0:
        raise ValueError("max_retries must be 0 or more")
    return Config(url.rstrip("/"), key, timeout_s, max_retries, max_retry_wait_s)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds (RFC 9110: a number of seconds or an HTTP date); None if absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def backoff_s(attempt: int, headers: Mapping[str, str] | None, config: Config) -> float:
    """How long to wait before retry number `attempt` (1, 2, ...): the server's Retry-After when it gave one,
    else exponential backoff with jitter (0.5 s, 1 s, 2 s, ... up to 8 s); never more than max_retry_wait_s."""
    told = retry_after_s(headers) if headers is not None else None
    if told is not None:
        return min(told, config.max_retry_wait_s)
    ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
    return min(config.max_retry_wait_s, random.uniform(ceiling / 2, ceiling))


def check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_from_answer(response.status_code, response.headers, response.content)


def json_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ReelgateError(
            f"unexpected answer from {response.request.url}: {body!r:.200}", status=response.status_code
        )
    return body


def unwrap(response: httpx.Response) -> dict[str, Any]:
    """The `data` of a files API answer; `success: false` is an error even with a 2xx status (as the vendor's
    own client treats it)."""
    body = json_of(response)
    if body.get("success") is False:
        raise error_from_answer(int(body.get("code") or 500), response.headers, response.content)
    data = body.get("data")
    return data if isinstance(data, dict) else {}


# --- request bodies -----------------------------------------------------------------------------------------


def create_body(
    *,
    model: str,
    prompt: str,
    image_urls: list[str],
    aspect_ratio: str | None,
    duration: int | None,
    callback_url: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt, "image_urls": list(image_urls)}
    if aspect_ratio is not None:
        body["aspect_ratio"] = aspect_ratio
    if duration is not None:
        body["duration"] = duration
    if callback_url is not None:
        body["callback_url"] = callback_url
    return body


def new_idempotency_key() -> str:
    # One per create, reused by every retry of it: a create retried after a lost answer is charged once.
    return f"rgc-{uuid.uuid4().hex}"


_MAGIC = ((b"\xff\xd8\xff", "image/jpeg", "jpg"), (b"\x89PNG\r\n\x1a\n", "image/png", "png"))


def sniff(data: bytes) -> tuple[str, str]:
    for magic, mime, extension in _MAGIC:
        if data.startswith(magic):
            return mime, extension
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return "application/octet-stream", "bin"


@dataclass(frozen=True)
class Upload:
    """A multipart upload, built once so every retry sends the same bytes."""

    files: dict[str, tuple[str, bytes, str]]
    data: dict[str, str] = field(default_factory=dict)


def upload_of(source: ImageSource, *, file_name: str | None, upload_path: str | None) -> Upload:
    if isinstance(source, bytes):
        content = source
        mime, extension = sniff(content)
        name = file_name or f"upload.{extension}"
    else:
        path = Path(source)
        content = path.read_bytes()
        mime, _ = sniff(content)
        name = path.name
    data: dict[str, str] = {}
    if file_name is not None:
        data["fileName"] = file_name
    if upload_path is not None:
        data["uploadPath"] = upload_path
    return Upload(files={"file": (name, content, mime)}, data=data)


# --- answers --------------------------------------------------------------------------------------------------


def task_page(body: dict[str, Any]) -> TaskPage:
    return TaskPage(
        data=[Task.from_dict(item) for item in body.get("data", [])],
        has_more=bool(body.get("has_more")),
        next_cursor=body.get("next_cursor"),
    )


def file_list(data: dict[str, Any]) -> FileList:
    return FileList(total=int(data.get("total", 0)), files=[ListedFile.from_dict(f) for f in data.get("files", [])])


def file_quota(data: dict[str, Any]) -> FileQuota:
    return FileQuota(
        user_group=str(data.get("user_group", "")),
        used_files=int(data.get("used_files", 0)),
        max_files=int(data.get("max_files", 0)),
        remain_files=int(data.get("remain_files", 0)),
    )


def uploaded(data: dict[str, Any]) -> UploadedFile:
    return UploadedFile.from_dict(data)


def task_id_of(task_or_id: Task | str) -> str:
    return task_or_id.id if isinstance(task_or_id, Task) else task_or_id


def stream_headers(last_event_id: str | None) -> dict[str, str]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return headers


def stream_timeout(config: Config, left_s: float | None = None) -> httpx.Timeout:
    read = STREAM_READ_TIMEOUT_S if left_s is None else max(0.5, min(STREAM_READ_TIMEOUT_S, left_s))
    return httpx.Timeout(config.timeout_s, read=read)


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")


# --- Server-Sent Events -----------------------------------------------------------------------------------------


class SSEDecoder:
    """Lines in, events out (the WHATWG rules this API needs: `event`, `data`, `id`, `retry`, comments)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self.last_id = ""
        self.retry_ms: int | None = None

    def feed(self, line: str) -> TaskEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> TaskEvent | None:
        event, data = self._event or "message", "\n".join(self._data)
        self._event, self._data = "", []
        if not data:
            return None
        try:
            payload = json.loads(data)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        return TaskEvent.from_sse(self.last_id, event, payload)


def decode_lines(decoder: SSEDecoder, lines: Iterator[str]) -> Iterator[TaskEvent]:
    for line in lines:
        event = decoder.feed(line)
        if event is not None:
            yield event
