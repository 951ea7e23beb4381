"""Wire shapes of the worker routes (`/worker/v1/...`): what a remote worker sends and receives. Every call
about a task names the lease it holds (task, attempt, lease owner): a call under a lease that is gone is
refused (409) and changes nothing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reelgate.queue.schemas import EngineState

_STRICT = ConfigDict(extra="forbid")
WORKER_ID = Field(min_length=1, max_length=160, description="The worker's lease-owner name (register answers it)")


class RegisterRequest(BaseModel):
    model_config = _STRICT

    host: str = Field(min_length=1, max_length=255)
    pid: int = Field(ge=0)
    version: str = Field(min_length=1, max_length=32)
    engines: dict[str, EngineState] = Field(min_length=1, max_length=32)
    concurrency: int = Field(ge=1, le=1024)


class Registered(BaseModel):
    object: Literal["worker"] = "worker"
    worker_id: str
    # How often to heartbeat the worker, and the lease each claim carries.
    heartbeat_s: float
    lease_s: float


class WorkerBeat(BaseModel):
    model_config = _STRICT

    engines: dict[str, EngineState] = Field(min_length=1, max_length=32)
    running: int = Field(ge=0)


class ClaimRequest(BaseModel):
    model_config = _STRICT

    worker_id: str = WORKER_ID
    engines: list[str] = Field(min_length=1, max_length=32, description="Engines to claim tasks of")
    slots: int = Field(1, ge=1, le=64, description="Tasks the worker can start now")
    wait_s: float = Field(25.0, ge=0, le=30, description="Long poll: how long to wait for work, 30 s at most")


class LeaseView(BaseModel):
    task_id: str
    attempt: int
    lease_owner: str
    lease_expires_at: float


class UpstreamView(BaseModel):
    provider: str
    task_id: str | None = None
    state: str | None = None
    submitted_at: float | None = None


class JobView(BaseModel):
    engine: str
    prompt: str
    aspect_ratio: str | None
    duration_s: int
    seed: int
    max_attempts: int
    estimate_s: int
    created_at: float
    # URLs and data URIs as the client sent them; `stored:` references are read from `input_links`.
    image_urls: list[str]
    input_links: dict[int, str] = Field(default_factory=dict, description="Short-lived links to stored inputs")
    upstream: UpstreamView | None = None


class ClaimedView(BaseModel):
    lease: LeaseView
    job: JobView


class ClaimAnswer(BaseModel):
    object: Literal["list"] = "list"
    data: list[ClaimedView]


class Fenced(BaseModel):
    """The lease a call is made under."""

    model_config = _STRICT

    attempt: int = Field(ge=1)
    lease_owner: str = WORKER_ID


class TaskBeat(Fenced):
    progress: int = Field(ge=0, le=99)
    estimated_time_s: int = Field(ge=0)
    aspect_ratio: Literal["16:9", "9:16", "1:1"] | None = None


class BeatAnswer(BaseModel):
    alive: bool
    # True when the task's owner cancelled it (the worker stops; a relay also cancels upstream where it can).
    cancelled: bool = False


class UpstreamRequest(Fenced):
    upstream: UpstreamView


StoredObject = Literal["video", "poster"]


class UploadRequest(Fenced):
    object: StoredObject = "video"


class UploadTarget(BaseModel):
    method: Literal["PUT"] = "PUT"
    url: str
    # Headers the PUT must carry (a presigned URL is signed over its Content-Type).
    headers: dict[str, str]
    # A presigned URL is the bucket's; an API URL needs the worker token like every worker call.
    needs_token: bool
    expires_at: float


class CompleteRequest(Fenced):
    # What the engine says about the video (width, height, frames, fps, method...), shown in task_info.
    info: dict[str, str | int | float | bool] = Field(max_length=64)
    # Whether a poster was uploaded beside the video (a poster is a convenience: a video may have none).
    poster: bool = False


class FailRequest(Fenced):
    code: str = Field(min_length=1, max_length=64)
    message: str = Field(max_length=2000)


class RetryRequest(Fenced):
    delay_s: float = Field(ge=0, le=24 * 3600)
    spend_attempt: bool


class Outcome(BaseModel):
    won: bool
