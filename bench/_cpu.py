"""CPU time of processes, from /proc (Linux): how much of the machine a server used during a run, to say what
bounds a throughput (a process at one full core is bound by its own CPU per request; one well under it waits on
something else)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds of one process (0 for one that is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command's closing parenthesis: state is field 3, utime 14 and stime 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def _tree(pid: int) -> list[int]:
    """The process and its descendants (an API with --api-processes runs several)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _named(prefix: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith(prefix):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@dataclass(frozen=True)
class Sample:
    at: float
    server: dict[int, float]
    database: dict[int, float]


@dataclass(frozen=True)
class CpuUse:
    """Cores used on average over a run: the server (with its children) and the PostgreSQL server's processes."""

    server_cores: float
    database_cores: float


def available() -> bool:
    return Path("/proc/self/stat").exists()


def sample(server_pid: int) -> Sample:
    return Sample(
        time.monotonic(),
        {pid: _cpu_s(pid) for pid in _tree(server_pid)},
        {pid: _cpu_s(pid) for pid in _named("postgres")},
    )


def used(before: Sample, after: Sample) -> CpuUse:
    wall = max(after.at - before.at, 1e-9)

    def cores(first: dict[int, float], last: dict[int, float]) -> float:
        # A process that started during the run counts from zero; one that ended is not counted.
        return sum(seconds - first.get(pid, 0.0) for pid, seconds in last.items()) / wall

    return CpuUse(cores(before.server, after.server), cores(before.database, after.database))
