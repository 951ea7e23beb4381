"""`GET /v1/tasks` on both databases (its page is a fixed statement on the driver's connections, db/driver.py):
the key's own tasks only, newest first across pages, expired ones left out, each as a poll shows it, and a
cursor that is not one of the key's tasks refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL
from reelgate.db.models import Task
from reelgate.resources import database_for
from tests.conftest import Backend, advertise_worker, auth, create_key, make_settings, migrate_db


def test_pages_hold_the_keys_unexpired_tasks_newest_first(tmp_path: Path, backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", backend)
    migrate_db(settings)
    advertise_worker(settings)
    key, other = create_key(settings), create_key(settings)
    body = {"model": DEFAULT_MODEL, "prompt": "a slow pan", "image_urls": ["https://images.example.com/first.png"]}
    with TestClient(create_app(settings, workers=0)) as client:
        mine = [client.post("/v1/videos/generations", json=body, headers=auth(key)).json() for _ in range(6)]
        theirs = client.post("/v1/videos/generations", json=body, headers=auth(other)).json()

        async def expire(task_id: str) -> None:
            db = database_for(settings)
            try:
                async with db.transaction() as session:
                    ended = time.time() - settings.result_ttl_s - 60
                    await session.execute(
                        update(Task).where(Task.id == task_id).values(status="failed", finished_at=ended)
                    )
            finally:
                await db.dispose()

        asyncio.run(expire(mine[2]["id"]))
        seen: list[dict[str, object]] = []
        after = None
        while True:
            params: dict[str, object] = {"limit": 2, **({"after": after} if after else {})}
            page = client.get("/v1/tasks", params=params, headers=auth(key)).json()
            seen += page["data"]
            if not page["has_more"]:
                break
            after = page["next_cursor"]
        kept = [task for task in mine if task["id"] != mine[2]["id"]]
        assert [task["id"] for task in seen] == [task["id"] for task in reversed(kept)]
        # Each as its poll shows it (the same row, the same object).
        for task in seen[:2]:
            assert task == client.get(f"/v1/tasks/{task['id']}", headers=auth(key)).json()
        refused = client.get("/v1/tasks", params={"after": theirs["id"]}, headers=auth(key))
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "after"
