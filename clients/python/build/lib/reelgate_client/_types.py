"""What the API answers, as small typed objects. Each keeps the whole JSON it came from in `raw`, so a field
the SDK does not know yet is never lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TERMINAL_STATUSES = ("completed", "failed")


@dataclass(frozen=True)
class TaskError:
    code: str
    message: str
    type: str = "task_error"


@dataclass(frozen=True)
class Task:
    """The task object (the same in every answer and callback body)."""

    id: str
    status: str  # pending | processing | completed | failed
    progress: int
    model: str
    created: int
    results: list[str]
    task_info: dict[str, Any]
    usage: dict[str, Any]
    error: TaskError | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        error = data.get("error")
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            progress=int(data.get("progress", 0)),
            model=str(data.get("model", "")),
            created=int(data.get("created", 0)),
            results=[str(url) for url in data.get("results") or []],
            task_info=dict(data.get("task_info") or {}),
            usage=dict(data.get("usage") or {}),
            error=TaskError(str(error.get("code", "")), str(error.get("message", "")), str(error.get("type", "")))
            if isinstance(error, dict)
            else None,
            raw=data,
        )

    @property
    def is_done(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def video_url(self) -> str | None:
        """The signed link to the video, once completed."""
        return self.results[0] if self.results else None

    @property
    def poster_url(self) -> str | None:
        """The signed link to the poster (a small JPEG of a representative frame), once completed."""
        value = self.task_info.get("poster_url")
        return str(value) if value else None

    @property
    def estimated_time(self) -> int:
        return int(self.task_info.get("estimated_time", 0))

    @property
    def can_cancel(self) -> bool:
        return bool(self.task_info.get("can_cancel", False))

    @property
    def engine(self) -> str | None:
        value = self.task_info.get("engine")
        return str(value) if value else None


@dataclass(frozen=True)
class TaskEvent:
    """One event of a task's stream: a progress or status change, or the end (then `task` is the task object)."""

    id: str
    event: str  # progress | completed | failed
    task_id: str
    status: str
    progress: int
    estimated_time: int
    task: Task | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_sse(cls, event_id: str, name: str, data: dict[str, Any]) -> TaskEvent:
        task = data.get("task")
        return cls(
            id=event_id,
            event=name,
            task_id=str(data.get("task_id", "")),
            status=str(data.get("status", "")),
            progress=int(data.get("progress", 0)),
            estimated_time=int(data.get("estimated_time", 0)),
            task=Task.from_dict(task) if isinstance(task, dict) else None,
        )

    @classmethod
    def from_task(cls, task: Task) -> TaskEvent:
        """The same view of a polled task (when no stream can be followed)."""
        name = task.status if task.is_done else "progress"
        return cls(
            id="",
            event=name,
            task_id=task.id,
            status=task.status,
            progress=task.progress,
            estimated_time=task.estimated_time,
            task=task if task.is_done else None,
        )


@dataclass(frozen=True)
class TaskPage:
    data: list[Task]
    has_more: bool
    next_cursor: str | None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class UploadedFile:
    """An uploaded image: pass `url` in `image_urls` (it works until `expires_at`)."""

    id: str
    url: str
    download_url: str
    name: str
    original_name: str
    size: int
    mime_type: str
    upload_path: str
    uploaded_at: datetime | None
    expires_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UploadedFile:
        return cls(
            id=str(data["file_id"]),
            url=str(data["file_url"]),
            download_url=str(data.get("download_url", "")),
            name=str(data.get("file_name", "")),
            original_name=str(data.get("original_name", "")),
            size=int(data.get("file_size", 0)),
            mime_type=str(data.get("mime_type", "")),
            upload_path=str(data.get("upload_path", "")),
            uploaded_at=_time(data.get("upload_time")),
            expires_at=_time(data.get("expires_at")),
            raw=data,
        )


@dataclass(frozen=True)
class ListedFile:
    id: str
    name: str
    size: int
    uploaded_at: datetime | None
    url: str | None
    expires_at: datetime | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ListedFile:
        return cls(
            id=str(data["file_id"]),
            name=str(data.get("file_name", "")),
            size=int(data.get("file_size", 0)),
            uploaded_at=_time(data.get("upload_time")),
            url=str(data["file_url"]) if data.get("file_url") else None,
            expires_at=_time(data.get("expires_at")),
        )


@dataclass(frozen=True)
class FileList:
    total: int
    files: list[ListedFile]


@dataclass(frozen=True)
class FileQuota:
    user_group: str
    used_files: int
    max_files: int
    remain_files: int
