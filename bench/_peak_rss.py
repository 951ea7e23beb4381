"""Peak resident memory of this process and of the processes it starts, as Linux counts them per address space.

`resource.getrusage(...).ru_maxrss` is not that: Linux carries a process's high-water mark across `execve`, and
a child spawned by fork or vfork starts from its parent's address space, so a freshly exec'd child reports at
least its parent's peak (a 150 MB engine process showed 250-300 MB when the bench process that started it was
large, and its ffmpeg encoder inherited the engine's figure the same way). `VmHWM` in /proc/PID/status belongs
to the address space, which exec replaces, so it is the process's own. This process's is read at the end; its
children's are sampled every few milliseconds while they run (the last sample before a child exits stands for
its peak; a child that lives less than one interval may be missed, which no encoder of a video does).
"""

from __future__ import annotations

import threading
from pathlib import Path

INTERVAL_S = 0.005


def _hwm_kb(pid: int | str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass  # the child has exited meanwhile
    return 0


def _children() -> list[str]:
    pids: list[str] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids.extend((task / "children").read_text().split())
        except OSError:
            continue
    return pids


class PeakRss:
    """Start sampling; `stop()` returns (this process's peak, the largest child's peak), in KiB."""

    def __init__(self) -> None:
        self._children_kb = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stopped.wait(INTERVAL_S):
            for pid in _children():
                self._children_kb = max(self._children_kb, _hwm_kb(pid))

    def stop(self) -> tuple[int, int]:
        self._stopped.set()
        self._thread.join()
        return _hwm_kb("self"), self._children_kb
