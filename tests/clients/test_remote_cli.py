"""The remote CLI on the SDK: `reelgate submit` end to end from local files against a server that refuses
private networks (upload, create, progress bar, download), and `reelgate tasks get|list|cancel`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from reelgate_client import Client
from typer.testing import CliRunner

from reelgate.cli import app
from reelgate.config import DEFAULT_MODEL
from reelgate.media.video import probe_video
from tests.clients.conftest import LiveServer, start_server
from tests.conftest import create_key
from tests.e2e.processes import Processes
from tests.images import astronaut, encode, shifted

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_submit_uploads_local_images_follows_progress_and_downloads(tmp_path: Path) -> None:
    processes = Processes(tmp_path)
    try:
        # The server's own links are loopback URLs, and it refuses to fetch such: uploads must still work.
        base_url, settings, _ = start_server(
            tmp_path, processes, allow_private_networks=False, motion_short_side_px=360
        )
        key = create_key(settings)
        first, last = tmp_path / "first.jpg", tmp_path / "last.png"
        first.write_bytes(encode(astronaut(), "JPEG"))
        last.write_bytes(encode(shifted(astronaut(), 12)))
        out = tmp_path / "out" / "video.mp4"
        out.parent.mkdir()
        env = {"REELGATE_BASE_URL": base_url, "REELGATE_API_KEY": key, "PATH": "/usr/bin:/bin", "COLUMNS": "100"}
        done = subprocess.run(
            [
                *(sys.executable, "-m", "reelgate.cli", "submit", "--image", str(first), "--image", str(last)),
                *("--prompt", "morph", "--aspect-ratio", "1:1", "--duration", "5", "-o", str(out)),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stderr.count("uploaded ") == 2 and "100%" in done.stderr and "completed" in done.stderr
        assert "completed" in done.stdout and str(out) in " ".join(done.stdout.split())
        info = probe_video(out)
        assert (info.codec, info.frames, info.width, info.height) == (
            "h264",
            120,
            480,
            480,
        )  # 1:1 at 360 px: 480x480, as 960x960 at 720
        with Client(base_url=base_url, api_key=key) as client:
            (task,) = client.tasks.list().data
            assert task.status == "completed" and len(client.files.list().files) == 2
        missing = subprocess.run(
            [sys.executable, "-m", "reelgate.cli", "submit", "--image", str(tmp_path / "none.jpg"), "--prompt", "x"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert missing.returncode == 1 and "no such file" in missing.stderr
    finally:
        processes.stop_all()


def test_tasks_get_list_and_cancel(live: LiveServer) -> None:
    key = live.key()
    env = {"REELGATE_BASE_URL": live.base_url, "REELGATE_API_KEY": key}
    with Client(base_url=live.base_url, api_key=key) as client:
        done = client.videos.create_and_wait(model=DEFAULT_MODEL, prompt="z", image_urls=[live.images.url("image.png")])
        live.images.release.clear()
        slow = client.videos.create(model=DEFAULT_MODEL, prompt="z", image_urls=[live.images.url("slow.png")])
    result = runner.invoke(app, ["tasks", "get", done.id, "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "completed"
    result = runner.invoke(app, ["tasks", "get", done.id], env=env)
    assert result.exit_code == 0 and "completed 100%" in result.output and "poster:" in result.output
    result = runner.invoke(app, ["tasks", "list", "--json", "--limit", "1"], env=env)
    page = json.loads(result.output)
    assert [t["id"] for t in page["data"]] == [slow.id] and page["has_more"] is True
    result = runner.invoke(app, ["tasks", "list"], env=env)
    assert result.exit_code == 0 and done.id in result.output and slow.id in result.output
    result = runner.invoke(app, ["tasks", "cancel", slow.id], env=env)
    live.images.release.set()
    assert result.exit_code == 0 and "request_cancelled" in result.output, result.output
    result = runner.invoke(app, ["tasks", "cancel", slow.id], env=env)
    assert result.exit_code == 1 and "can no longer be cancelled" in result.output
    result = runner.invoke(app, ["tasks", "get", "task-unified-1-missing0", "--server", live.base_url], env=env)
    assert result.exit_code == 1 and "Task not found or expired" in result.output
    result = runner.invoke(app, ["tasks", "list", "--key", "rg_no_no"], env=env)
    assert result.exit_code == 1 and "401" in result.output
