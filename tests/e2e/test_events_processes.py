"""The event stream across processes: `reelgate serve --workers 0` streams a task that a standalone
`reelgate worker` runs (PostgreSQL: NOTIFY; SQLite: the watcher's poll), with increasing progress, the
terminal event, and a resume with Last-Event-ID after a dropped connection. Both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.config import DEFAULT_MODEL
from tests.conftest import (
    LONG_RUN_SHORT_SIDE_PX,
    Backend,
    auth,
    create_key,
    make_settings,
    migrate_db,
    settings_env,
    wait_for_live_worker,
)
from tests.e2e.processes import Processes, free_port, ready, wait_until
from tests.images import astronaut, data_uri

pytestmark = pytest.mark.slow


def events_of(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    current: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in current:
                yield {"id": current.get("id"), "event": current.get("event"), "data": json.loads(current["data"])}
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            current[name] = value[1:] if value.startswith(" ") else value


def test_a_task_run_by_a_standalone_worker_streams_to_the_api_process(
    tmp_path: Path, backend: Backend, processes: Processes
) -> None:
    settings = make_settings(
        tmp_path / "home", backend, motion_short_side_px=LONG_RUN_SHORT_SIDE_PX, poll_interval_s=0.2
    )
    migrate_db(settings)
    key = create_key(settings)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**settings_env(settings), "REELGATE_PUBLIC_URL": base_url}
    processes.start("api", ["serve", "--port", str(port), "--workers", "0"], env)
    processes.start("worker", ["worker", "--concurrency", "1"], env)
    wait_until(lambda: ready(base_url), 30, "the API to start")
    wait_for_live_worker(settings)
    body = {"model": DEFAULT_MODEL, "prompt": "slow zoom in", "image_urls": [data_uri(astronaut())], "duration": 10}
    with httpx.Client(base_url=base_url, headers=auth(key), timeout=httpx.Timeout(30, read=60)) as client:
        whole_id = client.post("/v1/videos/generations", json=body).json()["id"]
        with client.stream("GET", f"/v1/tasks/{whole_id}/events") as response:
            assert response.status_code == 200
            whole = list(events_of(response.iter_lines()))
        *moving, end = whole
        values = [e["data"]["progress"] for e in moving if e["data"]["status"] == "processing"]
        assert len(values) >= 3 and values == sorted(values) and len(set(values)) == len(values), values
        assert end["event"] == "completed" and end["data"]["task"]["results"], end
        assert end["data"]["task"] == client.get(f"/v1/tasks/{whole_id}").json()

        # Drop the connection mid-run, then resume where it stopped.
        task_id = client.post("/v1/videos/generations", json=body).json()["id"]
        seen: list[dict[str, Any]] = []
        with client.stream("GET", f"/v1/tasks/{task_id}/events") as response:
            for event in events_of(response.iter_lines()):
                seen.append(event)
                if event["data"]["status"] == "processing" and event["data"]["progress"] > 0:
                    break
        last = seen[-1]
        with client.stream("GET", f"/v1/tasks/{task_id}/events", headers={"Last-Event-ID": last["id"]}) as response:
            resumed = list(events_of(response.iter_lines()))
    assert resumed and resumed[0]["id"] != last["id"]  # nothing seen is sent again
    assert resumed[0]["data"]["progress"] > last["data"]["progress"] or resumed[0]["event"] == "completed"
    later = [e["data"]["progress"] for e in resumed if e["event"] == "progress"]
    assert later == sorted(later)
    assert resumed[-1]["event"] == "completed" and resumed[-1]["data"]["progress"] == 100
