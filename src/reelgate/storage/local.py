"""Videos on local disk under `REELGATE_HOME/videos`."""

from __future__ import annotations

import os
import re
from pathlib import Path

# Keys are ours (task ids + extension), but the files route takes them from a URL: allow nothing else.
_SAFE_KEY = re.compile(r"^[a-z0-9][a-z0-9.-]{0,200}\.mp4$")


class InvalidKey(ValueError):
    pass


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, key: str) -> Path:
        if not _SAFE_KEY.match(key):
            raise InvalidKey(key)
        return self.root / key

    def put(self, key: str, source: Path) -> None:
        """Move a finished file in atomically: a reader sees the whole video or nothing."""
        target = self.path_for(key)
        tmp = target.with_suffix(".part")
        os.replace(source, tmp) if source.stat().st_dev == self.root.stat().st_dev else _copy(source, tmp)
        os.replace(tmp, target)

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)


def _copy(source: Path, target: Path) -> None:
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    source.unlink()
