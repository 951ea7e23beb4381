"""Objects on local disk under `REELGATE_HOME/videos` (the embedded default): one file per key, written
beside its place and renamed into it, so a reader sees the whole file or nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from reelgate.storage.base import CHUNK_BYTES, ObjectMissing, StorageUnavailable, check_key, check_prefix, is_key
from reelgate.storage.links import LinkSigner


class LocalStorage:
    def __init__(self, root: Path, links: LinkSigner) -> None:
        self.root = root
        self.links = links
        # A root that cannot be made is reported by check() with its reason, at start and by /readyz.
        with contextlib.suppress(OSError):
            self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _staging(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")

    def put_file(self, key: str, source: Path) -> None:
        target = self._path(key)
        tmp = self._staging(target)
        if source.stat().st_dev == self.root.stat().st_dev:
            os.replace(source, tmp)
        else:
            with source.open("rb") as src:
                _write_synced(src, tmp)
            source.unlink()
        os.replace(tmp, target)

    def put_stream(self, key: str, source: BinaryIO) -> None:
        target = self._path(key)
        tmp = self._staging(target)
        try:
            _write_synced(source, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def read_range(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        return _chunks(handle, start, stop)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str, *, start_after: str = "") -> Iterator[str]:
        check_prefix(prefix)
        # Only the folder the prefix names is walked; staging files (dot names) are never keys.
        folder = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        keys = (
            key
            for path in folder.rglob("*")
            if path.is_file()
            and (key := path.relative_to(self.root).as_posix()).startswith(prefix)
            and key > start_after
            and is_key(key)
        )
        return iter(sorted(keys))

    def link(self, key: str, *, expires_at: int) -> str:
        return self.links.url_for(check_key(key), expires_at=expires_at)

    def upload_link(self, key: str, *, expires_at: int) -> str | None:
        return None

    def check(self) -> None:
        if not self.root.is_dir():
            raise StorageUnavailable(f"{self.root} is not a directory")
        # Writing is the only honest test: permission bits mislead for root, ACLs and some network mounts.
        # A dot name is never a key, so the probe cannot collide with an object.
        try:
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".check-"):
                pass
        except OSError as exc:
            raise StorageUnavailable(f"{self.root} is not a writable directory: {exc.strerror or exc}") from None


def _write_synced(source: BinaryIO, target: Path) -> None:
    with target.open("wb") as dst:
        shutil.copyfileobj(source, dst, CHUNK_BYTES)
        dst.flush()
        os.fsync(dst.fileno())


def _chunks(handle: BinaryIO, start: int, stop: int) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        left = stop - start
        while left > 0 and (chunk := handle.read(min(CHUNK_BYTES, left))):
            left -= len(chunk)
            yield chunk
