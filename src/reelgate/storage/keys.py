"""The names of stored objects, in one place: a task's video and poster per attempt, its stored input images,
uploaded files, and the reference a task row keeps to a stored input (`stored:<key>`) instead of the image
itself."""

from __future__ import annotations

STORED_PREFIX = "stored:"


def video_key(task_id: str, attempt: int) -> str:
    """Per attempt: a stale worker that lost its lease can never overwrite the winner's file."""
    return f"{task_id}-a{attempt}.mp4"


def attempt_video_keys(task_id: str, attempts: int) -> list[str]:
    """Every video key a task's attempts (1..attempts) may have written."""
    return [video_key(task_id, attempt) for attempt in range(1, attempts + 1)]


def poster_key(task_id: str, attempt: int) -> str:
    """Beside the attempt's video, and per attempt for the same reason."""
    return f"{task_id}-a{attempt}.jpg"


def attempt_poster_keys(task_id: str, attempts: int) -> list[str]:
    return [poster_key(task_id, attempt) for attempt in range(1, attempts + 1)]


def upload_key(file_id: str, image_format: str) -> str:
    """An uploaded file: owned by no task (several may use it), so no task's purge ever deletes it."""
    return f"{UPLOADS_PREFIX}{file_id}.{image_format}"


UPLOADS_PREFIX = "files/"


INPUTS_PREFIX = "inputs/"


def input_key(task_id: str, index: int, image_format: str) -> str:
    return f"{input_prefix(task_id)}{index}.{image_format}"


def input_prefix(task_id: str) -> str:
    """Where a task's own stored inputs live. A `stored:` reference may also name an object the task does not
    own (an uploaded file that several tasks use); only keys under this prefix are the task's to delete."""
    return f"{INPUTS_PREFIX}{task_id}/"


def stored_ref(key: str) -> str:
    return f"{STORED_PREFIX}{key}"


def stored_key(ref: str) -> str | None:
    """The storage key of a `stored:` reference, None for a URL or data URI."""
    return ref[len(STORED_PREFIX) :] if ref.startswith(STORED_PREFIX) else None
