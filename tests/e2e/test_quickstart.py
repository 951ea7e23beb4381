"""The new user's path: the example that `reelgate keys bootstrap` prints (as `make run` shows it) is pasted
into a shell, from the repository root, against a running `reelgate serve`, and produces a video."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reelgate.config import Settings
from tests.conftest import make_settings, migrate_db, settings_env, sqlite_backend_at
from tests.e2e.processes import Processes, free_port, ready, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_printed_curl_example_works(tmp_path: Path, processes: Processes) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    settings: Settings = make_settings(tmp_path / "home", sqlite_backend_at(tmp_path))
    migrate_db(settings)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**settings_env(settings), "REELGATE_PUBLIC_URL": base_url}
    printed = subprocess.run(
        [sys.executable, "-m", "reelgate.cli", "keys", "bootstrap", "--base-url", base_url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    ).stdout
    create_snippet = printed[printed.index("export KEY=") : printed.index("curl -s " + base_url + "/v1/tasks/")]
    processes.start("serve", ["serve", "--port", str(port), "--workers", "1"], env)
    wait_until(lambda: ready(base_url), 30, "the server to start")
    created = json.loads(
        subprocess.run(["bash", "-c", create_snippet], capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout
    )
    assert created["status"] == "pending", created
    key = printed[printed.index("export KEY=") + len("export KEY=") :].split()[0]
    poll = (
        printed[printed.index("curl -s " + base_url + "/v1/tasks/") :].splitlines()[0].replace("TASK_ID", created["id"])
    )

    def finished() -> dict[str, object] | None:
        answer = subprocess.run(["bash", "-c", f"KEY={key}; {poll}"], capture_output=True, text=True, check=True)
        task: dict[str, object] = json.loads(answer.stdout)
        return task if task["status"] in ("completed", "failed") else None

    task = wait_until(finished, 60, "the example task to finish")
    assert task["status"] == "completed", task
    results = task["results"]
    assert isinstance(results, list)
    assert httpx.get(results[0], timeout=10).headers["content-type"] == "video/mp4"
