"""Wire shapes of the task API: the create request (the seed's VideoGenerationRequest) and the task object.

The request is strict as the seed's schema says: `duration: "5"` is an error, not a coercion.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from reelgate.config import DEFAULT_MODEL

AspectRatio = Literal["16:9", "9:16", "1:1"]
MAX_PROMPT_CHARS = 5000
MAX_CALLBACK_URL_CHARS = 2048


class CreateVideoRequest(BaseModel):
    # Unknown fields are ignored: vendor clients send extras, and rejecting them would break drop-in use.
    model_config = ConfigDict(
        strict=True,
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "model": DEFAULT_MODEL,
                    "prompt": "A cat walking gracefully",
                    "image_urls": ["https://example.com/first-frame.jpg"],
                },
                {
                    "model": DEFAULT_MODEL,
                    "prompt": "A cat walking gracefully",
                    "image_urls": ["https://example.com/first-frame.jpg", "https://example.com/last-frame.jpg"],
                },
            ]
        },
    )

    model: str = Field(min_length=1, max_length=200, description="Video generation model name")
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS, description="What video to generate")
    image_urls: list[Annotated[str, Field(json_schema_extra={"format": "uri"})]] = Field(
        min_length=1,
        max_length=2,
        description="1 image = first frame; 2 images = first and last frame. http(s) URLs or "
        "data:image/...;base64, URIs; JPEG, PNG or WebP; up to 10 MB each.",
    )
    aspect_ratio: AspectRatio | None = Field(
        None, description="16:9, 9:16 or 1:1. Omitted: the allowed ratio nearest to the first image."
    )
    duration: Literal[5, 10] = Field(5, description="Seconds of video: 5 or 10. Billing follows it.")
    callback_url: str | None = Field(
        None,
        max_length=MAX_CALLBACK_URL_CHARS,
        description="HTTPS URL called when the task ends (no internal addresses).",
        json_schema_extra={"format": "uri", "pattern": "^https://"},
    )


class TaskInfo(BaseModel):
    can_cancel: bool
    estimated_time: int = Field(ge=0, description="Seconds left, honest estimate")
    video_duration: int
    # Extensions: which backend really served the task, and how.
    engine: str
    method: str | None = None
    aspect_ratio: AspectRatio | None = None
    resolution: str | None = None
    seed: int | None = None
    # A completed task's poster: a signed link to a small JPEG of a representative frame (`results` keeps
    # exactly the seed's list of video links).
    poster_url: str | None = None
    # Unix seconds when the task and its links (results, poster) expire: a finished task's end of life.
    expires_at: int | None = None
    # What was asked, so a client (the web console) can show which task this is without keeping its own copy.
    prompt: str | None = None


class Usage(BaseModel):
    billing_rule: Literal["per_call", "per_token", "per_second"]
    credits_reserved: float = Field(ge=0)
    user_group: str


class TaskError(BaseModel):
    code: str
    message: str
    type: Literal["task_error"] = "task_error"


class TaskObject(BaseModel):
    created: int
    id: str
    model: str
    object: Literal["video.generation.task"] = "video.generation.task"
    progress: int = Field(ge=0, le=100)
    status: Literal["pending", "processing", "completed", "failed"]
    task_info: TaskInfo
    type: Literal["video"] = "video"
    usage: Usage
    results: list[str] = Field(default_factory=list)
    error: TaskError | None = None


class VideoQuote(BaseModel):
    """`GET /v1/videos/quote`: what a create with these choices would reserve for the calling key, and where
    it would go: the engine and the frame it renders (images are centre-cropped to exactly width:height)."""

    object: Literal["video.quote"] = "video.quote"
    model: str
    engine: str
    aspect_ratio: AspectRatio
    duration: Literal[5, 10]
    billing_rule: Literal["per_call", "per_token", "per_second"]
    credits: float = Field(ge=0, description="What the create would reserve, as usage.credits_reserved will say")
    available: float = Field(description="The account's spendable credits now (balance - held)")
    affordable: bool = Field(description="available >= credits: false means the create would be a 402")
    user_group: str
    width: int | None = Field(None, description="The engine's frame width at this ratio; null where unknown")
    height: int | None = Field(None, description="The engine's frame height at this ratio; null where unknown")
    estimated_time: int = Field(ge=0, description="Seconds a task takes, as task_info.estimated_time starts")


class TaskCreditEntry(BaseModel):
    kind: Literal["reserve", "capture", "release"]
    credits: float
    created: float = Field(description="Unix seconds, ms precision")


class TaskCredits(BaseModel):
    """`GET /v1/tasks/{id}/credits`: the task's ledger entries, oldest first: its reserve, then the capture
    (completed) or release (failed, cancelled) that settled it."""

    object: Literal["list"] = "list"
    task_id: str
    state: Literal["held", "captured", "released"]
    data: list[TaskCreditEntry]


class TaskList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TaskObject]
    has_more: bool
    next_cursor: str | None = Field(None, description="Pass as `after` to get the next page")


class ErrorBody(BaseModel):
    code: int
    message: str
    type: str
    param: str | None = None
    fallback_suggestion: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
