"""The SDK's README (what its distribution shows) and its docs page tell the same story, and both open with
the two-line example, which is real: it names the SDK's own classes and methods."""

from __future__ import annotations

import re
from pathlib import Path

import reelgate_client

REPO_ROOT = Path(__file__).resolve().parents[2]


def _first_python_block(text: str) -> str:
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match is not None
    return match.group(1).strip()


def test_readme_and_docs_page_share_the_two_line_example() -> None:
    readme = (REPO_ROOT / "clients" / "python" / "README.md").read_text()
    page = (REPO_ROOT / "docs" / "sdk.md").read_text()
    example = _first_python_block(page)
    assert example == _first_python_block(readme)
    assert example.count("\n") == 1 and example.startswith("from reelgate_client import Client\n")
    assert "Client().videos.create_and_wait(" in example
    assert callable(reelgate_client.Client.__init__) and hasattr(reelgate_client._sync.Videos, "create_and_wait")
    # Apart from the links (relative in the docs site, to files in the README), the texts are the same.
    strip = re.compile(r"\[([^\]]+)\]\([^)]+\)|\(docs/[a-z.]+\)")
    assert "".join(strip.sub(r"\1", readme).split()) == "".join(strip.sub(r"\1", page).split())
