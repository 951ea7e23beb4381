"""Scratch directories: a process killed mid-job leaves its partial video behind, and the next process to start
on that home deletes it; a live process's scratch is never touched, and a clean stop removes its own.

Found by the chaos soak (tests/soak): workers killed with SIGKILL mid-task left `home/tmp/<task>/output.mp4`
for good."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

from reelgate.storage.scratch import ScratchDir, remove_abandoned

# A process that makes its scratch directory, writes a video there, says where, and waits to be killed.
_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from reelgate.storage.scratch import ScratchDir
    scratch = ScratchDir.create(Path(sys.argv[1]))
    (scratch.path / "task-1").mkdir()
    (scratch.path / "task-1" / "output.mp4").write_bytes(b"half a video")
    print(scratch.path, flush=True)
    time.sleep(600)
    """
)


def _start_child(root: Path) -> tuple[subprocess.Popen[str], Path]:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(root)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, Path(child.stdout.readline().strip())


def test_the_scratch_of_a_killed_process_is_removed_by_the_next_start(tmp_path: Path) -> None:
    root = tmp_path / "tmp"
    alive, alive_dir = _start_child(root)
    killed, killed_dir = _start_child(root)
    try:
        killed.kill()  # SIGKILL: no cleanup of its own
        killed.wait(timeout=30)
        assert (killed_dir / "task-1" / "output.mp4").is_file()
        scratch = ScratchDir.create(root)
        assert not killed_dir.exists()  # the dead process's leftovers are gone
        assert (alive_dir / "task-1" / "output.mp4").is_file()  # a live process's scratch is left alone
        assert scratch.path.is_dir() and scratch.path not in (alive_dir, killed_dir)
        assert remove_abandoned(root) == []  # ours is locked too
        scratch.close()
        assert not scratch.path.exists()
        assert sorted(root.iterdir()) == [alive_dir]
    finally:
        alive.kill()
        alive.wait(timeout=30)
    assert remove_abandoned(root) == [alive_dir]
    assert list(root.iterdir()) == []


def test_a_worker_process_killed_mid_task_leaves_no_video_after_a_restart(tmp_path: Path) -> None:
    """Through Resources, as `reelgate serve` and `reelgate worker` build it."""
    from reelgate.resources import Resources, WorkerHost
    from tests.conftest import make_settings, sqlite_backend_at

    settings = make_settings(tmp_path / "home", sqlite_backend_at(tmp_path))
    child, left = _start_child(settings.home / "tmp")
    child.kill()
    child.wait(timeout=30)
    resources = Resources.build(settings)
    host = WorkerHost.build(settings)
    try:
        assert not left.exists()
        assert resources.scratch_root != host.scratch_root
        assert resources.scratch_root.parent == host.scratch_root.parent == settings.home / "tmp"
    finally:
        asyncio.run(resources.close())
        asyncio.run(host.close())
    assert list((settings.home / "tmp").iterdir()) == []
