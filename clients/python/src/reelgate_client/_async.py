"""The asynchronous client: `AsyncClient(base_url=..., api_key=...)`, the same methods as `Client`, awaited."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from reelgate_client import _core
from reelgate_client._core import Config, ImageSource, Upload
from reelgate_client._errors import APIConnectionError, ReelgateError, WaitTimeoutError
from reelgate_client._sync import _finished as _sync_finished
from reelgate_client._types import FileList, FileQuota, Task, TaskEvent, TaskPage, UploadedFile

ProgressCallback = Callable[[TaskEvent], None]


class AsyncClient:
    """A reelgate API client for asyncio. `api_key` defaults to REELGATE_API_KEY, `base_url` to REELGATE_BASE_URL.

    Answers 429, 502 and 503 are retried (`max_retries` times) after the server's Retry-After, or with
    exponential backoff; a create is sent with one Idempotency-Key for all its retries, so it is charged once.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._config = _core.make_config(
            base_url, api_key, timeout_s=timeout_s, max_retries=max_retries, max_retry_wait_s=max_retry_wait_s
        )
        self._http = http_client or httpx.AsyncClient(timeout=timeout_s)
        self._owns_http = http_client is None
        self.videos = AsyncVideos(self)
        self.tasks = AsyncTasks(self)
        self.files = AsyncFiles(self)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def config(self) -> Config:
        return self._config

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        upload: Upload | None = None,
        retry_transport: bool = True,
    ) -> httpx.Response:
        """One call, with the retries: 429/502/503 always (the server did nothing), a broken connection only
        where repeating is safe (`retry_transport`: reads, and creates under their Idempotency-Key)."""
        config = self._config
        for attempt in range(config.max_retries + 1):
            try:
                response = await self._http.request(
                    method,
                    config.base_url + path,
                    json=json,
                    params=params,
                    headers={**config.headers, **(headers or {})},
                    files=upload.files if upload is not None else None,
                    data=upload.data if upload is not None else None,
                )
            except httpx.TransportError as exc:
                if not retry_transport or attempt == config.max_retries:
                    raise APIConnectionError(f"cannot reach {config.base_url}: {exc}") from exc
                await self._sleep(_core.backoff_s(attempt + 1, None, config))
                continue
            if response.status_code in _core.RETRY_STATUSES and attempt < config.max_retries:
                await self._sleep(_core.backoff_s(attempt + 1, response.headers, config))
                continue
            _core.check(response)
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    @asynccontextmanager
    async def _event_stream(
        self, task_id: str, last_event_id: str | None, left_s: float | None
    ) -> AsyncIterator[httpx.Response]:
        config = self._config
        url = f"{config.base_url}/v1/tasks/{quote(task_id, safe='')}/events"
        delay = 0.0
        for attempt in range(config.max_retries + 1):
            async with self._http.stream(
                "GET",
                url,
                headers={**config.headers, **_core.stream_headers(last_event_id)},
                timeout=_core.stream_timeout(config, left_s),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    if response.status_code in _core.RETRY_STATUSES and attempt < config.max_retries:
                        delay = _core.backoff_s(attempt + 1, response.headers, config)
                    else:
                        _core.check(response)
                else:
                    yield response
                    return
            await self._sleep(delay)


class AsyncVideos:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        model: str,
        prompt: str,
        image_urls: list[str],
        aspect_ratio: str | None = None,
        duration: int | None = None,
        callback_url: str | None = None,
    ) -> Task:
        """Create a task (`pending`); one Idempotency-Key for the create and all its retries."""
        body = _core.create_body(
            model=model,
            prompt=prompt,
            image_urls=image_urls,
            aspect_ratio=aspect_ratio,
            duration=duration,
            callback_url=callback_url,
        )
        response = await self._client._request(
            "POST", "/v1/videos/generations", json=body, headers={"Idempotency-Key": _core.new_idempotency_key()}
        )
        return Task.from_dict(_core.json_of(response))

    async def create_and_wait(
        self,
        *,
        model: str,
        prompt: str,
        image_urls: list[str],
        aspect_ratio: str | None = None,
        duration: int | None = None,
        callback_url: str | None = None,
        timeout_s: float = 600,
        on_progress: ProgressCallback | None = None,
    ) -> Task:
        """Create, then follow the task's event stream (polling if no stream can be followed) until it ends:
        the completed task, or TaskFailedError carrying the failed one."""
        task = await self.create(
            model=model,
            prompt=prompt,
            image_urls=image_urls,
            aspect_ratio=aspect_ratio,
            duration=duration,
            callback_url=callback_url,
        )
        return await self._client.tasks.wait(task.id, timeout_s=timeout_s, on_progress=on_progress)


class AsyncTasks:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, task_id: str) -> Task:
        response = await self._client._request("GET", f"/v1/tasks/{quote(task_id, safe='')}")
        return Task.from_dict(_core.json_of(response))

    async def list(self, *, limit: int = 20, after: str | None = None) -> TaskPage:
        """One page of the key's tasks, newest first; pass `next_cursor` as `after` for the next."""
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return _core.task_page(_core.json_of(await self._client._request("GET", "/v1/tasks", params=params)))

    async def iter_all(self, *, page_size: int = 100) -> AsyncIterator[Task]:
        """Every task of the key, newest first, page after page."""
        after: str | None = None
        while True:
            page = await self.list(limit=page_size, after=after)
            for task in page.data:
                yield task
            if not page.has_more or page.next_cursor is None:
                return
            after = page.next_cursor

    async def cancel(self, task_id: str) -> Task:
        response = await self._client._request(
            "POST", f"/v1/tasks/{quote(task_id, safe='')}/cancel", retry_transport=False
        )
        return Task.from_dict(_core.json_of(response))

    async def stream(
        self, task_id: str, *, last_event_id: str | None = None, timeout_s: float | None = None
    ) -> AsyncGenerator[TaskEvent, None]:
        """The task's events until its terminal one; a dropped connection is resumed with Last-Event-ID."""
        client = self._client
        deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        last = last_event_id
        reconnects = 0
        while True:
            left = deadline - time.monotonic() if deadline is not None else None
            if left is not None and left <= 0:
                raise WaitTimeoutError(task_id, timeout_s or 0)
            try:
                async with client._event_stream(task_id, last, left) as response:
                    decoder = _core.SSEDecoder()
                    async for line in response.aiter_lines():
                        event = decoder.feed(line)
                        if event is None:
                            continue
                        last, reconnects = event.id or last, 0
                        yield event
                        if event.is_terminal:
                            return
            except httpx.TransportError as exc:
                if reconnects >= _core.STREAM_RECONNECTS:
                    raise APIConnectionError(f"the event stream of {task_id} keeps breaking: {exc}") from exc
            reconnects += 1
            await client._sleep(_core.backoff_s(reconnects, None, client.config))

    async def wait(self, task_id: str, *, timeout_s: float = 600, on_progress: ProgressCallback | None = None) -> Task:
        """The task once it ended: completed, or TaskFailedError. Follows the event stream, and polls (every
        3 s) where there is none to follow."""
        deadline = time.monotonic() + timeout_s
        events = self.stream(task_id, timeout_s=timeout_s)
        try:
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                except WaitTimeoutError:
                    raise
                except ReelgateError:
                    break  # no stream here (an older server, a proxy that buffers): poll instead
                if on_progress is not None:
                    on_progress(event)
                if event.is_terminal and event.task is not None:
                    return _finished(event.task)
        finally:
            await events.aclose()
        return await self._poll(task_id, deadline, timeout_s, on_progress)

    async def _poll(
        self, task_id: str, deadline: float, timeout_s: float, on_progress: ProgressCallback | None
    ) -> Task:
        seen: tuple[str, int] | None = None
        while True:
            task = await self.get(task_id)
            if on_progress is not None and (task.status, task.progress) != seen:
                on_progress(TaskEvent.from_task(task))
                seen = (task.status, task.progress)
            if task.is_done:
                return _finished(task)
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeoutError(task_id, timeout_s)
            await self._client._sleep(min(_core.POLL_INTERVAL_S, left))

    async def download(self, task_or_id: Task | str, path: str | os.PathLike[str]) -> Path:
        """Stream the completed task's video to `path` (written beside it, then renamed: never half a file)."""
        if isinstance(task_or_id, Task) and task_or_id.video_url:
            task = task_or_id
        else:
            task = await self.get(_core.task_id_of(task_or_id))
        if task.status != "completed" or task.video_url is None:
            raise ReelgateError(f"task {task.id} is {task.status}: there is no video to download")
        target = Path(path)
        partial = _core.partial_path(target)
        try:
            # The link is signed: it needs (and gets) no API key, wherever it points.
            http = self._client._http
            async with http.stream("GET", task.video_url, timeout=self._client.config.timeout_s) as answer:
                if answer.status_code >= 400:
                    await answer.aread()
                    _core.check(answer)
                with partial.open("wb") as handle:
                    async for chunk in answer.aiter_bytes():
                        handle.write(chunk)
            os.replace(partial, target)
        except httpx.TransportError as exc:
            raise APIConnectionError(f"download of {task.id} broke: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return target


class AsyncFiles:
    """Uploads (the files API): an uploaded image's `url` goes straight into `image_urls`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def upload(
        self, source: ImageSource, *, file_name: str | None = None, upload_path: str | None = None
    ) -> UploadedFile:
        """Upload a local image (a path) or its bytes; JPEG, PNG or WebP, up to 10 MB."""
        upload = _core.upload_of(source, file_name=file_name, upload_path=upload_path)
        response = await self._client._request(
            "POST", f"{_core.FILES_API}/upload/stream", upload=upload, retry_transport=False
        )
        return _core.uploaded(_core.unwrap(response))

    async def list(self, *, page: int = 1, page_size: int = 20) -> FileList:
        response = await self._client._request(
            "GET", f"{_core.FILES_API}/list", params={"page": page, "pageSize": page_size}
        )
        return _core.file_list(_core.unwrap(response))

    async def quota(self) -> FileQuota:
        return _core.file_quota(_core.unwrap(await self._client._request("GET", f"{_core.FILES_API}/quota")))

    async def delete(self, file_id: str) -> None:
        _core.unwrap(
            await self._client._request("DELETE", f"{_core.FILES_API}/{quote(file_id, safe='')}", retry_transport=False)
        )


_finished = _sync_finished
