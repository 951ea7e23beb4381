"""`clients/python` installs into a fresh virtual environment, offline, from its own folder, and brings httpx
and nothing heavy (none of the server's stack: FastAPI, Starlette, SQLAlchemy, Pydantic, NumPy, OpenCV, torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "pydantic", "numpy", "opencv-python-headless", "torch"}
# httpx and what httpx itself needs; plus the installers a new venv starts with.
ALLOWED = {"reelgate-client", "httpx", "httpcore", "h11", "anyio", "idna", "certifi", "sniffio", "typing-extensions"}
ALLOWED |= {"exceptiongroup", "pip", "setuptools", "wheel"}

pytestmark = pytest.mark.slow


def _local_sources() -> list[str]:
    """The pip options naming this machine's package sources that are on disk (file: URLs and folders), so
    the install reaches no network; none = there is nothing to install httpx from offline."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    options: list[str] = []
    indexes: list[str] = []
    for line in listed.splitlines():
        name, _, value = line.partition("=")
        for item in value.strip().strip("'\"").split():
            if name.endswith("index-url") and item.startswith("file:"):
                indexes.append(item)
            elif name.endswith("find-links") and (item.startswith("file:") or item.startswith("/")):
                options += ["--find-links", item]
    if not indexes and not options:
        return []
    if indexes:
        options += ["--index-url", indexes[0]] + [arg for extra in indexes[1:] for arg in ("--extra-index-url", extra)]
    else:
        options.append("--no-index")
    return options


def test_the_sdk_installs_alone_with_httpx_only(tmp_path: Path) -> None:
    sources = _local_sources()
    if not sources:
        pytest.skip("no local package source (file: index or find-links) to install httpx from offline")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [
            *(str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--isolated"),
            *sources,
            str(REPO_ROOT / "clients" / "python"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_NO_INPUT": "1"},
    )
    assert install.returncode == 0, install.stdout + install.stderr
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True
    )
    installed = {item["name"].lower().replace("_", "-") for item in json.loads(listed.stdout)}
    assert "reelgate-client" in installed and "httpx" in installed
    assert not installed & HEAVY, installed & HEAVY
    assert installed <= ALLOWED, installed - ALLOWED
    imported = subprocess.run(
        [
            str(python),
            "-c",
            "import reelgate_client, sys; print(reelgate_client.__version__, 'fastapi' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.split() == ["0.1.0", "False"]
