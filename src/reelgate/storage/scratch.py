"""A process's scratch directory: where its engines write a video (and its poster) before it is stored, and
where the API spools an upload of a remote worker.

One directory per process under `REELGATE_HOME/tmp`, holding an exclusive lock (`flock`) for as long as the
process lives. A job cleans up after itself, but a process killed mid-job (kill -9, the OOM killer, a power
cut) cannot: its partial videos would stay on the disk for good, on a machine that is meant to keep no media
at all once storage is a bucket. So every process, as it starts, deletes the directories whose lock nobody
holds: the kernel drops a lock with its process, however that process ended. Several processes may share
one home (`serve` and `reelgate worker` on one machine); a live one's directory is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_PREFIX = "proc-"
_LOCK = ".lock"


class ScratchDir:
    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd

    @classmethod
    def create(cls, root: Path) -> ScratchDir:
        root.mkdir(parents=True, exist_ok=True)
        remove_abandoned(root)
        # Locked before it gets the name others look for, so no process ever sees it unlocked.
        fresh = Path(tempfile.mkdtemp(prefix=".new-", dir=root))
        lock_fd = os.open(fresh / _LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = root / f"{_PREFIX}{fresh.name.removeprefix('.new-')}"
        fresh.rename(path)
        return cls(path, lock_fd)

    def close(self) -> None:
        """A clean stop removes its own directory (whatever a job left in it is nobody's now)."""
        if self._lock_fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)
        self._lock_fd = None


def remove_abandoned(root: Path) -> list[Path]:
    """Delete the scratch directories under `root` whose process is gone; returns them."""
    removed: list[Path] = []
    for entry in sorted(root.glob(f"{_PREFIX}*")):
        try:
            lock_fd = os.open(entry / _LOCK, os.O_RDWR)
        except OSError:
            continue  # not one of ours, or removed by another process just now
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its process is alive
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finally:
            with contextlib.suppress(OSError):
                os.close(lock_fd)
    if removed:
        log.info("scratch of stopped processes removed", extra={"count": len(removed)})
    return removed
