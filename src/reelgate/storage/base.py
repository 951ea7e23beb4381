"""The `Storage` protocol: where finished videos and stored input images live.

Every reader and writer of stored objects goes through it, so the embedded default (local disk), tests
(memory) and object storage behave alike. The protocol is synchronous, like the disks and SDKs behind it;
async callers run it in a thread. A writer hands over a finished file or stream and a reader sees the whole
object or nothing: nothing is ever served half-written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

# Keys are ours (task ids, attempt numbers, extensions), but the files route takes them from a URL: allow
# nothing else. Slash-separated segments, none empty or starting with a dot (no `..`, no hidden files).
_SAFE_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,200}(/[a-z0-9][a-z0-9._-]{0,200}){0,4}$")
CHUNK_BYTES = 1 << 20


class InvalidKey(ValueError):
    pass


class ObjectMissing(LookupError):
    pass


class StorageUnavailable(RuntimeError):
    """The storage cannot be used at all (a missing bucket, refused credentials, a read-only disk): an
    operator's problem, reported at start and by `/readyz` rather than at the first task."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_key(key: str) -> bool:
    return bool(_SAFE_KEY.match(key)) and ".." not in key


def check_key(key: str) -> str:
    if not is_key(key):
        raise InvalidKey(key)
    return key


def check_prefix(prefix: str) -> str:
    """A listing's prefix: a key, a key's leading segments ending in a slash, or nothing (everything)."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix


class Storage(Protocol):
    def put_file(self, key: str, source: Path) -> None:
        """Store a finished file under `key` (the source may be moved away)."""
        ...

    def put_stream(self, key: str, source: BinaryIO) -> None:
        """Store everything `source` yields under `key`, visible only once complete."""
        ...

    def size(self, key: str) -> int:
        """The object's size in bytes; ObjectMissing if there is none."""
        ...

    def read_range(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        """Bytes [start, stop) of the object, in chunks; ObjectMissing if there is none (from the call, or from
        the first chunk where the read is lazy, as on S3: iterate it in a thread, never on the event loop)."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing one is no error."""
        ...

    def list_keys(self, prefix: str, *, start_after: str = "") -> Iterator[str]:
        """Every key that starts with `prefix` and sorts after `start_after`, in ascending order (lazily, in
        pages where the store pages: iterate it in a thread)."""
        ...

    def link(self, key: str, *, expires_at: int) -> str:
        """A URL a client can download the object from until `expires_at` (unix seconds)."""
        ...

    def upload_link(self, key: str, *, expires_at: int) -> str | None:
        """A URL a remote worker can PUT the object to until `expires_at`, or None where uploads go through the
        API (local disk, memory, a bucket that must stay private to the network)."""
        ...

    def check(self) -> None:
        """StorageUnavailable(reason) if objects cannot be stored or read here at all."""
        ...


def read_object(storage: Storage, key: str) -> bytes:
    """The whole object (small ones: input images)."""
    return b"".join(storage.read_range(key, 0, storage.size(key)))
