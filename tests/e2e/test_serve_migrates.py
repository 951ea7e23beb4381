"""`pip install` + `reelgate serve` works: a fresh embedded home (SQLite, no schema) is migrated by `serve`
itself; PostgreSQL (shared by other processes) still refuses with the clear message unless `--migrate`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Backend, make_settings, settings_env
from tests.e2e.processes import Processes, free_port, ready, wait_until

pytestmark = pytest.mark.slow


def test_serve_migrates_a_fresh_embedded_home(tmp_path: Path, processes: Processes) -> None:
    settings = make_settings(tmp_path / "fresh", Backend("sqlite", "", ""))  # the default: a file under home
    port = free_port()
    processes.start("serve", ["serve", "--port", str(port), "--workers", "0"], settings_env(settings))
    wait_until(lambda: ready(f"http://127.0.0.1:{port}"), 30, "serve to migrate and start")
    assert (tmp_path / "fresh" / "reelgate.db").is_file()
    assert "database migrated to revision" in processes.log("serve")


def test_serve_refuses_an_unmigrated_postgres_unless_told(
    tmp_path: Path, postgres_backend: Backend, processes: Processes
) -> None:
    settings = make_settings(tmp_path / "home", postgres_backend)
    env = settings_env(settings)
    refused = processes.start("refused", ["serve", "--port", str(free_port()), "--workers", "0"], env)
    assert refused.wait(timeout=30) == 1
    # rich wraps the message at its console width; the words are what matter.
    assert "run 'reelgate migrate' first (or 'reelgate serve --migrate')" in " ".join(processes.log("refused").split())
    port = free_port()
    processes.start("migrating", ["serve", "--port", str(port), "--workers", "0", "--migrate"], env)
    wait_until(lambda: ready(f"http://127.0.0.1:{port}"), 30, "serve --migrate to start")
