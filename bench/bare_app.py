"""The baseline for bench/api_throughput.py: a bare FastAPI app with the same two routes, doing no work."""

from __future__ import annotations

import time

from fastapi import FastAPI

app = FastAPI()


@app.post("/v1/videos/generations")
async def create(body: dict[str, object]) -> dict[str, object]:
    return {"id": f"task-unified-{int(time.time())}-baseline", "status": "pending", "echo": len(body)}


@app.get("/v1/tasks/{task_id}")
async def get(task_id: str) -> dict[str, object]:
    return {"id": task_id, "status": "pending"}


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
