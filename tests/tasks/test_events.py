"""The event stream of a task, in one process: the events of a real run in order, the same refusals as
`GET /v1/tasks/{id}`, the heartbeat, resuming with Last-Event-ID, and one query per tick for all streams."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import Task
from reelgate.resources import Resources
from reelgate.tasks import repository
from reelgate.tasks.events import TaskWatcher
from tests.conftest import (
    LONG_RUN_SHORT_SIDE_PX,
    Backend,
    advertise_worker,
    auth,
    create_key,
    make_settings,
    migrate_db,
)
from tests.images import astronaut, data_uri

IMAGE = data_uri(astronaut(), "JPEG")


def body(duration: int = 5) -> dict[str, Any]:
    return {"model": DEFAULT_MODEL, "prompt": "slow zoom in", "image_urls": [IMAGE], "duration": duration}


def read_events(lines: Iterator[str], *, until_terminal: bool = True, count: int | None = None) -> list[dict[str, Any]]:
    """Parse SSE lines into {"id", "event", "data"} dicts (comments as {"comment": ...})."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line.startswith(":"):
            found.append({"comment": line[1:].strip()})
        elif not line:
            if "data" in current:
                current["data"] = json.loads(current["data"])
                found.append(current)
                if until_terminal and current["event"] in ("completed", "failed"):
                    return found
            current = {}
        else:
            name, _, value = line.partition(":")
            current[name] = value[1:] if value.startswith(" ") else value
        if count is not None and len([e for e in found if "data" in e]) >= count:
            return found
    return found


def only_events(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in found if "data" in e]


@pytest.fixture
def slow_settings(tmp_path: Path, sqlite_backend: Backend) -> Settings:
    # 480 px, so a run lasts long enough for several progress beats.
    settings = make_settings(tmp_path / "home", sqlite_backend, motion_short_side_px=480, events_heartbeat_s=0.3)
    migrate_db(settings)
    advertise_worker(settings)  # tests with an API-only app create tasks that stay pending
    return settings


def test_a_run_streams_increasing_progress_then_the_task_object(slow_settings: Settings) -> None:
    # A long 10 s run: several heartbeats (one a second) move the progress.
    slow_settings = slow_settings.model_copy(update={"motion_short_side_px": LONG_RUN_SHORT_SIDE_PX})
    key = create_key(slow_settings)
    with TestClient(create_app(slow_settings, workers=1)) as client:
        task_id = client.post("/v1/videos/generations", json=body(10), headers=auth(key)).json()["id"]
        with client.stream("GET", f"/v1/tasks/{task_id}/events", headers=auth(key)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            found = only_events(read_events(response.iter_lines()))
        final = client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()
    *progress, end = found
    assert {e["event"] for e in progress} == {"progress"} and end["event"] == "completed"
    values = [e["data"]["progress"] for e in progress if e["data"]["status"] == "processing"]
    assert len(values) >= 3 and values == sorted(values) and len(set(values)) == len(values)
    assert len({e["id"] for e in found}) == len(found)  # every event is a change
    assert all(e["data"]["task_id"] == task_id and e["data"]["estimated_time"] >= 0 for e in found)
    assert end["data"]["progress"] == 100 and end["data"]["task"] == final
    assert end["data"]["task"]["results"] and end["data"]["task"]["task_info"]["poster_url"]


def test_the_stream_refuses_like_the_query(slow_settings: Settings) -> None:
    key, other = create_key(slow_settings), create_key(slow_settings, name="other")
    with TestClient(create_app(slow_settings, workers=0), raise_server_exceptions=False) as client:
        task_id = client.post("/v1/videos/generations", json=body(), headers=auth(key)).json()["id"]
        for headers, path, status, param in [
            ({}, f"/v1/tasks/{task_id}/events", 401, None),
            (auth(key), "/v1/tasks/nope/events", 400, "task_id"),
            (auth(key), "/v1/tasks/task-unified-1-missing0/events", 404, "task_id"),
            (auth(other), f"/v1/tasks/{task_id}/events", 404, "task_id"),
            (auth(key), f"/v1/tasks/{task_id}/events?x=1", 400, "x"),
        ]:
            answer = client.get(path, headers=headers)
            assert answer.status_code == status, (path, answer.text)
            assert answer.json()["error"].get("param") == param
        assert (
            client.get(f"/v1/tasks/{task_id}", headers=auth(other)).json()
            == client.get(f"/v1/tasks/{task_id}/events", headers=auth(other)).json()
        )


def _cancel_soon(client: TestClient, key: str, task_id: str, after: threading.Event) -> threading.Thread:
    def run() -> None:
        after.wait(30)
        client.post(f"/v1/tasks/{task_id}/cancel", headers=auth(key))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_heartbeat_resume_and_the_end_of_a_cancelled_task(slow_settings: Settings) -> None:
    key = create_key(slow_settings)
    with TestClient(create_app(slow_settings, workers=0)) as client:
        task_id = client.post("/v1/videos/generations", json=body(), headers=auth(key)).json()["id"]
        url = f"/v1/tasks/{task_id}/events"
        with client.stream("GET", url, headers=auth(key)) as response:
            lines = response.iter_lines()
            first = only_events(read_events(lines, count=1))[0]
            assert (first["id"], first["event"], first["data"]["status"]) == ("0.0.0", "progress", "pending")
            assert first["retry"] == "3000"
            # Nothing changes while the task waits: the stream only says it is alive.
            quiet = []
            for line in lines:
                quiet.append(line)
                if line.startswith(":"):
                    break
            assert quiet[-1] == ": heartbeat" and not any(line.startswith("data:") for line in quiet)
        # A client that resumes with the id it saw is sent nothing until the task changes; then its end.
        seen = threading.Event()
        canceller = _cancel_soon(client, key, task_id, seen)
        with client.stream("GET", url, headers={**auth(key), "Last-Event-ID": first["id"]}) as response:
            lines = response.iter_lines()
            head = []
            for line in lines:
                head.append(line)
                if line.startswith(":"):
                    break  # a heartbeat came before any event: nothing was re-sent
            assert head[-1] == ": heartbeat" and not any(line.startswith("data:") for line in head)
            seen.set()
            rest = only_events(read_events(lines))
        canceller.join(10)
        assert [e["event"] for e in rest] == ["failed"]
        assert rest[0]["data"]["task"]["error"]["code"] == "request_cancelled"
        # The end is sent again to a client that resumes after it, and the stream closes.
        with client.stream("GET", url, headers={**auth(key), "Last-Event-ID": rest[0]["id"]}) as response:
            again = only_events(read_events(response.iter_lines()))
        assert [e["event"] for e in again] == ["failed"]


def _count_reads(resources: Resources) -> list[str]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM tasks" in statement:
            statements.append(statement)

    event.listen(resources.db.engine.sync_engine, "before_cursor_execute", record)
    return statements


def test_one_watcher_reads_every_streamed_task_in_one_query(tmp_path: Path, backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", backend)
    migrate_db(settings)
    advertise_worker(settings)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=0)) as client:
        ids = [client.post("/v1/videos/generations", json=body(), headers=auth(key)).json()["id"] for _ in range(10)]
        resources: Resources = client.app.state.resources  # type: ignore[attr-defined]
        portal = client.portal
        assert portal is not None

        async def scenario() -> tuple[list[str], list[str], int]:
            watcher = TaskWatcher(resources.db, settings)
            async with resources.db.read() as session:
                tasks = await repository.get_tasks(session, ids)
            # 100 streams on 10 tasks.
            subscriptions = [watcher.subscribe(task) for task in tasks for _ in range(10)]
            statements = _count_reads(resources)
            await watcher.refresh()
            quiet = list(statements)
            async with resources.db.transaction() as session:
                await session.execute(update(Task).where(Task.id == ids[0]).values(progress=42))
                await session.execute(
                    update(Task).where(Task.id == ids[1]).values(status="failed", error_code="request_cancelled")
                )
            statements.clear()
            await watcher.refresh()
            moved = list(statements)
            await watcher.aclose()
            changed = sum(1 for s in subscriptions if s.changed.is_set())
            return quiet, moved, changed

        quiet, moved, changed = portal.call(scenario)
    assert len(quiet) == 1  # one query for 100 streams, not 100
    assert len(moved) == 2  # the progress of all, and the full rows of the one that ended
    assert changed == 20  # the 10 streams of each changed task were told, and no other


def test_many_streams_over_http_cost_one_query_per_tick(tmp_path: Path, sqlite_backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", sqlite_backend, events_poll_interval_s=0.05, events_heartbeat_s=30)
    migrate_db(settings)
    advertise_worker(settings)
    key = create_key(settings)
    streams = 20
    with TestClient(create_app(settings, workers=0)) as client:
        ids = [client.post("/v1/videos/generations", json=body(), headers=auth(key)).json()["id"] for _ in range(4)]
        resources: Resources = client.app.state.resources  # type: ignore[attr-defined]
        opened = threading.Barrier(streams + 1)
        done = threading.Event()

        def follow(task_id: str) -> None:
            with client.stream("GET", f"/v1/tasks/{task_id}/events", headers=auth(key)) as response:
                lines = response.iter_lines()
                read_events(lines, count=1)
                opened.wait(30)
                read_events(lines)  # until the task ends

        threads = [threading.Thread(target=follow, args=(ids[n % 4],), daemon=True) for n in range(streams)]
        for thread in threads:
            thread.start()
        opened.wait(30)
        watcher = resources.task_watcher
        statements = _count_reads(resources)
        reads_before = watcher.reads
        while watcher.reads < reads_before + 10:
            time.sleep(0.02)
        ticks = watcher.reads - reads_before
        queries = len(statements)
        for task_id in ids:
            client.post(f"/v1/tasks/{task_id}/cancel", headers=auth(key))
        for thread in threads:
            thread.join(30)
        done.set()
    assert watcher.watched == 0  # every stream closed after its task ended, and let go
    # 20 open streams: about one query per tick (give or take the one in flight), never one per stream.
    assert ticks >= 10 and queries <= ticks + 1, (ticks, queries)
