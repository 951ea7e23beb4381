"""The baseline of bench/api_load.py: a bare FastAPI app with reelgate's hot routes, doing no work (no
authentication, no database), on the same uvicorn. What reelgate does on top of it is the figure measured."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

app = FastAPI()


@app.post("/v1/videos/generations")
async def create(body: dict[str, object]) -> dict[str, object]:
    return {"id": f"task-unified-{int(time.time())}-baseline", "status": "pending", "echo": len(body)}


@app.get("/v1/tasks/{task_id}")
async def get(task_id: str) -> dict[str, object]:
    return {"id": task_id, "status": "pending"}


@app.get("/v1/tasks")
async def list_tasks(limit: int = 20) -> dict[str, object]:
    return {"object": "list", "data": [], "has_more": False, "limit": limit}


@app.get("/v1/tasks/{task_id}/events")
async def events(task_id: str) -> StreamingResponse:
    async def one_event() -> AsyncIterator[str]:
        yield f'id: 1.2.100\nevent: completed\ndata: {{"task_id":"{task_id}","status":"completed"}}\n\n'

    return StreamingResponse(one_event(), media_type="text/event-stream")


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
