"""Objects in memory: the real `Storage` behaviour (keys, ranges, links) without a disk, for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from reelgate.storage.base import CHUNK_BYTES, ObjectMissing, check_key, check_prefix
from reelgate.storage.links import LinkSigner


class MemoryStorage:
    def __init__(self, links: LinkSigner) -> None:
        self.links = links
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put_file(self, key: str, source: Path) -> None:
        data = source.read_bytes()
        with self._lock:
            self._objects[check_key(key)] = data
        source.unlink()

    def put_stream(self, key: str, source: BinaryIO) -> None:
        data = source.read()
        with self._lock:
            self._objects[check_key(key)] = data

    def _get(self, key: str) -> bytes:
        with self._lock:
            data = self._objects.get(check_key(key))
        if data is None:
            raise ObjectMissing(key)
        return data

    def size(self, key: str) -> int:
        return len(self._get(key))

    def read_range(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        data = self._get(key)
        return (data[offset : min(stop, offset + CHUNK_BYTES)] for offset in range(start, stop, CHUNK_BYTES))

    def exists(self, key: str) -> bool:
        with self._lock:
            return check_key(key) in self._objects

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(check_key(key), None)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    def list_keys(self, prefix: str, *, start_after: str = "") -> Iterator[str]:
        check_prefix(prefix)
        return iter([key for key in self.keys() if key.startswith(prefix) and key > start_after])

    def link(self, key: str, *, expires_at: int) -> str:
        return self.links.url_for(check_key(key), expires_at=expires_at)

    def upload_link(self, key: str, *, expires_at: int) -> str | None:
        return None

    def check(self) -> None:
        """Memory is always there."""
