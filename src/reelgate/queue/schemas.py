"""Wire shapes of the workers registry (`GET /admin/v1/workers`, `reelgate workers list`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class EngineState(BaseModel):
    available: bool
    reason: str = Field("", description="Why the engine cannot serve, when it cannot")


class WorkerView(BaseModel):
    id: str = Field(description="The worker's lease-owner name, host:pid:random")
    kind: Literal["database", "remote"]
    host: str
    pid: int
    version: str
    engines: dict[str, EngineState]
    concurrency: int
    running: int
    started: float
    last_seen: float
    live: bool = Field(description="Seen within REELGATE_WORKER_TTL_S; only live workers receive tasks")


class WorkerList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WorkerView]
    live_by_engine: dict[str, int] = Field(description="Live workers that advertise each engine as available")
